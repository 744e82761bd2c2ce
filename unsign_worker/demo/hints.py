"""The demo's closing line on where its keys are and how to look at them, true for its Redis.

``scripts/with_redis.py`` (which ``make demo`` runs the demo under) exports
``UNSIGN_REDIS_PRIVATE=1`` when no Redis answered and it started a private ``redis-server`` for
the command, which it stops when the command ends: then the keys go with it, and a command
printed for later would find nothing. Pure: everything comes in as arguments.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from unsign_worker.protocol.hosts import redact_url

#: Set to "1" by ``scripts/with_redis.py`` when the Redis it exports stops with the command.
PRIVATE_REDIS_VARIABLE = "UNSIGN_REDIS_PRIVATE"


def status_command(redis_url: str, prefix: str, program: str) -> str:
    """The shell command that prints the status of the demo's jobs from any shell.

    ``program`` is how to call ``unsign-worker`` (already quoted for the shell). A URL that
    carries a password is left out (never printed): the reader's own ``UNSIGN_REDIS_URL`` must
    then name that Redis.
    """
    try:
        secret = bool(urlsplit(redis_url).password)
    except ValueError:
        secret = True
    url = "" if secret else f"UNSIGN_REDIS_URL={shlex.quote(redis_url)} "
    return f"{url}UNSIGN_KEY_PREFIX={shlex.quote(prefix)} {program} status"


def keys_hint(redis_url: str, prefix: str, *, program: str, private: bool, keep: bool) -> str:
    """One line: where the demo's keys stay and the command that shows them, or, for a private
    Redis that stops with the demo, when that command works and how to keep the keys longer."""
    command = status_command(redis_url, prefix, program)
    if private and keep:
        return (f"Its keys are under {prefix!r} in a private Redis that stops with the demo; "
                f"while it runs, from another shell: {command}")
    if private:
        return ("Its keys are in the private Redis that 'make demo' started, which stops with "
                "the demo: to look at them afterwards, 'make demo KEEP=1' (it prints the "
                "command), or start a Redis on 127.0.0.1:6379 first ('redis-server "
                "--daemonize yes'), which the demo uses and leaves running.")
    where = redact_url(redis_url)
    how = "" if "UNSIGN_REDIS_URL=" in command else f" (with UNSIGN_REDIS_URL set to {where})"
    return (f"Its keys stay in {where} under {prefix!r} until the next run: "
            f"{command}{how}")
