"""Escalations: the dead-letter queue, grouped by code, with the rules' meaning and advice, the
attempts, the operators' journal and the two ways out (requeue, resolve), each with a note."""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.ops import dlq_export
from unsign_worker.ops.lookup import attempts
from unsign_worker.ops.operations import Operations
from unsign_worker.protocol.catalogue import lookup as error_info
from unsign_worker.store.deadletter import DeadLetterError, Entry, NoteRequired

#: Age filters offered: label -> seconds (entries at least this old).
AGES = {"": 0, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
#: Entries shown on one page (the CSV holds them all).
PAGE_LIMIT = 200


def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    age = q.get("age", "")
    return {"code": q.get("code", "").strip(), "campaign": q.get("campaign", "").strip(),
            "age": age if age in AGES else ""}


def filtered(ops: Operations, filters: dict[str, str]) -> list[Entry]:
    cutoff = time.time() - AGES[filters["age"]]
    return [e for e in ops.dlq.entries(code=filters["code"], campaign=filters["campaign"])
            if not AGES[filters["age"]] or
            float(e.fields.get("dead_lettered_at") or 0) <= cutoff]


def _groups(ops: Operations, entries: list[Entry]) -> list[dict[str, Any]]:
    history = ops.journal.for_targets([e.job_id for e in entries])
    groups: dict[str, dict[str, Any]] = {}
    for entry in entries:
        data = entry.as_dict()
        group = groups.get(entry.code)
        if group is None:
            info = error_info(entry.code)
            group = groups[entry.code] = {
                "code": entry.code, "zh": data["zh"] or info.zh, "en": data["en"] or info.en,
                "advice": data["advice"] or info.advice,
                "category": data["category"] or str(info.category), "entries": []}
        record = ops.redis.hget(ops.keys.job(entry.job_id), "created_at")
        data["attempt_log"] = attempts(ops.redis, ops.keys, entry.job_id,
                                       since=float(record) if record else None,
                                       until=data["dead_lettered_at"])
        data["actions"] = [a.as_dict() for a in history.get(entry.job_id, [])]
        group["entries"].append(data)
    return sorted(groups.values(), key=lambda g: -len(g["entries"]))


async def page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    filters = _filters(request)
    entries = filtered(ops, filters)
    return render(request, "escalations.html", filters=filters, ages=list(AGES),
                  total=len(entries), shown=min(len(entries), PAGE_LIMIT),
                  groups=_groups(ops, entries[:PAGE_LIMIT]), by_code=ops.dlq.by_code(),
                  query=urlencode({k: v for k, v in filters.items() if v}),
                  resolved=_recently_resolved(ops))


def _recently_resolved(ops: Operations, count: int = 20) -> list[dict[str, Any]]:
    ids = [i.decode() for i in ops.redis.zrevrange(ops.keys.dlq_resolved, 0, count - 1)]
    out = []
    for job_id in ids:
        entry = ops.dlq.get(job_id)
        if entry is not None:
            out.append(entry.as_dict())
    return out


async def export(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    entries = filtered(ops, _filters(request))
    history = ops.journal.for_targets([e.job_id for e in entries])
    extra = {job_id: {"actions": "; ".join(f"{a.action} by {a.by}: {a.note}" for a in acts)}
             for job_id, acts in history.items()}
    buffer = io.StringIO()
    dlq_export.write(entries, buffer, fmt="csv", extra=extra)
    return web.Response(body=buffer.getvalue().encode("utf-8"), content_type="text/csv",
                        charset="utf-8", headers={
                            "Content-Disposition": 'attachment; filename="escalations.csv"'})


async def _act(request: web.Request, action: str) -> web.Response:
    ops = request.app[OPS]
    job_id = request.match_info["job_id"]
    form = await request.post()
    note = str(form.get("note", ""))
    back = str(form.get("back", "")) or "/escalations"
    if not back.startswith("/") or back.startswith("//"):
        back = "/escalations"
    sep = "&" if "?" in back else "?"
    try:
        if action == "requeue":
            done = ops.requeue([job_id], by=operator(request), note=note)
            if done.failed:
                raise DeadLetterError(done.failed[job_id])
        else:
            ops.resolve(job_id, by=operator(request), note=note)
    except NoteRequired as exc:
        raise web.HTTPSeeOther(f"{back}{sep}" + urlencode({"error": f"{job_id}: {exc}"})) from None
    except DeadLetterError as exc:
        raise web.HTTPSeeOther(f"{back}{sep}" + urlencode({"error": str(exc)})) from None
    said = "requeued" if action == "requeue" else "resolved"
    raise web.HTTPSeeOther(f"{back}{sep}" + urlencode({"done": f"{said} {job_id}"}))


async def requeue(request: web.Request) -> web.Response:
    return await _act(request, "requeue")


async def resolve(request: web.Request) -> web.Response:
    return await _act(request, "resolve")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/escalations", page)
    router.add_get("/escalations.csv", export)
    router.add_post("/escalations/{job_id}/requeue", requeue)
    router.add_post("/escalations/{job_id}/resolve", resolve)
