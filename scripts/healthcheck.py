#!/usr/bin/env python3
"""Container health checks (exit 0 healthy, 1 not), used by docker-compose.yml.

- ``worker``: this container's worker wrote its heartbeat to Redis (``<prefix>workers``) within
  the last :data:`HEARTBEAT_MAX_AGE_SECONDS`; the sweeper writes it every sweep interval.
- ``flower``: Flower's ``/healthcheck`` answers ``OK`` (no credentials needed).
- ``console``: the operations console's ``/healthz`` answers (no credentials needed).
- ``emulator``: the emulator's ``/_emulator/health`` answers; over HTTPS (``https://localhost``)
  when given the CA file to trust, its certificate verified against that CA alone.

Usage: healthcheck.py worker [HOSTNAME] | flower [PORT] | console [PORT]
       | emulator [PORT [CA_FILE]]
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
import urllib.request

#: A heartbeat older than this means the worker is stuck or gone, seconds.
HEARTBEAT_MAX_AGE_SECONDS = 60.0


def worker(hostname: str) -> bool:
    import redis

    from unsign_worker.settings import Settings
    from unsign_worker.store.keys import Keys

    settings = Settings.from_env(load_dotenv=False)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    seen = client.zscore(Keys(settings.key_prefix).workers, hostname)
    return seen is not None and time.time() - float(seen) < HEARTBEAT_MAX_AGE_SECONDS


def http_ok(url: str, ca_file: str = "") -> bool:
    """``url`` answers 200; an https URL's certificate verified against ``ca_file``."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    with urllib.request.urlopen(url, timeout=3, context=context) as resp:  # noqa: S310
        return resp.status == 200


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    arg = argv[2] if len(argv) > 2 else ""
    try:
        if what == "worker":
            healthy = worker(arg or f"unsign@{socket.gethostname()}")
        elif what == "flower":
            healthy = http_ok(f"http://127.0.0.1:{arg or 5555}/healthcheck")
        elif what == "console":
            healthy = http_ok(f"http://127.0.0.1:{arg or 5560}/healthz")
        elif what == "emulator":
            ca_file = argv[3] if len(argv) > 3 else ""
            origin = f"https://localhost:{arg or 8010}" if ca_file else \
                f"http://127.0.0.1:{arg or 8010}"
            healthy = http_ok(f"{origin}/_emulator/health", ca_file)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as exc:  # any failure to check is "unhealthy", with the reason
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
