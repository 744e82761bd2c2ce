"""``unsign-worker console``: the operations console (docs/console.md)."""

from __future__ import annotations

import logging
import os

import click

from unsign_worker.cli.common import fail, load_settings, redis_for
from unsign_worker.protocol.exceptions import ConfigError

#: The variable holding the console's credentials.
AUTH_ENV = "UNSIGN_CONSOLE_AUTH"


@click.command("console", epilog="""Examples:

\b
  UNSIGN_CONSOLE_AUTH='ops:a-long-password' unsign-worker console
  UNSIGN_CONSOLE_AUTH='ops:pw-one-long,lead:pw-two-long' unsign-worker console --host 0.0.0.0
""")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs UNSIGN_CONSOLE_AUTH.")
@click.option("--port", default=5560, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port, printed when ready).")
def console_cmd(host: str, port: int) -> None:
    """The operations console: escalations (dead-letter queue), campaigns, health, lookup.

    Credentials come from UNSIGN_CONSOLE_AUTH (user:password, several separated by commas, each
    password at least 8 characters) or the file UNSIGN_CONSOLE_AUTH_FILE names; never from the
    command line. It answers only the Host names it knows: the loopback names at its port, and
    those UNSIGN_CONSOLE_HOSTS lists (host[:port] or https://host[:port], comma-separated; only
    loopback names without credentials).
    """
    from unsign_worker.console import serve
    from unsign_worker.console.auth import parse_users
    from unsign_worker.console.hosts import HOSTS_ENV, parse_hosts

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    settings = load_settings()
    try:
        users = parse_users(_auth_spec())
        names = parse_hosts(os.environ.get(HOSTS_ENV, ""))
    except ConfigError as exc:
        fail(str(exc))
    who = f"{len(users)} user(s) from {AUTH_ENV}" if users else \
        f"NO credentials ({AUTH_ENV} not set; loopback only)"

    def ready(url: str) -> None:
        click.echo(f"console: {url} ({who})", err=False)

    try:
        serve(settings, redis_for(settings), host=host, port=port, users=users,
              on_ready=ready, names=names)
    except ConfigError as exc:
        fail(str(exc))


def _auth_spec() -> str:
    """UNSIGN_CONSOLE_AUTH, or the content of the file UNSIGN_CONSOLE_AUTH_FILE names (a
    compose secret)."""
    path = os.environ.get(f"{AUTH_ENV}_FILE", "")
    if not path:
        return os.environ.get(AUTH_ENV, "")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{AUTH_ENV}_FILE: cannot read {path}: {exc.strerror}") from None


def register(group: click.Group) -> None:
    group.add_command(console_cmd)
