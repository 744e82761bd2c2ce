"""Lookup: one job by job id or producer reference: state, attempts, hook, dead-letter entry,
the operators' actions."""

from __future__ import annotations

from aiohttp import web

from unsign_worker.console.app import OPS, render
from unsign_worker.ops.lookup import find_job_id, job_view


async def page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    query = request.query.get("q", "").strip()[:200]
    job = None
    if query:
        job_id = find_job_id(ops.redis, ops.keys, query)
        job = job_view(ops.redis, ops.keys, job_id) if job_id else None
    return render(request, "lookup.html", query=query, job=job)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/lookup", page)
