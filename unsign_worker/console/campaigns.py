"""Campaigns: progress, counts by outcome, rate and ETA; pause, resume and cancel (each
confirmed); the report CSV (identities masked); one campaign's page with a chart of its progress
over time (from ``P campaign:<id>:progress``)."""

from __future__ import annotations

import io
import math
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.console.charts import Layer, stacked_area
from unsign_worker.ops.operations import CAMPAIGN_ACTIONS
from unsign_worker.producers.campaign.report import REPORT_COLUMNS, report_rows, write_csv_to
from unsign_worker.protocol.masking import mask_text
from unsign_worker.store.campaigns import OUTCOMES, CampaignError, CampaignStatus
from unsign_worker.store.keys import PROGRESS_STEP_SECONDS
from unsign_worker.store.states import FAILURE_STATES, CampaignState

#: The actions each state allows.
ALLOWED = {CampaignState.RUNNING: ("pause", "cancel"), CampaignState.PAUSED: ("resume", "cancel")}
#: Steps drawn at most on a campaign's chart (a longer campaign is drawn in wider steps).
CHART_POINTS = 240
#: Rows at most in the table beside the chart.
TABLE_ROWS = 12
FAILED = frozenset(str(s) for s in FAILURE_STATES)
#: Asks :func:`_clock` for the whole date and time.
WHOLE = -1.0


def progress_series(counted: dict[int, dict[str, int]], *, total: int, start: float,
                    end: float, points: int = CHART_POINTS) -> list[dict[str, int]]:
    """The campaign's progress at the start of its first step, then at the end of each step
    up to ``end`` (epoch seconds): the time and, so far, its jobs done without failure, failed
    (rejected, dead-lettered) and remaining. ``counted``: outcomes per step of
    ``PROGRESS_STEP_SECONDS`` (:meth:`CampaignStore.progress`); a run longer than ``points``
    such steps is drawn in wider steps (a multiple of them). Pure."""
    step = PROGRESS_STEP_SECONDS * max(1, math.ceil((end - start) / PROGRESS_STEP_SECONDS
                                                    / points))
    per_step: dict[int, dict[str, int]] = {}
    for at, outcomes in counted.items():
        bucket = per_step.setdefault(at // step * step, {})
        for outcome, n in outcomes.items():
            bucket[outcome] = bucket.get(outcome, 0) + n
    first = min(int(start // step) * step, min(per_step, default=int(start // step) * step))
    last = max(int(end // step) * step, max(per_step, default=first))
    ok = failed = 0
    out = [{"time": first, "ok": 0, "failed": 0, "remaining": total}]  # where the run starts
    for at in range(first, last + step, step):
        for outcome, n in per_step.get(at, {}).items():
            if outcome in FAILED:
                failed += n
            else:
                ok += n
        out.append({"time": at + step, "ok": ok, "failed": failed,
                    "remaining": max(0, total - ok - failed)})
    return out


def _clock(epoch: float, span: float) -> str:
    """A time on the chart's axis, as precise as its span needs (UTC); the whole date and
    time for ``span`` :data:`WHOLE`."""
    shape = ("%Y-%m-%d %H:%M:%S" if span == WHOLE else "%H:%M:%S" if span <= 3600
             else "%H:%M" if span <= 86400 else "%m-%d %H:%M")
    return datetime.fromtimestamp(epoch, UTC).strftime(shape)


def progress_chart(campaign_id: str, series: list[dict[str, int]]) -> dict[str, Any]:
    """The chart of ``series`` (:func:`progress_series`), its summary and its table."""
    xs = [p["time"] for p in series]
    span = xs[-1] - xs[0] if xs else 0
    marks = [xs[0] + span * i / 4 for i in range(5)] if len(xs) > 1 else xs
    last = series[-1] if series else {"time": 0, "ok": 0, "failed": 0, "remaining": 0}
    summary = (f"At {_clock(last['time'], WHOLE)} UTC: {last['ok']} done, "
               f"{last['failed']} failed, {last['remaining']} remaining.")
    svg = stacked_area(
        f"progress-{campaign_id}", title=f"Progress of campaign {campaign_id} over time",
        description=summary, xs=xs, x_labels=[(m, _clock(m, span)) for m in marks],
        layers=[Layer("ok", "done", [p["ok"] for p in series]),
                Layer("failed", "failed", [p["failed"] for p in series]),
                Layer("remaining", "remaining", [p["remaining"] for p in series])])
    every = max(1, math.ceil(len(series) / TABLE_ROWS))
    rows = [p for i, p in enumerate(series) if i % every == 0 or i == len(series) - 1]
    return {"svg": svg, "summary": summary,
            "rows": [{**p, "at": _clock(p["time"], WHOLE)} for p in rows]}


def progress(status: CampaignStatus, now: float | None = None) -> dict[str, Any]:
    """Done, percent, jobs per second over the campaign's own run (start to first done; a
    requeue after it is shown apart) and the ETA that implies."""
    now = time.time() if now is None else now
    data = status.as_dict()
    rate = status.run_rate(now)
    remaining = data["remaining"]
    if status.finished or remaining <= 0:
        eta = "-"
    elif rate <= 0 or status.state != CampaignState.RUNNING:
        eta = "unknown"
    else:
        seconds = int(remaining / rate)
        eta = f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    data.update(percent=round(100 * status.done / status.total, 1) if status.total else 100.0,
                per_second=round(rate, 2), eta=eta, actions=ALLOWED.get(status.state, ()))
    return data


async def page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    statuses = ops.campaigns.list()
    history = ops.journal.for_targets([f"campaign:{s.campaign}" for s in statuses])
    rows = []
    for status in statuses:
        row = progress(status)
        row["history"] = [a.as_dict() for a in history.get(f"campaign:{status.campaign}", [])]
        rows.append(row)
    return render(request, "campaigns.html", campaigns=rows, outcomes=OUTCOMES)


async def detail(request: web.Request) -> web.Response:
    """One campaign: what the list shows, and its progress over time as a chart and a table."""
    ops = request.app[OPS]
    campaign_id = request.match_info["campaign_id"]
    status = ops.campaigns.status(campaign_id)
    if status is None:
        raise web.HTTPNotFound(text=f"no campaign {mask_text(campaign_id)}")
    row = progress(status)
    row["history"] = [a.as_dict() for a in ops.journal.for_target(f"campaign:{campaign_id}")]
    end = status.finished_at or time.time()
    counted = ops.campaigns.progress(campaign_id)
    series = progress_series(counted, total=status.total, start=status.created_at or end,
                             end=end)
    # jobs that ended before the worker counted its progress over time (an older version)
    unrecorded = status.done - sum(n for counts in counted.values() for n in counts.values())
    return render(request, "campaign.html", c=row, outcomes=OUTCOMES,
                  chart=progress_chart(campaign_id, series), unrecorded=max(0, unrecorded))


async def act(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    campaign_id = request.match_info["campaign_id"]
    action = request.match_info["action"]
    if action not in CAMPAIGN_ACTIONS:
        raise web.HTTPNotFound(text="no such action")
    form = await request.post()
    if form.get("confirm") != "yes":
        raise web.HTTPSeeOther("/campaigns?" + urlencode(
            {"error": f"{action} {campaign_id}: tick the confirmation box first"}))
    try:
        said = ops.steer_campaign(action, campaign_id, by=operator(request),
                                  note=str(form.get("note", "")))
    except CampaignError as exc:
        raise web.HTTPSeeOther("/campaigns?" + urlencode({"error": str(exc)})) from None
    raise web.HTTPSeeOther("/campaigns?" + urlencode({"done": f"campaign {campaign_id} {said}"}))


async def report(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    campaign_id = request.match_info["campaign_id"]
    if ops.campaigns.status(campaign_id) is None:
        raise web.HTTPNotFound(text=f"no campaign {mask_text(campaign_id)}")
    buffer = io.StringIO()
    write_csv_to(buffer, REPORT_COLUMNS,
                 ({k: mask_text(str(v)) for k, v in row.items()}
                  for row in report_rows(ops.campaigns, campaign_id)))
    name = "".join(c for c in campaign_id if c.isalnum() or c in "-_") or "campaign"
    return web.Response(body=buffer.getvalue().encode("utf-8"), content_type="text/csv",
                        charset="utf-8", headers={
                            "Content-Disposition": f'attachment; filename="{name}-report.csv"'})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/campaigns", page)
    router.add_get("/campaigns/{campaign_id}", detail)
    router.add_post("/campaigns/{campaign_id}/{action}", act)
    router.add_get("/campaigns/{campaign_id}/report.csv", report)
