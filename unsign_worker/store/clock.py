"""Which clock decides: the Redis server's.

Every lease, due time and expiry is written and compared on the clock of the Redis server that
holds the keys: the scripts read it themselves (``store/lua/server_time.lua``), and Python code
that compares or writes such a time (the sweeper, a hook's retry) reads it with ``TIME``. A
worker's own clock only stamps records and log lines for people to read, so a worker host whose
clock is minutes off can neither take over a live lease nor leave its own leases to run for
minutes after it died.
"""

from __future__ import annotations

import redis


def server_now(client: redis.Redis) -> float:
    """The Redis server's time, epoch seconds (one round trip)."""
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000
