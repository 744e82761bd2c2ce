"""A campaign's own page, in this process against real Redis: its progress over time as a
chart and a table, and what the chart cannot show."""

from __future__ import annotations

import time

import redis

from tests.plugins.console_app import get_pages
from unsign_worker.store.keys import Keys


def campaign(r: redis.Redis, keys: Keys, campaign_id: str, *, counted: int,
             over_time: int) -> None:
    """A running campaign of 10 jobs, ``counted`` of them ended, ``over_time`` of those also
    counted in its progress over time."""
    start = time.time() - 600
    r.hset(keys.campaign(campaign_id), mapping={
        "name": "autumn", "state": "running", "total": 10, "created_at": repr(start),
        "enqueued": 10, "enqueue_complete": 1})
    r.zadd(keys.campaigns, {campaign_id: start})
    r.hset(keys.campaign_counts(campaign_id), "unsigned", counted)
    if over_time:
        r.hset(keys.campaign_progress(campaign_id), f"{int(start // 10) * 10 + 120}:unsigned",
               over_time)


def test_a_campaigns_page_draws_its_progress_and_says_what_was_not_counted_over_time(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    campaign(redis_client, keys, "c-a1b2c3d4e5f6", counted=6, over_time=6)
    campaign(redis_client, keys, "c-a1b2c3d4e5f7", counted=6, over_time=4)
    (status, whole), (_, older), (missing, _), (_, listed) = get_pages(
        redis_client, key_prefix, "/campaigns/c-a1b2c3d4e5f6", "/campaigns/c-a1b2c3d4e5f7",
        "/campaigns/c-nope", "/campaigns")
    assert status == 200 and missing == 404
    assert whole.count("<svg") == 1 and 'role="img"' in whole
    assert "6 done, 0 failed, 4 remaining." in whole
    assert "ended before their progress was counted" not in whole
    assert "2 of its jobs ended before their progress was counted over time" in older
    assert '<a class="button" href="/campaigns/c-a1b2c3d4e5f6">Progress over time' in listed
