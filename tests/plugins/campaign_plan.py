"""A campaign file held in memory, for tests: every job of a small file at hand.

The product reads a campaign once, streaming (``scan_file(..., keep=True)`` then
``start_file``); a test often wants the jobs themselves to look at. :func:`plan_file` reads a
file with the product's own reader and validator and keeps every job; :func:`start` records it
and hands its jobs to the product's :class:`CampaignEnqueuer` in chunks, as ``start_file`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer, EnqueueResult
from unsign_worker.producers.campaign.ids import check_campaign_id, job_id_for
from unsign_worker.producers.campaign.plan import file_campaign_id
from unsign_worker.producers.campaign.rows import FileFormatError, file_format, open_rows
from unsign_worker.producers.campaign.validate import RejectedRow, ValidRow, validate_rows
from unsign_worker.store.job import Job


@dataclass(frozen=True)
class Plan:
    campaign_id: str
    source: str
    fmt: str
    jobs: list[Job]
    #: job id -> line in the file
    lines: dict[str, int]
    rejected: list[RejectedRow]

    @property
    def rows(self) -> int:
        return len(self.jobs) + len(self.rejected)


def plan_file(path: str | Path, *, encoding: str = "utf-8", charset: str = "utf-8",
              campaign_id: str | None = None) -> Plan:
    """Read and validate a campaign file, keeping every job.

    Raises:
        FileFormatError: as ``scan_file``.
    """
    path = Path(path)
    if campaign_id is not None and (problem := check_campaign_id(campaign_id)):
        raise FileFormatError(f"--id: {problem}")
    cid = campaign_id or file_campaign_id(path)
    fmt = file_format(path)
    now = time.time()
    jobs: list[Job] = []
    lines: dict[str, int] = {}
    rejected: list[RejectedRow] = []
    for verdict in validate_rows(open_rows(path, fmt, encoding), charset=charset):
        if isinstance(verdict, ValidRow):
            job_id = job_id_for(cid, verdict)
            jobs.append(Job(job_id=job_id, params=verdict.params, campaign=cid,
                            reference=verdict.reference, enqueued_at=now))
            lines[job_id] = verdict.line
        else:
            rejected.append(verdict)
    return Plan(cid, path.name, fmt, jobs, lines, rejected)


def run_jobs(enqueuer: CampaignEnqueuer, campaign_id: str, jobs: Sequence[Job], *,
             lines: Mapping[str, int] | None = None, fresh: bool = False,
             on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
    """Enqueue ``jobs`` of campaign ``campaign_id`` through ``enqueuer.run_chunks``, a chunk of
    ``enqueuer.chunk_size`` at a time."""
    every = lines or {}
    size = enqueuer.chunk_size
    return enqueuer.run_chunks(campaign_id, ((jobs[s:s + size], every)
                                             for s in range(0, len(jobs), size)),
                               fresh=fresh, on_chunk=on_chunk)


def start(plan: Plan, enqueuer: CampaignEnqueuer, *, name: str = "", rate: int | None = None,
          on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
    """Record the plan's campaign (meta, job list, rejected rows) and enqueue its jobs, as
    ``start_file`` does for a scanned file (a re-run skips what is done or in flight).

    Raises:
        CampaignError: the campaign was cancelled.
    """
    store = enqueuer.store
    former = store.begin(plan.campaign_id, name=name, source=plan.source,
                         total=len(plan.jobs), rejected=len(plan.rejected), rate=rate)
    store.set_jobs(plan.campaign_id, [j.job_id for j in plan.jobs])
    store.set_rejects(plan.campaign_id, plan.rejected)
    return run_jobs(enqueuer, plan.campaign_id, plan.jobs, lines=plan.lines,
                    fresh=former == "new", on_chunk=on_chunk)
