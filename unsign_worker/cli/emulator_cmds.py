"""``unsign-worker emulator``: serve the gateway emulator, write a data set for it (``seed``),
load agreements into a running one (``load``), or write a sandbox PKI to serve it over HTTPS
(``tls``).

``unsign-worker emulator --agreements FILE`` and ``unsign-worker emulator serve --agreements
FILE`` are the same. The MD5 key comes from ``ALIPAY_KEY`` (or ``--key-file`` /
``ALIPAY_KEY_FILE``), never from the command line, where ``ps`` would show it. HTTPS: the
certificate chain and key from ``--tls-cert`` / ``--tls-key`` (or ``EMULATOR_TLS_CERT_FILE`` /
``EMULATOR_TLS_KEY_FILE``), or a sandbox PKI made in ``--tls-dir``.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.files import write_agreements, write_campaign, write_expected
from unsign_worker.emulator.seed import DEFAULT_PARTNER
from unsign_worker.protocol.exceptions import ConfigError

if TYPE_CHECKING:
    import ssl

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8010
#: The variables naming the certificate chain and key to serve HTTPS with (both or neither).
TLS_ENV = ("EMULATOR_TLS_CERT_FILE", "EMULATOR_TLS_KEY_FILE")


def _env() -> dict[str, str]:
    """The process environment over ``.env`` (the worker reads the same variables)."""
    from dotenv import dotenv_values

    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ)
    return merged


def _read(path: str | None, option: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path!r}: {exc.strerror}") from None


def _serve_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", default=DEFAULT_HOST, show_default=True,
                     help="Address to bind; only loopback unless --public."),
        click.option("--port", default=DEFAULT_PORT, show_default=True, type=int,
                     help="TCP port (0: any free port, printed when ready)."),
        click.option("--agreements", "agreements_path", type=click.Path(dir_okay=False),
                     help="Agreements file (JSON, see docs/emulator.md). Required to serve."),
        click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False),
                     help="Scenario file: starting faults and scripts (JSON)."),
        click.option("--partner", default=None,
                     help="Partner ID [default: ALIPAY_PARTNER, else the agreements file's]."),
        click.option("--key-file", default=None, type=click.Path(dir_okay=False),
                     help="File holding the MD5 key [default: ALIPAY_KEY or ALIPAY_KEY_FILE]."),
        click.option("--merchant-public-key", default=None, type=click.Path(dir_okay=False),
                     help="Merchant public key (PEM) verifying RSA/DSA requests "
                          "[env EMULATOR_MERCHANT_PUBLIC_KEY_FILE]."),
        click.option("--alipay-private-key", default=None, type=click.Path(dir_okay=False),
                     help="'Alipay' private key (PEM) signing RSA/DSA answers "
                          "[env EMULATOR_ALIPAY_PRIVATE_KEY_FILE]."),
        click.option("--tls-cert", default=None, type=click.Path(dir_okay=False),
                     help="Serve HTTPS with this certificate chain (PEM: the certificate, then "
                          "its intermediates); needs --tls-key [env EMULATOR_TLS_CERT_FILE]."),
        click.option("--tls-key", default=None, type=click.Path(dir_okay=False),
                     help="The private key of --tls-cert (PEM, unencrypted) "
                          "[env EMULATOR_TLS_KEY_FILE]."),
        click.option("--tls-dir", default=None, type=click.Path(file_okay=False),
                     help="Serve HTTPS with the sandbox PKI in this directory, made there when "
                          "missing or no longer valid (see 'emulator tls')."),
        click.option("--public", is_flag=True,
                     help="Allow a non-loopback --host (the admin API still answers loopback "
                          "clients only)."),
        click.option("--sign-errors", is_flag=True, default=None,
                     help="Sign customer_unsign error answers (the document's sample is "
                          "unsigned)."),
        click.option("--sign-query", is_flag=True, default=None,
                     help="Sign query_customer_protocol answers (the document's are unsigned)."),
        click.option("--answer-charset", default=None,
                     type=click.Choice(["utf-8", "gbk", "gb2312", "gb18030", "request"]),
                     help="Declare and encode answers in this charset ('request': the "
                          "request's _input_charset) [default: utf-8, as the samples]."),
        click.option("--lenient", is_flag=True, default=None,
                     help="Accept parameters sent with an empty value, which the usage rules "
                          "forbid (strict by default: ILLEGAL_ARGUMENT). For experiments."),
        click.option("--uvloop/--no-uvloop", "use_uvloop", default=True, show_default=True,
                     help="Use uvloop when it is installed."),
        click.option("--request-log", default=None, type=click.Path(dir_okay=False),
                     help="Append one JSON line per gateway request to this file: times, "
                          "client address, service, agreement id, answer code, whether it "
                          "unsigned (never a parameter or signature)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _pki_hosts(bind_host: str) -> tuple[str, ...]:
    """The names a ``--tls-dir`` certificate is for: the loopback ones and the bound address
    (unless it is a wildcard such as 0.0.0.0)."""
    from unsign_worker.emulator.tls import DEFAULT_HOSTS

    try:
        wildcard = ipaddress.ip_address(bind_host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    return DEFAULT_HOSTS if wildcard else tuple(dict.fromkeys((*DEFAULT_HOSTS, bind_host)))


def _tls(*, host: str, tls_cert: str | None, tls_key: str | None, tls_dir: str | None,
         env: dict[str, str]) -> tuple[ssl.SSLContext | None, str]:
    """The context to serve HTTPS with (None: plain HTTP) and the CA file to trust, when known.

    Raises:
        click.UsageError: a certificate without its key (or the reverse), or --tls-dir with
            them.
        EmulatorConfigError: a file cannot be loaded or written (the message names it).
    """
    from unsign_worker.emulator.tls import make_sandbox_pki, server_ssl_context

    if tls_dir and (tls_cert or tls_key):
        raise click.UsageError("--tls-dir makes its own certificate: give either --tls-dir or "
                               "--tls-cert with --tls-key, not both")
    if tls_dir:
        try:
            pki = make_sandbox_pki(tls_dir, hosts=_pki_hosts(host))
        except EmulatorConfigError as exc:
            raise EmulatorConfigError(f"--tls-dir: {exc}") from None
        return server_ssl_context(pki.cert_file, pki.key_file,
                                  cert_label="--tls-dir certificate",
                                  key_label="--tls-dir key"), str(pki.ca_file)
    labels: tuple[str, str] = ("--tls-cert", "--tls-key")
    cert, key = tls_cert, tls_key
    if not cert and not key:
        labels = TLS_ENV
        cert, key = (env.get(name, "").strip() for name in TLS_ENV)
    if not cert and not key:
        return None, ""
    if not cert or not key:
        given, missing = labels if cert else labels[::-1]
        raise click.UsageError(f"{given} needs {missing}: give the certificate chain and its "
                               "private key together, or neither")
    return server_ssl_context(cert, key, cert_label=labels[0], key_label=labels[1]), ""


def _serve(*, host: str, port: int, agreements_path: str | None, scenario_path: str | None,
           partner: str | None, key_file: str | None, merchant_public_key: str | None,
           alipay_private_key: str | None, public: bool, use_uvloop: bool,
           sign_errors: bool | None, sign_query: bool | None,
           answer_charset: str | None, lenient: bool | None, tls_cert: str | None,
           tls_key: str | None, tls_dir: str | None, request_log: str | None) -> None:
    from dataclasses import replace

    from unsign_worker.emulator.config import build_config, load_agreements_file
    from unsign_worker.emulator.options import AnswerOptions
    from unsign_worker.emulator.request_log import RequestLog
    from unsign_worker.emulator.runner import install_uvloop, serve_forever
    from unsign_worker.emulator.scenario import Scenario, load_scenario_file
    from unsign_worker.emulator.server import check_bind
    from unsign_worker.emulator.state import EmulatorState

    if not agreements_path:
        raise click.UsageError("--agreements FILE is required to serve")
    try:
        check_bind(host, public=public)
        env = _env()
        ssl_context, ca_file = _tls(host=host, tls_cert=tls_cert, tls_key=tls_key,
                                    tls_dir=tls_dir, env=env)
        loaded = load_agreements_file(agreements_path)
        key = _read(key_file, "--key-file") or env.get("ALIPAY_KEY", "").strip() or _read(
            env.get("ALIPAY_KEY_FILE"), "ALIPAY_KEY_FILE")
        config = build_config(
            partner=(partner or env.get("ALIPAY_PARTNER") or loaded.partner).strip(), key=key,
            merchant_public_key_pem=_read(
                merchant_public_key or env.get("EMULATOR_MERCHANT_PUBLIC_KEY_FILE"),
                "--merchant-public-key"),
            alipay_private_key_pem=_read(
                alipay_private_key or env.get("EMULATOR_ALIPAY_PRIVATE_KEY_FILE"),
                "--alipay-private-key"))
        scenario = load_scenario_file(scenario_path) if scenario_path else Scenario()
        flags = {name: value for name, value in (("sign_errors", sign_errors),
                                                 ("sign_query", sign_query),
                                                 ("charset", answer_charset),
                                                 ("lenient", lenient))
                 if value is not None}
        scenario = replace(scenario, options=AnswerOptions.from_mapping(
            flags, where="options", base=scenario.options))
        state = EmulatorState(config, loaded.agreements, scenario)
        if request_log:
            state.request_log = RequestLog(request_log)
    except (ConfigError, EmulatorConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"--request-log: cannot write {request_log!r}: "
                                   f"{exc.strerror}") from None
    if use_uvloop:
        install_uvloop()

    def ready(url: str) -> None:
        trust = f"; trust {ca_file} (ALIPAY_CA_BUNDLE)" if ca_file else ""
        click.echo(f"emulator: serving {url} for partner {config.partner} "
                   f"({len(state.book)} agreements, sign types {', '.join(config.sign_types)}); "
                   f"admin API under /_emulator/{trust}", err=False)
        sys.stdout.flush()

    try:
        serve_forever(state, host=host, port=port, public=public, on_ready=ready,
                      ssl_context=ssl_context)
    except EmulatorConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("emulator", invoke_without_command=True)
@_serve_options
@click.pass_context
def emulator(ctx: click.Context, /, **options: Any) -> None:
    """A sandbox that behaves like Alipay's MAPI gateway (see docs/emulator.md).

    Without a subcommand, serves it (same options as 'serve').
    """
    if ctx.invoked_subcommand is None:
        _serve(**options)


@emulator.command("serve")
@_serve_options
def serve(**options: Any) -> None:
    """Serve /gateway.do and the admin API under /_emulator/."""
    _serve(**options)


@emulator.command("seed")
@click.option("--count", required=True, type=click.IntRange(min=0), help="Campaign rows.")
@click.option("--mix", default="demo", show_default=True,
              help="Outcome mix: a preset (demo, clean, mixed) or a JSON file "
                   "{outcome: weight}.")
@click.option("--agreements", "agreements_out", required=True,
              type=click.Path(dir_okay=False, writable=True), help="Agreements file to write.")
@click.option("--campaign", "campaign_out", required=True,
              type=click.Path(dir_okay=False, writable=True), help="Campaign CSV to write.")
@click.option("--expected", "expected_out", default=None,
              type=click.Path(dir_okay=False, writable=True),
              help="Also write reference,outcome (the intended outcome of each row).")
@click.option("--partner", default=None,
              help=f"Partner ID [default: ALIPAY_PARTNER, else {DEFAULT_PARTNER}].")
@click.option("--seed", "seed", default=None, type=int,
              help="Random seed, 0-99999: the same seed gives the same files, another seed "
                   "other identities [default: drawn at random, and printed].")
def seed_cmd(count: int, mix: str, agreements_out: str, campaign_out: str,
             expected_out: str | None, partner: str | None, seed: int | None) -> None:
    """Write an agreements file and a campaign CSV with a chosen mix of outcomes."""
    from unsign_worker.emulator.seed import generate, resolve_mix
    from unsign_worker.protocol.param_rules import validate_partner

    partner = (partner or _env().get("ALIPAY_PARTNER") or DEFAULT_PARTNER).strip()
    try:
        problems = validate_partner(partner)
        if problems:
            raise ConfigError(f"--partner: {problems[0].message}")
        data = generate(count, resolve_mix(mix), partner=partner, seed=seed)
    except (ConfigError, EmulatorConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    write_agreements(agreements_out, data)
    write_campaign(campaign_out, data)
    if expected_out:
        write_expected(expected_out, data)
    summary = Counter(data.outcomes.values())
    click.echo(f"wrote {len(data.agreements)} agreements to {agreements_out} and "
               f"{len(data.rows)} rows to {campaign_out} (partner {partner}, seed {data.seed})")
    for outcome, n in sorted(summary.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {outcome:<32} {n}")


@emulator.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", show_default=True,
              help="The running emulator (its gateway URL works too); loopback only.")
@click.option("--ca-bundle", default=None, type=click.Path(dir_okay=False),
              help="Over HTTPS: the CA file to trust (a sandbox PKI's ca.pem) "
                   "[default: ALIPAY_CA_BUNDLE].")
def load_cmd(file: str, url: str, ca_bundle: str | None) -> None:
    """Load the agreements of FILE (an agreements file, e.g. from `emulator seed`) into a running
    emulator, without a restart: all of them, or none if an id or identity is already there."""
    from unsign_worker.emulator.admin import EmulatorAdmin, EmulatorAdminError
    from unsign_worker.emulator.config import parse_agreements, read_json_file

    try:
        data = read_json_file(file, "FILE")
        parse_agreements(data, source=file)  # a bad file is named here, not by the server
    except EmulatorConfigError as exc:
        raise click.ClickException(str(exc)) from None
    bundle = ca_bundle or _env().get("ALIPAY_CA_BUNDLE") or None
    admin = EmulatorAdmin(url, ca_bundle=bundle if url.startswith("https:") else None)
    try:
        # parse_agreements refused anything but a JSON object
        result = admin.load_agreements(data if isinstance(data, dict) else {})
    except EmulatorAdminError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        admin.close()
    click.echo(f"loaded {result['added']} agreements into {admin.base_url} "
               f"({result['agreements']} in all)")


@emulator.command("tls")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--host", "hosts", multiple=True, metavar="NAME",
              help="Another host name or IP address the certificate is for (repeatable), "
                   "besides localhost, 127.0.0.1 and ::1.")
def tls_cmd(directory: str, hosts: tuple[str, ...]) -> None:
    """Write a sandbox PKI to serve HTTPS with (kept while still valid for the same hosts).

    DIRECTORY receives ca.pem (the root CA a worker trusts), gateway.pem (the emulator's
    certificate and the intermediate CA) and gateway-key.pem (its key, mode 0600).
    """
    from unsign_worker.emulator.tls import DEFAULT_HOSTS, make_sandbox_pki

    names = tuple(dict.fromkeys((*DEFAULT_HOSTS, *hosts)))
    try:
        pki = make_sandbox_pki(directory, hosts=names)
    except EmulatorConfigError as exc:
        raise click.ClickException(str(exc)) from None
    folder = pki.ca_file.parent
    if pki.made:
        click.echo(f"wrote a sandbox PKI for {', '.join(names)} in {folder}:")
    else:
        click.echo(f"kept the sandbox PKI in {folder}: still valid for {', '.join(names)}")
    for path, what in ((pki.ca_file, "the root CA: the one file a worker trusts"),
                       (pki.cert_file, "the emulator's certificate and the intermediate CA"),
                       (pki.key_file, "its private key (mode 0600)")):
        click.echo(f"  {str(path):<{len(str(pki.key_file))}}  {what}")
    cert, key, ca = (shlex.quote(str(p)) for p in (pki.cert_file, pki.key_file, pki.ca_file))
    click.echo("\nserve HTTPS with it:\n"
               f"  unsign-worker emulator --tls-cert {cert} --tls-key {key} --agreements FILE\n"
               "\ntrust it in the worker:\n"
               f"  export ALIPAY_CA_BUNDLE={ca}\n"
               f"  export ALIPAY_GATEWAY_URL=https://localhost:{DEFAULT_PORT}/gateway.do")


def register(group: click.Group) -> None:
    """Add ``emulator`` to the ``unsign-worker`` command."""
    group.add_command(emulator)
