"""Real-Redis fixtures: every test gets its own key prefix on the test database, cleaned after.

``make test`` exports ``UNSIGN_REDIS_URL`` (the shared Redis on db 13, or a private one). The
shared instance's other data is never touched: only keys under the test's prefix are deleted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("UNSIGN_REDIS_URL") or DEFAULT_TEST_REDIS_URL


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # a real Redis is always there on these machines
        pytest.fail(f"no Redis at {redis_url}: {exc}")
    yield client
    client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A fresh ``unsign-test:<uuid>:`` prefix; its keys are deleted after the test."""
    prefix = f"unsign-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_client, prefix)
