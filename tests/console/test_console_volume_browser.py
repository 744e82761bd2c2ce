"""The console at real volume in a real browser (Debian's Chromium driven by Playwright):
2,000 escalations grouped by code with counts, paged within a group, their details folded
until clicked; a campaign's progress and the outcomes by hour drawn as SVG that the page's CSP
lets through; the CSV with ISO 8601 times. Full-page screenshots of each page are saved under
the test's temporary folder (and ``$UNSIGN_SCREENSHOTS`` when set)."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.console.test_console_browser import CHROMIUM, INSTALL, _shots
from tests.plugins.console_fixtures import PASSWORD, USER, ConsoleProcess
from tests.plugins.dead_letters import dead_letters
from unsign_worker.store.keys import Keys

if not CHROMIUM.exists():
    pytest.skip(INSTALL, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright "
                               "package: `make .venv/.installed` installs it")
pytestmark = pytest.mark.slow

COUNTS = {"STATUS_TYPE_CODE": 1400, "TOO_MUCH_TYPE_CODE": 450, "SYSTEM_ERROR": 120,
          "USER_AGREEMENT_NOT_EXIST": 30}
CAMPAIGN = "c-5a1e5ca1e000"
TOTAL = 3000
CSP_LISTENER = """document.addEventListener('securitypolicyviolation', e =>
  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.sample));"""
FAVICON = "error: Failed to load resource: the server responded with a status of 404 (Not Found)"


def seed_campaign(r: redis.Redis, keys: Keys, now: float) -> None:
    """A campaign of 3,000 jobs started 90 minutes ago, 2,333 of them done in its first 80
    minutes (as the worker counts them: all told and minute by minute), beside its dead
    letters."""
    start = now - 90 * 60
    r.hset(keys.campaign(CAMPAIGN), mapping={
        "name": "spring clean-up <2026>", "state": "running", "total": TOTAL,
        "created_at": repr(start), "updated_at": repr(now), "enqueued": TOTAL,
        "enqueue_complete": 1, "source": "spring.csv"})
    r.zadd(keys.campaigns, {CAMPAIGN: start})
    totals: dict[str, int] = {}
    for i in range(80):  # each minute's jobs counted in its first 10 seconds
        step = int(start // 60) * 60 + 60 * i
        done = {"unsigned": 24 + i % 7, "already_unsigned": 1, "rejected": i % 3,
                "dead_lettered": 1 if i % 4 == 0 else 0}
        for outcome, n in done.items():
            if n:
                r.hincrby(keys.campaign_progress(CAMPAIGN), f"{step}:{outcome}", n)
                totals[outcome] = totals.get(outcome, 0) + n
    for outcome, n in totals.items():
        r.hincrby(keys.campaign_counts(CAMPAIGN), outcome, n)


def seed_hours(r: redis.Redis, keys: Keys, now: float) -> None:
    """Outcomes in a minute of each of the last 24 hours, as the worker counts them."""
    for hour in range(24):
        minute = int(now // 60) - hour * 60
        ended = {"unsigned": 200 + 37 * (hour % 5), "rejected": 10 + hour,
                 "dead_lettered": hour % 4, "duplicate": 3}
        for outcome, n in ended.items():
            r.hincrby(keys.rate(minute), outcome, n)
            r.hincrby(keys.counts, outcome, n)
        r.expire(keys.rate(minute), 3600 * 25)


@pytest.fixture
def console(redis_client: redis.Redis, redis_url: str, key_prefix: str, tmp_path: Path
            ) -> Iterator[ConsoleProcess]:
    keys, now = Keys(key_prefix), time.time()
    dead_letters(redis_client, keys, COUNTS, campaigns=(CAMPAIGN, "", "c-other0000001", "", "", ""))
    seed_campaign(redis_client, keys, now)
    seed_hours(redis_client, keys, now)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update({"UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix,
                "UNSIGN_CONSOLE_AUTH": f"{USER}:{PASSWORD}"})
    proc = ConsoleProcess(env, tmp_path / "console.log")
    yield proc
    proc.stop()


@pytest.fixture
def page(console: ConsoleProcess) -> Iterator[tuple[Any, list[str]]]:
    """A signed-in page, and every console message and CSP violation it reports."""
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM),
                                       args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1280, "height": 900}, accept_downloads=True)
        # Playwright's own script (not the page's) reports each CSP violation to the console
        context.add_init_script(CSP_LISTENER)
        tab = context.new_page()
        reported: list[str] = []
        tab.on("console", lambda message: reported.append(f"{message.type}: {message.text}"))
        tab.on("pageerror", lambda error: reported.append(f"error: {error}"))
        # The browser asks for /favicon.ico, which the console does not serve
        tab.on("response", lambda answer: answer.status < 400 or answer.url.endswith(
            "/favicon.ico") or reported.append(f"HTTP {answer.status}: {answer.url}"))
        tab.base = console.base  # type: ignore[attr-defined]
        yield tab, reported
        browser.close()


def test_thousands_of_escalations_are_grouped_paged_and_folded_in_a_browser(
        page: tuple[Any, list[str]], tmp_path: Path) -> None:
    tab, reported = page
    shoot = _shots(tmp_path)
    tab.goto(tab.base + "/escalations")
    # Every code is listed with its count, largest first
    rows = tab.locator("table.codes tr").all_inner_texts()[1:]
    assert [r.split("\t")[:2] for r in rows] == [[c, str(n)] for c, n in COUNTS.items()]
    # Each group shows its 5 oldest entries, each folded: its actions hidden
    assert tab.locator("details.entry").count() == 4 * 5
    first = tab.locator("details.entry").first
    assert first.get_attribute("open") is None
    assert not first.locator("button[name=requeue]").is_visible()
    shoot(tab, "escalations-volume")
    # Paging within a group: the group alone, 20 a page, next and previous
    group = tab.locator("#code-TOO_MUCH_TYPE_CODE")
    oldest = group.locator("details.entry").first.get_attribute("id")
    group.locator("a.more").click()
    assert re.search(r"code=TOO_MUCH_TYPE_CODE$", tab.url)
    assert tab.locator("section.group").count() == 1
    assert tab.locator("details.entry").count() == 20
    assert tab.locator("details.entry").first.get_attribute("id") == oldest
    tab.locator("a[rel=next]").first.click()
    assert re.search(r"code=TOO_MUCH_TYPE_CODE&page=2$", tab.url)
    assert "21–40 of 450 · page 2 of 23" in tab.locator(".pager").first.inner_text()
    assert tab.locator("details.entry").count() == 20
    assert tab.locator("details.entry").first.get_attribute("id") != oldest
    tab.locator("a[rel=prev]").first.click()
    assert tab.locator("details.entry").first.get_attribute("id") == oldest
    # A click opens an entry: its reason and actions show
    entry = tab.locator("details.entry").nth(2)
    entry.locator("> summary").click()
    assert entry.get_attribute("open") is not None
    assert entry.locator("button[name=requeue]").is_visible()
    assert "The merchant has several agreements" in entry.inner_text()
    shoot(tab, "escalations-group-opened")
    # The CSV of the group: every entry, times in ISO 8601 UTC
    with tab.expect_download() as download:
        tab.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert len(rows) == 450
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["dead_lettered_at"])
               for r in rows)
    assert [r for r in reported if r != FAVICON] == []


def test_the_charts_are_drawn_without_script_or_inline_style(
        page: tuple[Any, list[str]], tmp_path: Path) -> None:
    tab, reported = page
    shoot = _shots(tmp_path)
    tab.goto(tab.base + "/campaigns")
    tab.click("text=Progress over time")
    assert tab.url.endswith(f"/campaigns/{CAMPAIGN}")
    chart = tab.locator("#progress svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] > 600
    assert tab.locator("#progress svg.chart title").first.text_content() == (
        f"Progress of campaign {CAMPAIGN} over time")
    bands = tab.locator("#progress polygon.series")
    assert bands.count() == 3 and all(bands.nth(i).is_visible() for i in range(3))
    # Colours come from the stylesheet: the bands are filled, and differently
    fills = {bands.nth(i).evaluate("e => getComputedStyle(e).fill") for i in range(3)}
    assert len(fills) == 3 and "rgb(0, 0, 0)" not in fills
    summary = tab.locator("#progress .chart-summary").inner_text()
    assert summary.endswith(": 2234 done, 433 failed, 333 remaining.")  # as the counts say
    assert "spring clean-up <2026>" in tab.locator("h2").first.inner_text()
    shoot(tab, "campaign-progress")
    tab.click("text=Health")
    bars = tab.locator("#outcomes-by-hour svg.chart rect.series")
    assert bars.count() >= 24 * 3 and bars.first.is_visible()  # 3 outcomes every hour
    assert tab.locator("#outcomes-by-hour svg.chart").get_attribute("role") == "img"
    tab.locator("#outcomes-by-hour details.numbers > summary").click()
    assert tab.locator("#outcomes-by-hour details.numbers tr").count() == 25
    shoot(tab, "health-outcomes")
    # No Content-Security-Policy violation, nor any other message, on any page
    assert [r for r in reported if r != FAVICON] == []
