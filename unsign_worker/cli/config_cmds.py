"""``unsign-worker check-config``, ``unsign-worker sign`` and ``unsign-worker acl``.

``check-config`` explains every setting, one line each (``✓`` fine, ``!`` warning, ``✗`` error),
and exits 0 only when there is no error. Warnings keep the exit code at 0, with one exception
made an error on purpose: a partner listed in ``ALIPAY_TEST_PARTNERS`` used outside sandbox mode
(test accounts are charged 3% fees).

``sign`` prints the string to sign and its signature for given parameters, with the configured
key: the merchant's own aid for "why ILLEGAL_SIGN?". It is the one command that prints a
signature, on purpose; it never prints the key.

``acl`` prints the Redis ACL users of the worker, the operator and each producer for the key
prefix, as lines of a Redis ``aclfile`` (:mod:`unsign_worker.store.acl`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

import click

from unsign_worker.ops.config_checks import (
    Check,
    CheckStatus,
    check_redis,
    check_settings,
    fail,
)
from unsign_worker.ops.gateway_probe import probe_gateway
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.param_rules import validate_partner
from unsign_worker.protocol.params import QUERY_SERVICE, SERVICE
from unsign_worker.protocol.signing import UNSIGNED_PARAMS, make_signer, string_to_sign
from unsign_worker.settings import (
    DEFAULT_KEY_PREFIX,
    SUPPORTED_CHARSETS,
    SUPPORTED_SIGN_TYPES,
    Settings,
)

_MARKS = {CheckStatus.OK: "✓", CheckStatus.WARNING: "!", CheckStatus.ERROR: "✗"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register(group: click.Group) -> None:
    """Add ``check-config``, ``sign`` and ``acl`` to the ``unsign-worker`` group."""
    group.add_command(check_config)
    group.add_command(sign)
    group.add_command(acl)


@click.command("acl", epilog="""Examples:

\b
  unsign-worker acl > users.acl
  unsign-worker acl --producer crm --producer billing > users.acl
""")
@click.option("--prefix", default=None,
              help="Key prefix (default: UNSIGN_KEY_PREFIX, else unsign:).")
@click.option("--user-prefix", default="unsign-", show_default=True,
              help="Prefix of the user names.")
@click.option("--producer", "producers", multiple=True, metavar="NAME",
              help="Also print the user of this producing application (repeatable).")
def acl(prefix: str | None, user_prefix: str, producers: tuple[str, ...]) -> None:
    """Print the Redis ACL users of the worker, the operator and each producer (an aclfile).

    Passwords are not printed: add each user's own. A producer also needs `unsign-worker
    producer add NAME`. See docs/security.md for who may do what.
    """
    from unsign_worker.store.acl import acl_file

    chosen = prefix if prefix is not None else (os.environ.get("UNSIGN_KEY_PREFIX")
                                                 or DEFAULT_KEY_PREFIX)
    try:
        click.echo(acl_file(chosen, user_prefix, producers), nl=False)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# --- check-config ----------------------------------------------------------------------------


def run_checks(settings: Settings, *, probe: bool) -> list[Check]:
    """Every check, in the order they are printed."""
    checks = check_settings(settings)
    checks += check_redis(settings.redis_url, name="UNSIGN_REDIS_URL",
                          key_prefix=settings.key_prefix)
    if settings.broker_url != settings.redis_url:
        checks += check_redis(settings.broker_url, name="UNSIGN_BROKER_URL")
    gateway_ok = not any(c.name == "ALIPAY_GATEWAY_URL" and c.status == CheckStatus.ERROR
                         for c in checks)
    if probe and gateway_ok:
        checks += probe_gateway(settings)
    elif probe:
        checks.append(fail("probe", "skipped: ALIPAY_GATEWAY_URL is not allowed"))
    return checks


@click.command("check-config")
@click.option("--probe", is_flag=True,
              help="Also resolve the gateway through DNS and complete a TLS handshake "
                   "(no request is sent).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_config(probe: bool, as_json: bool) -> None:
    """Validate the configuration and explain each setting; exit 0 only if all is well."""
    # imported here: cli.main imports this module while it registers the commands
    from unsign_worker.cli.main import EXIT_ERROR, EXIT_OK

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        checks = [fail("settings", str(exc))]
    else:
        checks = run_checks(settings, probe=probe)
    errors = sum(c.status == CheckStatus.ERROR for c in checks)
    warnings = sum(c.status == CheckStatus.WARNING for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": errors == 0, "errors": errors, "warnings": warnings,
                               "checks": [c.as_dict() for c in checks]},
                              ensure_ascii=False, indent=2))
    else:
        for check in checks:
            click.echo(f"{_MARKS[check.status]} {check.name}: {check.message}")
            if check.advice:
                click.echo(f"  → {check.advice}")
        verdict = "configuration OK" if errors == 0 else "configuration NOT OK"
        click.echo(f"{verdict}: {errors} error(s), {warnings} warning(s)")
    # SystemExit rather than ctx.exit: with standalone_mode=False click turns ctx.exit(code) into
    # a return value that main() does not pass on
    raise SystemExit(EXIT_OK if errors == 0 else EXIT_ERROR)


# --- sign ---------------------------------------------------------------------------------


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}`` (split at the first ``=``).

    Raises:
        click.BadParameter: an argument is not ``name=value``, names a parameter twice, or names
            ``sign``/``sign_type`` (which are never signed).
    """
    params: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        name, equals, value = pair.partition("=")
        where = f"argument {position} ({pair!r})"
        if not equals:
            raise click.BadParameter(f"{where}: expected name=value", param_hint="PARAMS")
        if not _NAME_RE.fullmatch(name):
            raise click.BadParameter(f"{where}: {name!r} is not a parameter name (letters, "
                                     "digits and '_')", param_hint="PARAMS")
        if name in UNSIGNED_PARAMS:
            raise click.BadParameter(f"{where}: {name} never enters the string to sign"
                                     + ("; use --sign-type" if name == "sign_type" else ""),
                                     param_hint="PARAMS")
        if name in params:
            raise click.BadParameter(f"{where}: {name} is given twice", param_hint="PARAMS")
        params[name] = value
    return params


def _pick_charset(option: str | None, params: dict[str, str], settings: Settings) -> str:
    given = params.get("_input_charset") or None
    if option and given and option.lower() != given.lower():
        raise click.UsageError(f"--charset {option} and _input_charset={given} disagree")
    charset = option or given or settings.input_charset
    if charset.lower() not in SUPPORTED_CHARSETS:
        source = "--charset" if option else "_input_charset" if given else "ALIPAY_INPUT_CHARSET"
        raise click.UsageError(f"{source}: {charset!r} is not one of "
                               f"{', '.join(SUPPORTED_CHARSETS)}")
    params.setdefault("_input_charset", charset)
    return charset.lower()


@click.command("sign")
@click.option("--charset", default=None,
              help="_input_charset to sign with (default: ALIPAY_INPUT_CHARSET).")
@click.option("--sign-type", default=None,
              help="MD5, RSA or DSA, upper case (default: ALIPAY_SIGN_TYPE).")
@click.argument("pairs", nargs=-1, metavar="NAME=VALUE...")
def sign(charset: str | None, sign_type: str | None, pairs: tuple[str, ...]) -> None:
    """Print the string to sign and its signature for NAME=VALUE parameters, as JSON.

    service, partner and _input_charset are filled in from the settings unless given. Values are
    taken raw (quote them for the shell), exactly as they must be signed.
    """
    params = parse_pairs(pairs)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if sign_type is not None and sign_type not in SUPPORTED_SIGN_TYPES:
        raise click.UsageError(f"--sign-type: {sign_type!r} is not one of "
                               f"{', '.join(SUPPORTED_SIGN_TYPES)} (upper case)")
    kind = sign_type or settings.sign_type
    encoding = _pick_charset(charset, params, settings)
    params.setdefault("service", SERVICE)
    if params["service"] not in (SERVICE, QUERY_SERVICE):
        raise click.UsageError(f"service: {params['service']!r} is not a service of this "
                               f"product; only {SERVICE} and {QUERY_SERVICE} are signed")
    if "partner" not in params:
        if not settings.partner:
            raise click.ClickException("partner: not given, and ALIPAY_PARTNER is not set")
        params["partner"] = settings.partner
    if validate_partner(params["partner"]):
        click.echo("note: partner is not 16 digits starting with 2088 (the gateway will answer "
                   "ILLEGAL_PARTNER)", err=True)
    for name in sorted(n for n, v in params.items() if v == ""):
        click.echo(f"note: {name} is empty, so it is neither sent nor signed", err=True)
    click.echo(json.dumps(_signed(params, kind, encoding, settings), ensure_ascii=False,
                          indent=2))


def _signed(params: dict[str, str], kind: str, encoding: str, settings: Settings
            ) -> dict[str, str]:
    try:
        signer = make_signer(kind, key=settings.key.reveal(),
                             private_key_pem=settings.private_key_pem.reveal() or None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not signer.can_sign:
        needed = "ALIPAY_KEY (or ALIPAY_KEY_FILE)" if kind == "MD5" else "ALIPAY_PRIVATE_KEY_FILE"
        raise click.ClickException(f"{needed} is not set: cannot sign with {kind}")
    text = string_to_sign(params)
    for name, value in params.items():
        try:
            value.encode(encoding)
        except UnicodeEncodeError as exc:
            raise click.ClickException(
                f"{name}: {value[exc.start:exc.end]!r} cannot be encoded in {encoding}") from None
    return {"string_to_sign": text, "sign": signer.sign(text.encode(encoding)),
            "sign_type": signer.sign_type}
