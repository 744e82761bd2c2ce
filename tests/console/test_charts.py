"""Charts drawn on the server: well-formed SVG that the console's CSP lets through (no style
attribute, no style element, no script), named and described for assistive technology, every
text escaped, and the numbers they are drawn from."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import redis

from unsign_worker.console.campaigns import progress_chart, progress_series
from unsign_worker.console.charts import Layer, nice_ticks, stacked_area, stacked_bars
from unsign_worker.console.health import hours_chart
from unsign_worker.ops.status import OUTCOMES, outcomes_by_hour
from unsign_worker.store.keys import Keys

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & \'quoted\''


def parsed(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    for element in root.iter():
        assert "style" not in element.attrib and not element.tag.endswith(("style", "script"))
        assert not any(name.startswith("on") for name in element.attrib)
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


@pytest.mark.parametrize(("top", "ticks"), [
    (0, [0, 1]), (1, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6, 8]),
    (180, [0, 50, 100, 150, 200]), (2000, [0, 500, 1000, 1500, 2000]), (45, [0, 20, 40, 60]),
])
def test_axis_ticks_are_round_counts_reaching_the_top(top: int, ticks: list[int]) -> None:
    assert nice_ticks(top) == ticks


def test_stacked_bars_draw_one_segment_per_value_escaped_and_without_style() -> None:
    root = parsed(stacked_bars(
        "h", title=f"title {HOSTILE}", description=f"desc {HOSTILE}", labels=["00:00", HOSTILE],
        layers=[Layer("unsigned", "unsigned", [3, 0]), Layer("rejected", HOSTILE, [1, 2])]))
    assert root.find(f"{SVG}title").text == f"title {HOSTILE}"  # escaped, so read back whole
    rects = root.findall(f"{SVG}rect")
    assert [r.get("class") for r in rects] == ["series series-unsigned",
                                               "series series-rejected",
                                               "series series-rejected"]
    assert rects[2].find(f"{SVG}title").text == f"{HOSTILE}: {HOSTILE} 2"
    # Heights are proportional to the values: 3 and 1 stacked reach the axis' top (4)
    heights = [float(r.get("height")) for r in rects]
    assert heights[0] == pytest.approx(3 * heights[1]) and heights[2] == pytest.approx(
        2 * heights[1])
    assert float(rects[1].get("y")) == pytest.approx(12)  # the top of the drawing area
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "00:00" in labels and HOSTILE in labels


def test_a_stacked_area_draws_one_band_per_layer_even_for_a_single_point() -> None:
    layers = [Layer("ok", "done", [5]), Layer("failed", "failed", [1]),
              Layer("remaining", "remaining", [4])]
    root = parsed(stacked_area("p", title="t", description="d", xs=[600], layers=layers))
    bands = root.findall(f"{SVG}polygon")
    assert [b.get("class") for b in bands] == ["series series-ok", "series series-failed",
                                               "series series-remaining"]
    assert all(len(b.get("points").split()) == 4 for b in bands)
    assert parsed(stacked_area("e", title="t", description="d", xs=[], layers=[])) is not None


def test_a_campaigns_progress_is_cumulative_per_step_from_its_start() -> None:
    # Given a campaign of 10 jobs started at 6005 s, its jobs counted per 10 seconds
    counted = {6000: {"unsigned": 2}, 6010: {"dead_lettered": 1, "unsigned": 1},
               6030: {"unsigned": 3, "rejected": 1}}
    series = progress_series(counted, total=10, start=6005, end=6035)
    assert series == [
        {"time": 6000, "ok": 0, "failed": 0, "remaining": 10},
        {"time": 6010, "ok": 2, "failed": 0, "remaining": 8},
        {"time": 6020, "ok": 3, "failed": 1, "remaining": 6},
        {"time": 6030, "ok": 3, "failed": 1, "remaining": 6},
        {"time": 6040, "ok": 6, "failed": 2, "remaining": 2}]
    # A long run is drawn in wider steps (a multiple of 10 s), the last count always included
    long = progress_series({6000 + 10 * i: {"unsigned": 1} for i in range(1000)}, total=1000,
                           start=6000, end=6000 + 9990, points=100)
    assert len(long) == 101 and long[2]["time"] - long[1]["time"] == 100
    assert long[-1] == {"time": 16000, "ok": 1000, "failed": 0, "remaining": 0}
    chart = progress_chart("c-1", series)
    assert chart["summary"] == "At 1970-01-01 01:40:40 UTC: 6 done, 2 failed, 2 remaining."
    root = parsed(chart["svg"])
    assert len(root.findall(f"{SVG}polygon")) == 3
    # a run of seconds is labelled to the second
    assert "01:40:00" in [t.text for t in root.findall(f"{SVG}text")]


def test_outcomes_by_hour_sum_each_hours_minutes_for_the_last_24(
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given outcomes counted in minutes of this hour, of 23 hours ago, and of 25 hours ago
    keys = Keys(key_prefix)
    now = 1_765_149_590.0  # 2025-12-07 23:19:50 UTC
    hour = int(now // 3600) * 3600
    redis_client.hset(keys.rate(int(now // 60)), mapping={"unsigned": 4, "rejected": 1})
    redis_client.hset(keys.rate(hour // 60), mapping={"unsigned": 1})
    redis_client.hset(keys.rate((hour - 23 * 3600) // 60 + 59), mapping={"dead_lettered": 2})
    redis_client.hset(keys.rate((hour - 25 * 3600) // 60), mapping={"unsigned": 100})
    hours = outcomes_by_hour(redis_client, keys, now=now)
    assert [start for start, _ in hours] == [hour - i * 3600 for i in range(23, -1, -1)]
    assert hours[-1][1] == {**dict.fromkeys(OUTCOMES, 0), "unsigned": 5, "rejected": 1}
    assert hours[0][1]["dead_lettered"] == 2
    assert sum(sum(c.values()) for _, c in hours) == 8
    chart = hours_chart(hours)
    assert [r["hour"] for r in chart["rows"]] == ["00:00", "23:00"]
    assert chart["summary"] == ("Last 24 hours (UTC, the current one so far): 5 unsigned, "
                                "1 rejected, 2 dead_lettered.")
    assert len(parsed(chart["svg"]).findall(f"{SVG}rect")) == 3


def test_labels_under_the_axis_stay_inside_the_drawing_at_either_end() -> None:
    root = parsed(stacked_area("p", title="t", description="d", xs=[0, 50, 100],
                               layers=[Layer("ok", "done", [1, 2, 3])],
                               x_labels=[(0, "00:00"), (50, "00:50"), (100, "01:40")]))
    anchors = [t.get("text-anchor") for t in root.findall(f"{SVG}text")
               if t.text and ":" in t.text]
    assert anchors == ["start", "middle", "end"]


def test_bars_label_every_few_counting_back_from_the_newest() -> None:
    labels = [f"{h:02d}:00" for h in range(24)]
    root = parsed(stacked_bars("h", title="t", description="d", labels=labels, label_every=3,
                               layers=[Layer("unsigned", "unsigned", [1] * 24)]))
    shown = [t.text for t in root.findall(f"{SVG}text") if t.text and ":" in t.text]
    assert shown == labels[2::3] and shown[-1] == "23:00"
