"""The checks behind ``unsign-worker check-config``: each returns :class:`Check` lines.

:func:`check_settings` is pure (it looks at a :class:`Settings` only); :func:`check_redis`
talks to Redis with short timeouts (the gateway probe lives in ``gateway_probe``). No check ever
puts a secret in its message.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.masking import mask_account
from unsign_worker.protocol.param_rules import validate_partner
from unsign_worker.protocol.signing import make_signer
from unsign_worker.settings import (
    DEFAULT_GATEWAY_URL,
    SUPPORTED_CHARSETS,
    SUPPORTED_SIGN_TYPES,
    Settings,
    check_gateway_url,
    redact_url,
)

#: Connect and read timeout of the Redis checks.
REDIS_TIMEOUT_SECONDS = 2.0
#: Host names of this machine's own loopback interface, where a developer runs a Redis.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class CheckStatus(StrEnum):
    """How one check went."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"

_MD5_KEY_RE = re.compile(r"[0-9A-Za-z]{32}")


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and why."""

    name: str
    status: CheckStatus
    message: str
    #: one line on what to do about it, or "" (printed under the check, and in JSON if set)
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        data = {"name": self.name, "status": self.status, "message": self.message}
        if self.advice:
            data["advice"] = self.advice
        return data


def ok(name: str, message: str) -> Check:
    return Check(name, CheckStatus.OK, message)


def warn(name: str, message: str) -> Check:
    return Check(name, CheckStatus.WARNING, message)


def fail(name: str, message: str) -> Check:
    return Check(name, CheckStatus.ERROR, message)


def check_settings(settings: Settings) -> list[Check]:
    """Every check that needs nothing but the settings (no I/O)."""
    return [
        _partner(settings),
        *_test_partner(settings),
        *_signing(settings),
        _charset(settings),
        *_gateway(settings),
    ]


def _partner(s: Settings) -> Check:
    name = "ALIPAY_PARTNER"
    if not s.partner:
        return fail(name, "not set: the partner ID, 16 digits starting with 2088")
    if validate_partner(s.partner):
        return fail(name, f"must be 16 digits starting with 2088 (got {len(s.partner)} "
                          f"characters: {mask_account(s.partner)})")
    return ok(name, f"{mask_account(s.partner)} (16 digits starting with 2088)")


def _test_partner(s: Settings) -> list[Check]:
    name = "ALIPAY_TEST_PARTNERS"
    if not s.is_test_partner:
        return [ok(name, "the partner is not listed as a test account")] if s.test_partners else []
    if s.sandbox:
        return [ok(name, "the partner is a test account; fine in sandbox mode")]
    return [fail(name, "WARNING: TEST ACCOUNT IN USE OUTSIDE SANDBOX MODE. Test accounts are "
                       "charged 3% fees: replace ALIPAY_PARTNER and the key with the contracted "
                       "account's before any real traffic")]


def _signing(s: Settings) -> list[Check]:
    if s.sign_type not in SUPPORTED_SIGN_TYPES:
        return [fail("ALIPAY_SIGN_TYPE", f"{s.sign_type!r} is not one of "
                     f"{', '.join(SUPPORTED_SIGN_TYPES)} (upper case, as the gateway demands)")]
    checks = [ok("ALIPAY_SIGN_TYPE", s.sign_type)]
    if s.sign_type == "DSA":
        checks = [warn("ALIPAY_SIGN_TYPE", "DSA works, but the cryptography library deprecates "
                                           "DSA and will remove it: ask Alipay to move the "
                                           "contract to RSA")]
    if s.sign_type == "MD5":
        return checks + [_md5_key(s.key.reveal())]
    return checks + _pem_files(s)


def _md5_key(key: str) -> Check:
    name = "ALIPAY_KEY"
    if not key:
        return fail(name, "not set (nor ALIPAY_KEY_FILE): MD5 signing needs the 32-character key")
    if not _MD5_KEY_RE.fullmatch(key):
        plain = key.isascii() and key.isalnum()
        odd = "" if plain else ", some of them neither letters nor digits"
        return fail(name, f"must be 32 letters and digits (got {len(key)} characters{odd})")
    return ok(name, "32 letters and digits")


def _pem_files(s: Settings) -> list[Check]:
    checks: list[Check] = []
    kind = s.sign_type
    private, public = s.private_key_pem.reveal(), s.public_key_pem
    loaded_private = loaded_public = False
    if not private:
        checks.append(fail("ALIPAY_PRIVATE_KEY_FILE",
                           f"not set: {kind} signing needs the merchant's private key (PEM)"))
    else:
        loaded_private = _loads(checks, "ALIPAY_PRIVATE_KEY_FILE", kind, private_key_pem=private)
    if not public:
        checks.append(fail("ALIPAY_PUBLIC_KEY_FILE",
                           f"not set: Alipay's {kind} public key is needed to verify answers"))
    else:
        loaded_public = _loads(checks, "ALIPAY_PUBLIC_KEY_FILE", kind, public_key_pem=public)
    if loaded_private and loaded_public:
        pair = make_signer(kind, private_key_pem=private, public_key_pem=public)
        if pair.verify(b"check-config", pair.sign(b"check-config")):
            checks.append(warn("ALIPAY_PUBLIC_KEY_FILE",
                               "is the public half of your own private key; it must be Alipay's "
                               "public key, or real answers will not verify"))
    return checks


def _loads(checks: list[Check], name: str, kind: str, **material: str) -> bool:
    try:
        make_signer(kind, **material)
    except ConfigError as exc:
        checks.append(fail(name, str(exc).removeprefix(f"{name}: ")))
        return False
    what = "private key" if "private_key_pem" in material else "public key"
    checks.append(ok(name, f"loads as a {kind} {what}"))
    return True


def _charset(s: Settings) -> Check:
    if s.input_charset not in SUPPORTED_CHARSETS:
        return fail("ALIPAY_INPUT_CHARSET", f"{s.input_charset!r} is not one of "
                                            f"{', '.join(SUPPORTED_CHARSETS)}")
    return ok("ALIPAY_INPUT_CHARSET", s.input_charset)


def _gateway(s: Settings) -> list[Check]:
    name = "ALIPAY_GATEWAY_URL"
    checks: list[Check] = []
    try:
        check_gateway_url(s.gateway_url, sandbox=s.sandbox,
                          allowed_hosts=s.gateway_allowed_hosts)
    except ConfigError as exc:
        checks.append(fail(name, str(exc).removeprefix(f"{name}: ")))
    else:
        if s.sandbox:
            checks.append(ok(name, f"{s.gateway_url} (sandbox mode: a loopback emulator, "
                                   "not Alipay)"))
        elif s.gateway_url != DEFAULT_GATEWAY_URL:
            checks.append(warn(name, f"{s.gateway_url} is not Alipay's gateway "
                                     f"{DEFAULT_GATEWAY_URL}; allowed by "
                                     "ALIPAY_GATEWAY_ALLOWED_HOSTS: it must forward to "
                                     "Alipay's gateway"))
        else:
            checks.append(ok(name, f"{s.gateway_url} (https, certificate verified)"))
    if s.ca_bundle:
        from unsign_worker.protocol.gateway import check_ca_bundle  # the worker's own rule

        try:
            check_ca_bundle(s.ca_bundle)
        except ConfigError:
            checks.append(fail("ALIPAY_CA_BUNDLE", f"cannot load {s.ca_bundle!r}: not a "
                                                   "readable PEM file or directory of CA "
                                                   "certificates"))
        else:
            checks.append(ok("ALIPAY_CA_BUNDLE", f"{s.ca_bundle} loads; only it is trusted"))
    return checks


# --- Redis -----------------------------------------------------------------------------------


def check_redis(url: str, *, name: str, timeout_seconds: float = REDIS_TIMEOUT_SECONDS,
                key_prefix: str | None = None) -> list[Check]:
    """PING the Redis at ``url``; if it answers, look at its eviction and persistence, and with
    ``key_prefix`` at the producers (:func:`producer_checks`)."""
    import redis  # only here: the other checks must not need a Redis library loaded
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from unsign_worker.store.sentinel import SENTINEL_SCHEMES, connect

    shown = redact_url(url)
    if urlsplit(url).scheme not in ("redis", "rediss", "unix", *SENTINEL_SCHEMES):
        return [warn(name, f"{shown} is not a Redis URL; not checked")]
    try:
        client = connect(url, socket_connect_timeout=timeout_seconds,
                         socket_timeout=timeout_seconds, retry=Retry(NoBackoff(), 0))
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return [Check(name, CheckStatus.ERROR, f"{shown} does not answer PING: {exc}",
                      advice=_local_redis_advice(url, timeout_seconds))]
    try:
        producers = producer_checks(client, key_prefix) if key_prefix is not None else []
        return [ok(name, f"{shown} answers PING"), *redis_health(client, name=name),
                *producers]
    finally:
        client.close()


def _local_redis_advice(url: str, timeout_seconds: float) -> str:
    """How to get the Redis a loopback ``redis://`` URL names, if nothing listens on its port;
    "" otherwise (another host, or a server that is there but refused: installing won't help)."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "", parts.port or 6379
    except ValueError:
        return ""
    if parts.scheme != "redis" or not (host in LOOPBACK_HOSTS or host.startswith("127.")):
        return ""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return ""  # something listens: a password, a full server, not Redis...
    except ConnectionRefusedError:
        return start_redis_advice(port)
    except OSError:
        return ""


def start_redis_advice(port: int, *, which: Callable[[str], str | None] = shutil.which
                       ) -> str:
    """One line on starting ``redis-server`` on ``port`` of this machine when it is on PATH
    (``which``), or on installing it when it is not."""
    start = "redis-server --daemonize yes" + ("" if port == 6379 else f" --port {port}")
    server = which("redis-server")
    if server:
        return f"{server} is installed but not running on port {port}: start it with `{start}`"
    return ("redis-server is not installed (not on PATH): `sudo apt-get install redis-server` "
            f"(Debian/Ubuntu) or `brew install redis` (macOS), then `{start}`; or set "
            "UNSIGN_REDIS_URL to a Redis that runs")


def redis_health(client: Any, *, name: str) -> list[Check]:
    """Eviction policy and persistence of a reachable Redis (``CONFIG GET``; may be disabled)."""
    import redis

    try:
        policy = _config(client, "maxmemory-policy")
        appendonly = _config(client, "appendonly")
        save = _config(client, "save")
    except redis.RedisError as exc:
        return [warn(name, f"CONFIG GET is not allowed ({exc}); make sure maxmemory-policy is "
                           "noeviction and persistence (AOF or RDB) is on")]
    checks: list[Check] = []
    if policy != "noeviction":
        checks.append(warn(name, f"maxmemory-policy is {policy!r}: under memory pressure Redis "
                                 "may evict queued jobs and dedup keys; use noeviction"))
    else:
        checks.append(ok(name, "maxmemory-policy is noeviction"))
    if appendonly == "yes":
        try:
            fsync = _config(client, "appendfsync")
        except redis.RedisError:
            fsync = ""
        if fsync == "no":
            checks.append(warn(name, "appendfsync no: the OS decides when the append-only file "
                                     "reaches the disk, so a crash can lose many seconds of "
                                     "outcomes and hook marks (hooks then run again); use "
                                     "everysec or always (see docs/reliability.md)"))
        else:
            checks.append(ok(name, "persistence: AOF on"))
    elif save.strip():
        checks.append(warn(name, f"persistence: RDB snapshots only (save {save}): a restart "
                                 "loses every write since the last snapshot (outcomes, dedup "
                                 "records, hook marks: hooks then run again); turn on "
                                 "appendonly"))
    else:
        checks.append(warn(name, "no persistence (appendonly no, save ''): a Redis restart "
                                 "loses queued jobs, dedup keys and dead letters"))
    return checks


def producer_checks(client: Any, key_prefix: str) -> list[Check]:
    """The producers the workers read, and entries stranded in the shared stream of earlier
    versions (no worker reads it any more)."""
    import redis

    from unsign_worker.store.keys import Keys
    from unsign_worker.store.producer_registry import ProducerRegistry

    registry = ProducerRegistry(client, Keys(key_prefix))
    try:
        names, stranded = list(registry.all()), registry.legacy_waiting()
    except redis.RedisError as exc:
        return [warn("producers", f"cannot read the producers ({exc})")]
    checks = [ok("producers", f"{len(names)} registered: {', '.join(names)}" if names else
                 "none registered: only the operator and campaigns enqueue (applications are "
                 "added with `unsign-worker producer add NAME`)")]
    if stranded:
        checks.append(warn("producers", f"{stranded} entries wait in {key_prefix}inbox, the "
                                        "stream every producer shared before each had its "
                                        "own; no worker reads it: move them to their "
                                        "producer's stream with `unsign-worker producer "
                                        "adopt-legacy NAME`"))
    return checks


def _config(client: Any, parameter: str) -> str:
    value = client.config_get(parameter).get(parameter, "")
    return value.decode() if isinstance(value, bytes) else str(value)
