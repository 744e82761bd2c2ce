"""Redis and the broker behind a password, an ACL user, and TLS.

Each test starts a private ``redis-server`` on a free loopback port: one with ``requirepass``
and an ACL user limited to the project's key prefix, one speaking only TLS with a certificate
from a private CA (trustme). A worker, the producer and the operator commands run through
``redis://user:password@…`` and ``rediss://…``; passwords never appear in logs, reprs or
command output; a ``rediss://`` URL always verifies the server's certificate (kombu alone would
not), and settings refuse URLs that turn the check off.

The JSON-only broker (a pickled message refused and logged, never executed) is tested in
``tests/worker/test_worker_faults.py::test_the_worker_refuses_pickled_messages``.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import celeryconfig
from tests.plugins.emulator import KEY, PARTNER, Emulator, cae
from tests.plugins.ports import free_port
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from unsign_worker.cli.main import cli
from unsign_worker.producers.producer import producer_app
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.hosts import redact_url
from unsign_worker.settings import Settings

ADMIN_PASSWORD = "admin-pw-NEVER-LOGGED-1"
USER = "unsign"
USER_PASSWORD = "user-pw-NEVER-LOGGED-2"
PREFIX = "unsign:"
#: ACL rules of the worker's user: every command but the dangerous ones (FLUSHALL, CONFIG,
#: KEYS, DEBUG...), every channel (kombu's events and control messages); keys as parametrized.
ACL_COMMANDS = ["+@all", "-@dangerous"]

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server on PATH")


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, stopped by :meth:`stop`."""

    def __init__(self, tmp: Path, args: Sequence[str], *, admin_url: str,
                 ping_kwargs: dict[str, Any] | None = None) -> None:
        self.log = tmp / "redis.log"
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp), *args], stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.admin = redis.Redis.from_url(admin_url, socket_connect_timeout=2,
                                          **(ping_kwargs or {}))
        wait_for(lambda: self.proc.poll() is not None or self._pings(), timeout=30,
                 what="the private redis-server")
        assert self.proc.poll() is None, self.log.read_text(errors="replace")

    def _pings(self) -> bool:
        try:
            return bool(self.admin.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, int]]:
    """A private Redis with ``requirepass`` for the default user and the ACL user ``unsign``
    (its key patterns set by each test)."""
    port = free_port()
    server = RedisServer(tmp_path, ["--port", str(port), "--requirepass", ADMIN_PASSWORD],
                         admin_url=f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0")
    yield server, port
    server.stop()


def add_user(server: RedisServer, keys: list[str]) -> None:
    server.admin.acl_setuser(USER, enabled=True, passwords=[f"+{USER_PASSWORD}"], keys=keys,
                             channels=["*"], commands=ACL_COMMANDS)


def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def run_one_job(env: WorkerEnv, gateway: Emulator) -> dict[str, str]:
    """A worker and a job through ``env``'s Redis URL; returns the job's record."""
    env.start_worker("w1", concurrency=2)
    job_id = env.enqueue({"customer_code": "C00001"}, reference="through-auth")
    job = env.wait_terminal([job_id], timeout=90)[job_id]
    assert gateway.unsigns("a1") == 1
    return job


# --- password and ACL user ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("user", ["default", "acl"])
def test_a_worker_a_producer_and_the_commands_work_behind_a_password_and_never_show_it(
        acl_redis: tuple[RedisServer, int], emulator_factory: Any, worker_env_factory: Any,
        user: str) -> None:
    server, port = acl_redis
    if user == "acl":
        add_user(server, ["*"])
        url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{port}/0"
    else:
        url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0"
    gateway = emulator_factory([cae("a1", 1)])
    env: WorkerEnv = worker_env_factory(gateway_url=gateway.url, partner=PARTNER, key=KEY)
    env.redis_url, env.prefix = url, PREFIX
    env.__post_init__()
    # a worker logging at DEBUG, a producer and a job, through the password-protected URL
    env.start_worker("w1", concurrency=2, extra=["--loglevel", "DEBUG"])
    job_id = env.enqueue({"customer_code": "C00001"}, reference="through-auth")
    assert env.wait_terminal([job_id], timeout=90)[job_id]["state"] == "unsigned"
    assert gateway.unsigns("a1") == 1
    # the operator commands work the same way and never print the password
    outputs = [run_cli(env.env, *args) for args in (
        ("job", "show", job_id, "--json"), ("status", "--json"), ("check-config", "--json"),
        ("check-config",), ("status",))]
    assert json.loads(outputs[0][1])["state"] == "unsigned"
    assert outputs[1][0] == 0, outputs[1][1]
    redis_check = [c for c in json.loads(outputs[2][1])["checks"]
                   if c["name"] == "UNSIGN_REDIS_URL"][0]
    assert redis_check["status"] == "ok" and ":********@" in redis_check["message"]
    log = env.log_tail(lines=100_000)
    text = "\n".join(out for _, out in outputs) + log + repr(env.settings())
    assert USER_PASSWORD not in text and ADMIN_PASSWORD not in text
    assert ":********@" in repr(env.settings()) and "DEBUG" in log


@pytest.mark.slow
def test_an_acl_user_limited_to_the_key_prefix_is_enough_for_the_worker(
        acl_redis: tuple[RedisServer, int], emulator_factory: Any,
        worker_env_factory: Any) -> None:
    server, port = acl_redis
    add_user(server, [f"{PREFIX}*"])
    gateway = emulator_factory([cae("a1", 1)])
    env: WorkerEnv = worker_env_factory(gateway_url=gateway.url, partner=PARTNER, key=KEY)
    env.redis_url, env.prefix = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{port}/0", PREFIX
    env.__post_init__()
    env.start_worker("w1", concurrency=2)
    job_id = env.enqueue({"customer_code": "C00001"})
    assert env.wait_terminal([job_id], timeout=45)[job_id]["state"] == "unsigned"
    keys = [k.decode() for k in server.admin.scan_iter(count=1000)]
    assert all(k.startswith(PREFIX) for k in keys), keys


def test_a_wrong_password_fails_clearly_without_showing_any_password(
        acl_redis: tuple[RedisServer, int], tmp_path: Path) -> None:
    server, port = acl_redis
    add_user(server, ["*"])
    wrong = "wrong-pw-NEVER-LOGGED-3"
    env = {"UNSIGN_REDIS_URL": f"redis://{USER}:{wrong}@127.0.0.1:{port}/0",
           "UNSIGN_KEY_PREFIX": PREFIX, "ALIPAY_PARTNER": PARTNER, "ALIPAY_KEY": KEY,
           "UNSIGN_SANDBOX": "1", "ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do"}
    code, out = run_cli(env, "check-config", "--json")
    assert code == 1
    redis_check = [c for c in json.loads(out)["checks"] if c["name"] == "UNSIGN_REDIS_URL"]
    assert redis_check[0]["status"] == "error"
    assert "does not answer PING" in redis_check[0]["message"]
    status_code, status_out = run_cli(env, "status")
    assert status_code == 1 and "not reachable" in status_out
    for text in (out, status_out):
        assert wrong not in text and ADMIN_PASSWORD not in text and USER_PASSWORD not in text


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, int, Path]]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "server.pem",
                                                           "server.key"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert_file),
            "--tls-key-file", str(key_file), "--tls-ca-cert-file", str(ca_file),
            "--tls-auth-clients", "no", "--requirepass", ADMIN_PASSWORD]
    url = f"rediss://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"
    try:
        server = RedisServer(tmp_path, args, admin_url=url)
    except AssertionError as exc:  # the server exited: a build without TLS says so
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server cannot serve TLS (built without BUILD_TLS?): "
                        f"{str(exc)[-200:]}")
        raise
    yield server, port, ca_file
    server.stop()


def test_settings_make_a_rediss_broker_verify_the_certificate() -> None:
    url = "rediss://:pw@redis.example.com:6380/0?ssl_ca_certs=/etc/redis/ca.pem"
    config = celeryconfig.config_for(Settings(redis_url=url, broker_url=url))
    assert config["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                                        "ssl_ca_certs": "/etc/redis/ca.pem"}
    bare = celeryconfig.config_for(Settings(broker_url="rediss://redis.example.com:6380/0"))
    assert bare["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert "broker_use_ssl" not in celeryconfig.config_for(Settings())
    assert producer_app(url, PREFIX).conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED


@pytest.mark.parametrize("query", ["ssl_cert_reqs=none", "ssl_cert_reqs=CERT_NONE",
                                   "ssl_cert_reqs=optional", "ssl_check_hostname=false",
                                   "ssl_ca_certs=/ca.pem&ssl_cert_reqs=none"])
@pytest.mark.parametrize("variable", ["UNSIGN_REDIS_URL", "UNSIGN_BROKER_URL"])
def test_settings_refuse_a_rediss_url_that_turns_verification_off(
        query: str, variable: str) -> None:
    url = f"rediss://:{ADMIN_PASSWORD}@redis.example.com:6380/0?{query}"
    with pytest.raises(ConfigError, match=rf"^{variable}: ssl_") as refused:
        Settings.from_env({variable: url}, load_dotenv=False)
    assert ADMIN_PASSWORD not in str(refused.value)


def test_a_rediss_url_that_keeps_verification_on_is_accepted() -> None:
    url = "rediss://u:p@redis.example.com:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true"
    assert Settings.from_env({"UNSIGN_REDIS_URL": url}, load_dotenv=False).broker_url == url
    assert redact_url(url).startswith("rediss://u:********@")


@pytest.mark.slow
def test_a_worker_and_a_job_run_over_tls_with_the_private_ca(
        tls_redis: tuple[RedisServer, int, Path], emulator_factory: Any,
        worker_env_factory: Any) -> None:
    server, port, ca_file = tls_redis
    url = f"rediss://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"
    gateway = emulator_factory([cae("a1", 1)])
    env: WorkerEnv = worker_env_factory(gateway_url=gateway.url, partner=PARTNER, key=KEY)
    env.redis_url = url
    env.__post_init__()
    job = run_one_job(env, gateway)
    assert job["state"] == "unsigned"
    assert any(k.startswith(env.prefix.encode()) for k in server.admin.scan_iter(count=100))
    code, out = run_cli(env.env, "check-config", "--json")
    redis_checks = [c for c in json.loads(out)["checks"] if c["name"] == "UNSIGN_REDIS_URL"]
    assert redis_checks[0]["status"] == "ok", redis_checks
    log = env.log_tail(lines=100_000)
    assert ADMIN_PASSWORD not in log + out
    assert "insecure SSL" not in log  # kombu's warning when it falls back to no verification


@pytest.mark.slow
def test_tls_fails_closed_on_a_certificate_the_client_does_not_trust(
        tls_redis: tuple[RedisServer, int, Path]) -> None:
    _server, port, _ca = tls_redis
    url = f"rediss://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0"  # no CA: the system store
    # kombu on its own would connect to this server without checking who it is
    from kombu import Connection

    with Connection(url) as insecure:
        insecure.ensure_connection(max_retries=1)
        assert insecure.connected
    # the project's producer refuses it
    app = producer_app(url, PREFIX)
    started = time.monotonic()
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # noqa: PT011
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    assert time.monotonic() - started < 60
    # and so do the Redis client and check-config, without showing the password
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    env = {"UNSIGN_REDIS_URL": url, "ALIPAY_PARTNER": PARTNER, "ALIPAY_KEY": KEY,
           "UNSIGN_SANDBOX": "1", "ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do"}
    code, out = run_cli(env, "check-config", "--json")
    assert code == 1 and "certificate verify failed" in out.lower()
    assert ADMIN_PASSWORD not in out
