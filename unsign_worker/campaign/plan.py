"""From a campaign file to jobs: read, validate every row, name every job; then start it.

:func:`plan_file` does no Redis I/O: ``--dry-run`` stops there. :func:`start` records the
campaign (meta, job list, rejected rows) and enqueues its jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unsign_worker.campaign.enqueue import CampaignEnqueuer, EnqueueResult
from unsign_worker.campaign.ids import campaign_id_for, check_campaign_id, job_id_for
from unsign_worker.campaign.rows import FileFormatError, decode, file_format, read_rows
from unsign_worker.campaign.validate import RejectedRow, ValidRow, validate_rows
from unsign_worker.job import Job


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
    """Read and validate a campaign file.

    Raises:
        FileFormatError: the file cannot be read, or its header is wrong; or ``campaign_id``
            breaks the id rule.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror}") from None
    if campaign_id is not None and (problem := check_campaign_id(campaign_id)):
        raise FileFormatError(f"--id: {problem}")
    cid = campaign_id or campaign_id_for(data)
    fmt = file_format(path)
    now = time.time()
    jobs: list[Job] = []
    lines: dict[str, int] = {}
    rejected: list[RejectedRow] = []
    for verdict in validate_rows(read_rows(decode(data, encoding), fmt), charset=charset):
        if isinstance(verdict, ValidRow):
            job_id = job_id_for(cid, verdict)
            jobs.append(Job(job_id=job_id, params=verdict.params, campaign=cid,
                            reference=verdict.reference, enqueued_at=now))
            lines[job_id] = verdict.line
        else:
            rejected.append(verdict)
    return Plan(cid, path.name, fmt, jobs, lines, rejected)


def start(plan: Plan, enqueuer: CampaignEnqueuer, *, name: str = "", rate: int | None = None,
          on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
    """Record the campaign and enqueue its jobs (a re-run skips what is done or in flight).

    Raises:
        CampaignError: the campaign was cancelled.
    """
    store = enqueuer.store
    former = store.begin(plan.campaign_id, name=name, source=plan.source,
                         total=len(plan.jobs), rejected=len(plan.rejected), rate=rate)
    store.set_jobs(plan.campaign_id, [j.job_id for j in plan.jobs])
    store.set_rejects(plan.campaign_id, plan.rejected)
    return enqueuer.run(plan.campaign_id, plan.jobs, lines=plan.lines,
                        fresh=former == "new", on_chunk=on_chunk)
