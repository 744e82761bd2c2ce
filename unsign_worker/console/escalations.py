"""Escalations: the dead-letter queue, grouped by code, with the rules' meaning and advice, the
attempts, the operators' journal and the two ways out (requeue, resolve), each with a note.

Built for thousands of entries: the counts and groups come from two short fields of each entry
(:meth:`DeadLetters.briefs`); only the page shown of each group is read whole."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unsign_worker.console.app import OPS, operator, render
from unsign_worker.console.paging import PAGE_SIZE, Page
from unsign_worker.ops import dlq_export
from unsign_worker.ops.lookup import attempts
from unsign_worker.ops.operations import Operations
from unsign_worker.producers.reports import iso_time
from unsign_worker.protocol.catalogue import lookup as error_info
from unsign_worker.store.deadletter import (
    Brief,
    DeadLetterError,
    Entry,
    NoteRequired,
    count_codes,
)

#: Age filters offered: label -> seconds (entries at least this old).
AGES = {"": 0, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
#: Entries read whole at once for the CSV export.
EXPORT_CHUNK = 500
#: Entries of each group shown when every group is (the oldest; the group's link shows all).
PREVIEW = 5


def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    age = q.get("age", "")
    return {"code": q.get("code", "").strip(), "campaign": q.get("campaign", "").strip(),
            "age": age if age in AGES else ""}


def briefs(ops: Operations, filters: dict[str, str], *, by_code: bool = True) -> list[Brief]:
    """The open entries the filters keep, oldest first, as id, code, campaign and time only
    (``by_code=False``: any code, for the counts of every code)."""
    before = time.time() - AGES[filters["age"]] if AGES[filters["age"]] else None
    return ops.dlq.briefs(code=filters["code"] if by_code else "",
                          campaign=filters["campaign"], before=before)


def filtered(ops: Operations, filters: dict[str, str]) -> Iterator[Entry]:
    """The entries the filters keep, whole, oldest first, read a chunk at a time."""
    ids = [b.job_id for b in briefs(ops, filters)]
    for start in range(0, len(ids), EXPORT_CHUNK):
        yield from ops.dlq.get_many(ids[start:start + EXPORT_CHUNK])


def _link(filters: dict[str, str], **changes: str | int) -> str:
    """``/escalations`` with the filters, changed as told (empty values left out)."""
    query = urlencode({k: v for k, v in {**filters, **changes}.items() if v})
    return f"/escalations?{query}" if query else "/escalations"


def _shown(ops: Operations, entry: Entry) -> dict[str, Any]:
    """One entry as the page shows it: its attempts from the audit stream."""
    data = entry.as_dict()
    record = ops.redis.hget(ops.keys.job(entry.job_id), "created_at")
    data["attempt_log"] = attempts(ops.redis, ops.keys, entry.job_id,
                                   since=float(record) if record else None,
                                   until=data["dead_lettered_at"])
    return data


def _group(ops: Operations, filters: dict[str, str], code: str, members: list[Brief],
           asked: str | None) -> dict[str, Any]:
    """One code's group: the rules' meaning and advice, and one page of its entries (the
    only ones read whole): a page of :data:`PAGE_SIZE` when the group is shown alone
    (``asked``: the page number in the URL), its first :data:`PREVIEW` among every group."""
    alone = bool(filters["code"])
    paged = Page.of(asked, len(members), size=PAGE_SIZE if alone else PREVIEW)
    entries = [_shown(ops, e) for e in ops.dlq.get_many(
        [b.job_id for b in members[paged.start:paged.stop]])]
    history = ops.journal.for_targets([e["job_id"] for e in entries])
    for data in entries:
        data["actions"] = [a.as_dict() for a in history.get(data["job_id"], [])]
    info = error_info(code)
    first = entries[0] if entries else {}
    return {"code": code, "count": len(members), "page": paged, "entries": entries,
            "zh": first.get("zh") or info.zh, "en": first.get("en") or info.en,
            "advice": first.get("advice") or info.advice,
            "category": first.get("category") or str(info.category),
            "previous": alone and paged.previous and _link(filters, code=code,
                                                           page=paged.previous),
            "next": alone and paged.next and _link(filters, code=code, page=paged.next),
            "more": not alone and paged.next and _link(filters, code=code)}


async def page(request: web.Request) -> web.Response:
    """Every code with its count and meaning, then each code's group: its oldest entries, or
    that group alone a page at a time (``?code=C&page=N``); each entry's details folded."""
    ops = request.app[OPS]
    filters = _filters(request)
    every = briefs(ops, filters, by_code=False)
    counts = count_codes(every)
    codes = [filters["code"]] if filters["code"] else list(counts)
    asked = request.query.get("page") if filters["code"] else None
    groups = [_group(ops, filters, code, [b for b in every if b.code == code], asked)
              for code in codes if counts.get(code)]
    summary = [{"code": code, "count": n, "en": error_info(code).en,
                "link": _link(filters, code=code)} for code, n in counts.items()]
    here = _link(filters, page=asked or "")
    return render(request, "escalations.html", filters=filters, ages=list(AGES),
                  total=sum(g["count"] for g in groups), summary=summary, groups=groups,
                  all_codes=_link(filters, code=""), back=here, page_size=PAGE_SIZE,
                  csv=_link(filters).replace("/escalations", "/escalations.csv", 1),
                  resolved=_recently_resolved(ops))


def _recently_resolved(ops: Operations, count: int = 20) -> list[dict[str, Any]]:
    ids = [i.decode() for i in ops.redis.zrevrange(ops.keys.dlq_resolved, 0, count - 1)]
    return [entry.as_dict() for entry in ops.dlq.get_many(ids)]


async def export(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    entries = list(filtered(ops, _filters(request)))
    history = ops.journal.for_targets([e.job_id for e in entries])
    extra = {job_id: {"actions": "; ".join(f"{iso_time(a.time)} {a.action} by {a.by}: {a.note}"
                                           for a in acts)}
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
