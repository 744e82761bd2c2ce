"""The escalations page at real volume, in this process against real Redis: 2,000 dead letters
are grouped by code with counts, the oldest of each group shown, each group paged on its own,
their details folded, and exported with ISO 8601 times."""

from __future__ import annotations

import csv
import io
import re

import redis

from tests.plugins.console_app import get_pages
from tests.plugins.dead_letters import dead_letters
from unsign_worker.console.escalations import PREVIEW
from unsign_worker.console.paging import PAGE_SIZE
from unsign_worker.ops.actions import ActionLog
from unsign_worker.store.keys import Keys

COUNTS = {"STATUS_TYPE_CODE": 1500, "TOO_MUCH_TYPE_CODE": 450, "SYSTEM_ERROR": 50}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def entries(page: str) -> list[str]:
    return re.findall(r'<details class="entry" id="job-([^"]+)"', page)


def test_thousands_of_escalations_are_grouped_counted_and_paged_within_a_group(
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given 2,000 dead letters of three codes
    ids = dead_letters(redis_client, Keys(key_prefix), COUNTS, campaigns=("c-1", "c-2"))
    # When the operator opens the page, then a group alone, its second and last page
    (status, first), (_, alone), (_, second), (_, last), (_, beyond) = get_pages(
        redis_client, key_prefix, "/escalations", "/escalations?code=STATUS_TYPE_CODE",
        "/escalations?code=STATUS_TYPE_CODE&page=2",
        "/escalations?code=SYSTEM_ERROR&page=3", "/escalations?code=SYSTEM_ERROR&page=99")
    # Then every code is listed with its count and meaning, largest first
    assert status == 200
    codes = re.search(r'<table class="codes">(.*?)</table>', first, re.S).group(1)
    listed = re.findall(r'<a href="/escalations\?code=(\w+)">\1</a></td><td class="num">(\d+)',
                        codes)
    assert listed == [(code, str(n)) for code, n in COUNTS.items()]
    assert "The merchant agreement is not in a normal state" in codes
    # And each group shows its oldest entries, folded, with a link to the whole group
    assert len(entries(first)) == 3 * PREVIEW
    assert entries(first)[:PREVIEW] == ids[:PREVIEW]
    assert not re.search(r"<details[^>]*\bopen\b", first)
    assert "1–5 of 1500, the oldest" in first
    assert '<a class="more" href="/escalations?code=STATUS_TYPE_CODE">all 1500' in first
    # A group alone is paged, linked both ways
    assert entries(alone) == ids[:PAGE_SIZE]
    assert "1–20 of 1500 · page 1 of 75" in alone and 'rel="prev"' not in alone
    assert 'rel="next" href="/escalations?code=STATUS_TYPE_CODE&amp;page=2"' in alone
    assert entries(second) == ids[PAGE_SIZE:2 * PAGE_SIZE]
    assert 'rel="prev" href="/escalations?code=STATUS_TYPE_CODE&amp;page=1"' in second
    assert 'rel="next" href="/escalations?code=STATUS_TYPE_CODE&amp;page=3"' in second
    assert "TOO_MUCH_TYPE_CODE</h2>" not in second
    # The last page holds the rest, and a page past the end shows the last one
    assert entries(last) == entries(beyond) == ids[-10:]
    assert 'rel="next"' not in last and "41–50 of 50 · page 3 of 3" in last
    # An action taken on a page comes back to that page
    assert 'name="back" value="/escalations?code=SYSTEM_ERROR&amp;page=3"' in last


def test_filters_keep_their_counts_and_the_csv_has_iso_times(
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given dead letters of two campaigns, the oldest two days old
    keys = Keys(key_prefix)
    ids = dead_letters(redis_client, keys, {"STATUS_TYPE_CODE": 30, "TOO_MUCH_TYPE_CODE": 5},
                       campaigns=("c-1", "c-2"))
    redis_client.zadd(keys.dlq, {ids[0]: 1_765_149_590.0})
    redis_client.hset(keys.dlq_entry(ids[0]), "dead_lettered_at", "1765149590.25")
    ActionLog(redis_client, keys).record(by="ops (console)", action="note", target=ids[0],
                                         note="asked Alipay support")
    (_, campaign), (_, old), (status, exported) = get_pages(
        redis_client, key_prefix, "/escalations?campaign=c-2",
        "/escalations?age=24h", "/escalations.csv?code=STATUS_TYPE_CODE")
    # Then the counts and groups follow the filters
    assert "35 open" not in campaign and "17 open" in campaign
    assert entries(old) == [ids[0]]
    # And the CSV gives every time in ISO 8601 UTC, never an epoch
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 30
    assert rows[0]["dead_lettered_at"] == "2025-12-07T23:19:50Z"
    when, said = rows[0]["actions"].split(" ", 1)
    assert ISO.fullmatch(when) and said == "note by ops (console): asked Alipay support"
    assert all(ISO.fullmatch(r["dead_lettered_at"]) for r in rows)
