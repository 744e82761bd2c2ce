"""A campaign run that streams its file: memory does not grow with the number of rows.

The file is read once, by :func:`unsign_worker.producers.campaign.plan.scan_file` with
``keep=True``: it validates every row, counts, and keeps every verdict (a valid row with its
job's id) in a :class:`~unsign_worker.producers.campaign.spool.Spool` on disk. The campaign's
totals must be recorded before its first job is enqueued, and a file refused as a whole must
leave nothing in Redis, so nothing is written until that read is through. :func:`start_file`
then takes the verdicts back, chunk by chunk (``CHUNK_SIZE`` jobs): each chunk's job ids are
appended to the job list being built, then the chunk is enqueued; refused rows go to the
campaign's rejected rows as they come. Only the duplicate-row index of
:mod:`unsign_worker.producers.campaign.seen` grows with the file.

What is enqueued is what was validated, but the file must still not change during the run: the
campaign is named after it (its id derived from its bytes, unless ``--id``), and an operator
who edits a file while it runs means something else than what is being sent. Its stamp
(device, inode, size, mtime) is compared before the first chunk and before every chunk, and a
campaign id derived from its bytes is derived again before the first. A changed file stops the
run with :class:`FileChangedError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer, EnqueueResult
from unsign_worker.producers.campaign.plan import Scan, file_campaign_id, file_stamp
from unsign_worker.producers.campaign.rows import FileFormatError
from unsign_worker.producers.campaign.spool import Spool, SpooledJob, SpooledReject
from unsign_worker.store.campaigns import CampaignError, CampaignStore
from unsign_worker.store.job import Job

#: Refused rows pushed to Redis at a time.
REJECTS_CHUNK = 1000

Chunk = tuple[Sequence[Job], dict[str, int]]


class FileChangedError(CampaignError):
    """The campaign file changed since the run read it."""


def start_file(scan: Scan, enqueuer: CampaignEnqueuer, *, name: str = "",
               rate: int | None = None,
               on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
    """Record the campaign ``scan`` found (meta, job list, rejected rows) and enqueue its jobs,
    chunk by chunk from the scan's spool (``scan_file(..., keep=True)``; closed here); a
    re-run skips what is done or in flight. A cancelled campaign stops sending between chunks
    (its job list is still completed).

    Raises:
        CampaignError: the campaign was cancelled before the run began.
        FileChangedError: the file is not the one the scan read.
        ValueError: the scan kept no verdicts.
    """
    if scan.spool is None:
        raise ValueError("start_file needs the verdicts of scan_file(..., keep=True)")
    try:
        _check_unchanged(scan)
        if scan.derived_id and file_campaign_id(scan.path) != scan.campaign_id:
            raise _changed(scan)
        store = enqueuer.store
        former = store.begin(scan.campaign_id, name=name, source=scan.source,
                             total=scan.valid, rejected=scan.rejected, rate=rate)
        chunks = _chunks(scan, scan.spool, store, enqueuer.chunk_size)
        result = enqueuer.run_chunks(scan.campaign_id, chunks, fresh=former == "new",
                                     on_chunk=on_chunk)
        for _ in chunks:  # stopped by a cancel: the job list and rejected rows are completed
            pass
    finally:
        scan.spool.close()
    return result


def _chunks(scan: Scan, spool: Spool, store: CampaignStore, size: int) -> Iterator[Chunk]:
    """The scan's jobs, ``size`` at a time, each chunk's ids listed before it is yielded; the
    job list is closed once every verdict is taken."""
    cid = scan.campaign_id
    store.open_job_list(cid)
    store.clear_rejects(cid)
    now = time.time()
    jobs: list[Job] = []
    lines: dict[str, int] = {}
    rejects: list[SpooledReject] = []
    for verdict in spool.verdicts():
        if isinstance(verdict, SpooledJob):
            jobs.append(Job(job_id=verdict.job_id, params=verdict.params, campaign=cid,
                            reference=verdict.reference, enqueued_at=now))
            lines[verdict.job_id] = verdict.line
        else:
            rejects.append(verdict)
            if len(rejects) >= REJECTS_CHUNK:
                store.append_rejects(cid, rejects)
                rejects = []
        if len(jobs) >= size:
            _check_unchanged(scan)
            store.append_jobs(cid, [j.job_id for j in jobs])
            yield jobs, lines
            jobs, lines = [], {}
    _check_unchanged(scan)
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
