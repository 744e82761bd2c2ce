"""The guards of worker/kombu_fixes.py, against a real kombu Redis channel."""

from __future__ import annotations

import redis
from kombu import Connection

from unsign_worker.worker import kombu_fixes


def test_a_channel_reuses_one_client_until_its_pool_is_dropped(
        redis_url: str, redis_client: redis.Redis, key_prefix: str) -> None:
    kombu_fixes.apply()
    with Connection(redis_url, transport_options={"global_keyprefix": key_prefix}) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second  # not a new redis.Redis per command
            first.lpush("probe", "1")
        assert redis_client.llen(f"{key_prefix}probe") == 1  # the channel's prefix applies
        given = redis.Redis.from_url(redis_url)
        with channel.conn_or_acquire(given) as client:
            assert client is given  # a client handed in is used as is
        given.close()
        old_pool = first.connection_pool
        channel._disconnect_pools()  # what kombu does on losing the broker, or after a fork
        with channel.conn_or_acquire() as client:
            assert client is not first
            assert client.connection_pool is not old_pool
            assert client.connection_pool is channel.pool
            assert client.llen("probe") == 1


def test_a_closed_channel_still_refuses_with_a_connection_error(redis_url: str) -> None:
    kombu_fixes.apply()
    conn = Connection(redis_url)
    channel = conn.default_channel
    with channel.conn_or_acquire():
        pass
    conn.release()
    channel._disconnect_pools()
    channel.connection = None  # the state a released channel is left in
    try:
        with channel.conn_or_acquire():
            raise AssertionError("a released channel handed out a client")
    except redis.exceptions.ConnectionError:
        pass
