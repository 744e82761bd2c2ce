"""From a campaign file to jobs: read, validate every row, name every job.

:func:`scan_file` (``--dry-run``, and the read of a run) counts, streaming the file and its
refused rows, so its memory does not grow with the file; for a run (``keep=True``) it also
keeps every verdict, with its job's id, in a :class:`~unsign_worker.producers.campaign.spool.Spool`
on disk, which the run then streams into Redis
(:mod:`unsign_worker.producers.campaign.stream`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unsign_worker.producers.campaign.ids import check_campaign_id, job_id_for
from unsign_worker.producers.campaign.rows import FileFormatError, file_format, open_rows
from unsign_worker.producers.campaign.spool import Spool
from unsign_worker.producers.campaign.validate import RejectedRow, ValidRow, validate_rows

#: Bytes read at a time when hashing a file for its campaign id.
HASH_CHUNK_BYTES = 1 << 20


def file_campaign_id(path: str | Path) -> str:
    """:func:`~unsign_worker.producers.campaign.ids.campaign_id_for` of the file's bytes, read in
    chunks.

    Raises:
        FileFormatError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror}") from None
    return "c-" + digest.hexdigest()[:12]


def _campaign_id(path: Path, campaign_id: str | None) -> str:
    if campaign_id is not None and (problem := check_campaign_id(campaign_id)):
        raise FileFormatError(f"--id: {problem}")
    return campaign_id or file_campaign_id(path)


@dataclass(frozen=True)
class Scan:
    """What a read of the file found: the campaign id and the counts; and, for a run
    (:func:`unsign_worker.producers.campaign.stream.start_file`), its verdicts and what tells
    whether the file changed since."""

    campaign_id: str
    source: str
    rows: int
    valid: int
    rejected: int
    path: Path = Path()
    fmt: str = "csv"
    #: the file as it was read: (device, inode, size in bytes, mtime in ns)
    stamp: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: the campaign id was derived from the file's bytes (no ``--id``)
    derived_id: bool = False
    #: every verdict in file order (``keep=True``), for the run; its owner closes it
    spool: Spool | None = field(default=None, compare=False, repr=False)


def file_stamp(path: str | Path) -> tuple[int, int, int, int]:
    """What changes when a file is rewritten: (device, inode, size in bytes, mtime in ns).

    Raises:
        FileFormatError: the file cannot be read.
    """
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def scan_file(path: str | Path, *, encoding: str = "utf-8", charset: str = "utf-8",
              campaign_id: str | None = None,
              on_reject: Callable[[RejectedRow], None] | None = None,
              keep: bool = False) -> Scan:
    """Read and validate a campaign file without keeping its rows in memory: each refused
    row goes to ``on_reject`` as it is found, and counts are returned. With ``keep``, every
    verdict (a valid row with its job's id) also goes to the scan's :attr:`Scan.spool`, for
    the run; the caller closes it (:func:`~unsign_worker.producers.campaign.stream.start_file`
    does).

    Raises:
        FileFormatError: the file cannot be read, or its header is wrong; or ``campaign_id``
            breaks the id rule.
    """
    path = Path(path)
    stamp = file_stamp(path)
    cid = _campaign_id(path, campaign_id)
    fmt = file_format(path)
    valid = rejected = 0
    spool = Spool() if keep else None
    try:
        for verdict in validate_rows(open_rows(path, fmt, encoding), charset=charset):
            if isinstance(verdict, ValidRow):
                job_id = job_id_for(cid, verdict)  # the run's: it must not fail there
                if spool is not None:
                    spool.job(job_id, verdict.line, verdict.reference, verdict.params)
                valid += 1
            else:
                rejected += 1
                if spool is not None:
                    spool.reject(verdict)
                if on_reject is not None:
                    on_reject(verdict)
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    return Scan(cid, path.name, valid + rejected, valid, rejected, path=path, fmt=fmt,
                stamp=stamp, derived_id=campaign_id is None, spool=spool)
