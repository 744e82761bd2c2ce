"""Health: the breaker (state, code, since when, the rules' advice) with a reset action; queue
depths, jobs in flight and parked, worker heartbeats, outcomes of the last hour and of all time
(one read, so the hour never exceeds all time), and a chart of the outcomes of each of the last
24 hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.console.charts import Layer, stacked_bars
from unsign_worker.ops.status import OUTCOMES, collect, outcomes, outcomes_by_hour
from unsign_worker.protocol.catalogue import lookup as error_info


def hours_chart(hours: list[tuple[int, dict[str, int]]]) -> dict[str, Any]:
    """The chart of ``hours`` (:func:`outcomes_by_hour`) as stacked bars, its summary and its
    table (the hours with an outcome)."""
    labels = [datetime.fromtimestamp(start, UTC).strftime("%H:00") for start, _ in hours]
    totals = {o: sum(counts[o] for _, counts in hours) for o in OUTCOMES}
    said = ", ".join(f"{n} {o}" for o, n in totals.items() if n) or "no job ended"
    summary = f"Last {len(hours)} hours (UTC, the current one so far): {said}."
    svg = stacked_bars("outcomes-by-hour", title="Outcomes by hour, last 24 hours",
                       description=summary, labels=labels, label_every=3,
                       layers=[Layer(o, o, [counts[o] for _, counts in hours])
                               for o in OUTCOMES])
    rows = [{"hour": label, **counts} for label, (_, counts) in zip(labels, hours, strict=True)
            if any(counts.values())]
    return {"svg": svg, "summary": summary, "rows": rows}


async def page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    data = collect(ops.redis, ops.keys)
    breaker = data["breaker"]
    info = error_info(breaker["code"]) if breaker.get("code") else None
    return render(request, "health.html", status=data, breaker=breaker, info=info,
                  outcomes=outcomes(ops.redis, ops.keys), names=OUTCOMES,
                  chart=hours_chart(outcomes_by_hour(ops.redis, ops.keys)),
                  history=[a.as_dict() for a in ops.journal.for_target("breaker")][-10:],
                  journal=[a.as_dict() for a in ops.journal.recent(30)])


async def reset(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    form = await request.post()
    note = str(form.get("note", "")).strip()
    if form.get("confirm") != "yes" or not note:
        raise web.HTTPSeeOther("/health?" + urlencode(
            {"error": "breaker reset: say what was fixed and tick the confirmation box"}))
    ops.reset_breaker(by=operator(request), note=note)
    raise web.HTTPSeeOther("/health?" + urlencode({"done": "breaker closed; parked jobs "
                                                           "resume at their next look"}))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/health", page)
    router.add_post("/health/breaker/reset", reset)
