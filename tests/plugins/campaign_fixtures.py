"""A producer and a campaign store on the test's key prefix (no worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.keys import Keys


@pytest.fixture
def producer(redis_url: str, redis_client: redis.Redis, key_prefix: str) -> Iterator[Producer]:
    app = producer_app(redis_url, key_prefix)
    yield Producer(app, redis_client, Keys(key_prefix))
    app.close()


@pytest.fixture
def store(producer: Producer) -> CampaignStore:
    return CampaignStore(producer.redis, producer.keys)
