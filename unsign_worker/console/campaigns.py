"""Campaigns: progress, counts by outcome, rate and ETA; pause, resume and cancel (each
confirmed); the report CSV (identities masked)."""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.ops.operations import CAMPAIGN_ACTIONS
from unsign_worker.producers.campaign.report import REPORT_COLUMNS, report_rows, write_csv_to
from unsign_worker.protocol.masking import mask_text
from unsign_worker.store.campaigns import OUTCOMES, CampaignError, CampaignStatus
from unsign_worker.store.states import CampaignState

#: The actions each state allows.
ALLOWED = {CampaignState.RUNNING: ("pause", "cancel"), CampaignState.PAUSED: ("resume", "cancel")}


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
    router.add_post("/campaigns/{campaign_id}/{action}", act)
    router.add_get("/campaigns/{campaign_id}/report.csv", report)
