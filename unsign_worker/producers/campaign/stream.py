"""A campaign run that streams its file: memory does not grow with the number of rows.

A run reads the file twice. The first pass (:func:`unsign_worker.producers.campaign.plan.scan_file`)
validates every row and counts: the campaign's totals must be recorded before its first job is
enqueued, and a file refused as a whole must leave nothing in Redis. The second pass
(:func:`start_file`) reads the file again, chunk by chunk (``CHUNK_SIZE`` jobs): each chunk's
job ids are appended to the job list being built, then the chunk is enqueued; refused rows go
to the campaign's rejected rows as they come. Only the duplicate-row index of
:mod:`unsign_worker.producers.campaign.seen` grows with the file.

The file must not change between the passes, nor during the second: its stamp (device, inode,
size, mtime) is compared before every chunk, and a campaign id derived from its bytes is
derived again before the second pass. A changed file stops the run with
:class:`FileChangedError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer, EnqueueResult
from unsign_worker.producers.campaign.ids import job_id_for
from unsign_worker.producers.campaign.plan import Scan, file_campaign_id, file_stamp
from unsign_worker.producers.campaign.rows import FileFormatError, open_rows
from unsign_worker.producers.campaign.validate import RejectedRow, ValidRow, validate_rows
from unsign_worker.store.campaigns import CampaignError, CampaignStore
from unsign_worker.store.job import Job

#: Refused rows pushed to Redis at a time.
REJECTS_CHUNK = 1000

Chunk = tuple[Sequence[Job], dict[str, int]]


class FileChangedError(CampaignError):
    """The campaign file changed between the run's two reads of it, or during the second."""


def start_file(scan: Scan, enqueuer: CampaignEnqueuer, *, encoding: str = "utf-8",
               charset: str = "utf-8", name: str = "", rate: int | None = None,
               on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
    """Record the campaign ``scan`` found (meta, job list, rejected rows) and enqueue its jobs,
    reading the file again chunk by chunk; a re-run skips what is done or in flight. A
    cancelled campaign stops sending between chunks (its job list is still completed).

    Raises:
        CampaignError: the campaign was cancelled before the run began.
        FileChangedError: the file is not the one the first pass read.
    """
    _check_unchanged(scan)
    if scan.derived_id and file_campaign_id(scan.path) != scan.campaign_id:
        raise _changed(scan)
    store = enqueuer.store
    former = store.begin(scan.campaign_id, name=name, source=scan.source, total=scan.valid,
                         rejected=scan.rejected, rate=rate)
    chunks = _chunks(scan, store, enqueuer.chunk_size, encoding, charset)
    result = enqueuer.run_chunks(scan.campaign_id, chunks, fresh=former == "new",
                                 on_chunk=on_chunk)
    for _ in chunks:  # stopped by a cancel: the job list and rejected rows are still completed
        pass
    return result


def _chunks(scan: Scan, store: CampaignStore, size: int, encoding: str,
            charset: str) -> Iterator[Chunk]:
    """The file's jobs, ``size`` at a time, each chunk's ids listed before it is yielded; the
    job list is closed once the file is read through."""
    cid = scan.campaign_id
    store.open_job_list(cid)
    store.clear_rejects(cid)
    now = time.time()
    jobs: list[Job] = []
    lines: dict[str, int] = {}
    rejects: list[RejectedRow] = []
    valid = rejected = 0
    try:
        verdicts = validate_rows(open_rows(scan.path, scan.fmt, encoding), charset=charset)
        for verdict in verdicts:
            if isinstance(verdict, ValidRow):
                job_id = job_id_for(cid, verdict)
                jobs.append(Job(job_id=job_id, params=verdict.params, campaign=cid,
                                reference=verdict.reference, enqueued_at=now))
                lines[job_id] = verdict.line
                valid += 1
            else:
                rejects.append(verdict)
                rejected += 1
            if len(rejects) >= REJECTS_CHUNK:
                store.append_rejects(cid, rejects)
                rejects = []
            if len(jobs) >= size:
                _check_unchanged(scan)
                store.append_jobs(cid, [j.job_id for j in jobs])
                yield jobs, lines
                jobs, lines = [], {}
    except FileFormatError:  # the first pass read it through: it changed since
        raise _changed(scan) from None
    _check_unchanged(scan)
    if (valid, rejected) != (scan.valid, scan.rejected):
        raise _changed(scan)
    store.append_rejects(cid, rejects)
    if jobs:
        store.append_jobs(cid, [j.job_id for j in jobs])
        yield jobs, lines
    store.close_job_list(cid)


def _check_unchanged(scan: Scan) -> None:
    try:
        stamp = file_stamp(scan.path)
    except FileFormatError:
        raise _changed(scan) from None
    if stamp != scan.stamp:
        raise _changed(scan)


def _changed(scan: Scan) -> FileChangedError:
    return FileChangedError(
        f"{scan.path}: the file changed while campaign {scan.campaign_id} was being enqueued; "
        "jobs already enqueued stand. Leave the file unchanged while it runs, then run it "
        "again")
