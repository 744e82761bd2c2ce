"""Health: the breaker (state, code, since when, the rules' advice) with a reset action; queue
depths, jobs in flight and parked, worker heartbeats, outcomes of the last hour and of all time
(one read, so the hour never exceeds all time)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.ops.status import collect, outcomes
from unsign_worker.protocol.catalogue import lookup as error_info


async def page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    data = collect(ops.redis, ops.keys)
    breaker = data["breaker"]
    info = error_info(breaker["code"]) if breaker.get("code") else None
    return render(request, "health.html", status=data, breaker=breaker, info=info,
                  outcomes=outcomes(ops.redis, ops.keys),
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
