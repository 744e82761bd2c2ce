"""The sandbox's Redis: the one ``UNSIGN_REDIS_URL`` names when it answers PING, else a
``redis-server`` started on that very address, so that every other command, which reads the
same URL (127.0.0.1:6379 by default), finds it without being told.

Only a Redis on a loopback address, without a password, is started here: a remote one, or one
behind a password, is the user's to run. See :mod:`unsign_worker.cli.dev_cmds`.
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from unsign_worker.demo.processes import DemoError
from unsign_worker.protocol.hosts import redact_url
from unsign_worker.store.sentinel import connect

#: How to install ``redis-server`` where the sandbox cannot find one.
INSTALL_HINT = ("install it with 'sudo apt-get install redis-server' (Debian, Ubuntu) or "
                "'brew install redis' (macOS), or set UNSIGN_REDIS_URL to a Redis that answers")
#: The port of a ``redis://`` URL that names none.
DEFAULT_PORT = 6379


class RedisNotInstalled(DemoError):
    """No Redis answers and there is no ``redis-server`` to start one; says how to install it."""


@dataclass(frozen=True)
class LocalAddress:
    """Where to start a Redis for a URL that names a loopback address."""

    host: str
    port: int


def answers(url: str) -> bool:
    """True when the Redis at ``url`` answers PING within a second."""
    client = connect(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def local_address(url: str) -> LocalAddress:
    """The loopback address of ``url``, where a Redis may be started for it.

    Raises:
        DemoError: ``url`` is not a plain ``redis://`` URL of a loopback host without a
            password (that Redis is the user's to start); the message names the URL, redacted.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        port = parts.port or DEFAULT_PORT
    except ValueError:
        loopback, port = False, DEFAULT_PORT
    if parts.scheme != "redis" or not loopback or parts.password:
        raise DemoError(f"UNSIGN_REDIS_URL: {redact_url(url)} does not answer PING, and only a "
                        "redis:// URL of this machine's loopback without a password is started "
                        "here: start that Redis, or unset UNSIGN_REDIS_URL to use "
                        "127.0.0.1:6379")
    return LocalAddress("127.0.0.1" if host == "localhost" else host, port)


def server_binary() -> str:
    """The ``redis-server`` on PATH.

    Raises:
        RedisNotInstalled: there is none (the message says how to install it).
    """
    found = shutil.which("redis-server")
    if found is None:
        raise RedisNotInstalled(f"no Redis answers and redis-server is not installed: "
                                f"{INSTALL_HINT}")
    return found


def server_argv(binary: str, address: LocalAddress, data_dir: Path) -> list[str]:
    """The command that serves ``address`` with append-only persistence in ``data_dir``, in the
    foreground, its log on standard output."""
    return [binary, "--bind", address.host, "--port", str(address.port), "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
            "--daemonize", "no", "--logfile", ""]
