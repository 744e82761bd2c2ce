"""Success hooks used by the tests (imported by worker processes through UNSIGN_SUCCESS_HOOK).

They record each call in a Redis list named by ``UNSIGN_TEST_HOOK_LIST``; ``flaky`` fails the
first ``UNSIGN_TEST_HOOK_FAILURES`` calls for each idempotency key.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

# A test may shorten the hook lease of the worker importing this module
# (UNSIGN_TEST_HOOK_LEASE_SECONDS): the product's lease is a constant of two minutes, and a test
# of what happens once it expires would otherwise wait it out.
if "UNSIGN_TEST_HOOK_LEASE_SECONDS" in os.environ:
    from unsign_worker.worker import hooks

    assert hasattr(hooks, "HOOK_LEASE_SECONDS"), "the hook lease moved: follow it here"
    hooks.HOOK_LEASE_SECONDS = float(os.environ["UNSIGN_TEST_HOOK_LEASE_SECONDS"])


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("UNSIGN_REDIS_URL")
                                or "redis://127.0.0.1:6379/13")


def record(event: dict[str, Any]) -> None:
    _client().rpush(os.environ["UNSIGN_TEST_HOOK_LIST"], event["idempotency_key"])


def flaky(event: dict[str, Any]) -> None:
    client = _client()
    key = f"{os.environ['UNSIGN_TEST_HOOK_LIST']}:tries:{event['idempotency_key']}"
    tries = client.incr(key)
    if tries <= int(os.environ.get("UNSIGN_TEST_HOOK_FAILURES", "1")):
        raise RuntimeError(f"merchant database unavailable (try {tries})")
    client.rpush(os.environ["UNSIGN_TEST_HOOK_LIST"], json.dumps(event["idempotency_key"]))


def calls(client: redis.Redis, list_key: str) -> list[str]:
    return [c.decode() for c in client.lrange(list_key, 0, -1)]


def record_file(event: dict[str, Any]) -> None:
    """Record the call outside Redis (the merchant's own store): key, time and the caller's
    process group (a worker started in its own session), one line per call."""
    line = f"{event['idempotency_key']} {time.time():.3f} {os.getpgid(0)}\n"
    with open(os.environ["UNSIGN_TEST_HOOK_FILE"], "a", encoding="utf-8") as handle:
        handle.write(line)


def slow_file(event: dict[str, Any]) -> None:
    """Like :func:`record_file`, but the merchant's step takes ``UNSIGN_TEST_HOOK_SECONDS``: a
    ``start`` line when it begins, a ``done`` line when it has finished."""
    path = os.environ["UNSIGN_TEST_HOOK_FILE"]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"start {event['idempotency_key']}\n")
    time.sleep(float(os.environ.get("UNSIGN_TEST_HOOK_SECONDS", "3")))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"done {event['idempotency_key']}\n")
