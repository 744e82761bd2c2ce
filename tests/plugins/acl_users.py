"""A private ``redis-server`` whose users are exactly the lines ``unsign-worker acl`` prints
(each given a password here), for the tests that play each Redis role against real rights.

:func:`start_acl_redis` runs ``unsign-worker acl --prefix P --producer NAME...`` through the
command line, loads every ``user`` line it prints with ``ACL SETUSER`` (plus a password, the
one thing the printed file leaves to the reader), and returns the server and a URL per user.
The default user keeps a password of its own (``ADMIN_PASSWORD``): the tests read and check
Redis through it, never through a role's user.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from click.testing import CliRunner

from tests.plugins.ports import free_port
from tests.system.test_security_redis import ADMIN_PASSWORD, RedisServer
from unsign_worker.cli.main import cli

#: The users' names start with this (the default of ``unsign-worker acl --user-prefix``).
USER_PREFIX = "unsign-"


def password(user: str) -> str:
    """The password a test gives ``user`` (never logged: the tests look for it in output)."""
    return f"{user}-pw-NEVER-LOGGED"


@dataclass
class AclRedis:
    """The server, its port, and each printed user's URL by name (``unsign-worker``,
    ``unsign-operator``, ``unsign-producer-<name>``)."""

    server: RedisServer
    port: int
    prefix: str
    urls: dict[str, str]
    #: the lines ``unsign-worker acl`` printed
    printed: str

    @property
    def admin(self) -> redis.Redis:
        return self.server.admin

    def url(self, role: str) -> str:
        """The URL of ``worker``, ``operator`` or ``producer-<name>``."""
        return self.urls[f"{USER_PREFIX}{role}"]

    def client(self, role: str) -> redis.Redis:
        """A client logged in as that role's user."""
        return redis.Redis.from_url(self.url(role), socket_connect_timeout=5)

    def scan(self, pattern: str) -> list[str]:
        """Every key matching ``pattern`` (as the admin sees them)."""
        return sorted(k.decode() for k in self.admin.scan_iter(match=pattern, count=1000))

    def stop(self) -> None:
        self.server.stop()


def printed_acl(prefix: str, producers: Sequence[str]) -> str:
    """What ``unsign-worker acl --prefix PREFIX --producer NAME...`` prints."""
    args = ["acl", "--prefix", prefix]
    for name in producers:
        args += ["--producer", name]
    printed = CliRunner().invoke(cli, args, env={"UNSIGN_KEY_PREFIX": prefix})
    assert printed.exit_code == 0, printed.output
    return printed.output


def start_acl_redis(tmp: Path, prefix: str, producers: Sequence[str]) -> AclRedis:
    """Start a private Redis with the printed users (stop it with :meth:`AclRedis.stop`)."""
    folder = tmp / f"acl-redis-{os.urandom(3).hex()}"
    folder.mkdir()
    port = free_port()
    server = RedisServer(folder, ["--port", str(port), "--requirepass", ADMIN_PASSWORD],
                         admin_url=f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0")
    try:
        printed = printed_acl(prefix, producers)
        urls: dict[str, str] = {}
        for line in printed.splitlines():
            if not line.startswith("user "):
                continue
            _, name, *rules = line.split()
            server.admin.execute_command("ACL", "SETUSER", name, *rules, f">{password(name)}")
            urls[name] = f"redis://{name}:{password(name)}@127.0.0.1:{port}/0"
    except BaseException:
        server.stop()
        raise
    return AclRedis(server=server, port=port, prefix=prefix, urls=urls, printed=printed)


def assert_refused(attempts: dict[str, Callable[[], object]]) -> None:
    """Each attempt is refused by Redis with NOPERM (named when one is let through)."""
    allowed = []
    for what, attempt in attempts.items():
        try:
            attempt()
        except redis.exceptions.NoPermissionError:
            continue
        allowed.append(what)
    assert not allowed, f"allowed: {allowed}"
