"""Taking one entry of the inbox streams: the job it hands over, or why it has none.

An entry of ``P inbox`` is parsed and validated (:mod:`unsign_worker.worker.inbox_entry`) and its
job recorded, or recorded ``rejected`` with the reason (``INVALID_JOB``, ``REFERENCE_CONFLICT``,
``POISON_ENTRY`` once delivered more than the cap); an entry of ``P intake`` already has its
record and only carries the job. Any failure of one entry that is not a Redis or broker outage
(:data:`TRANSIENT_ERRORS`) ends that entry: a hostile entry never stops the inbox. Reading the
streams, handing the jobs over and acknowledging the entries is
:mod:`unsign_worker.worker.inbox`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from kombu.exceptions import OperationalError

from unsign_worker.producers.admission import record_new
from unsign_worker.producers.client import ReferenceConflictError, record
from unsign_worker.producers.producer import CONFLICT_CODE, Producer
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.worker.inbox_entry import (
    INVALID_CODE,
    intake_job,
    job_id_for_entry,
    reference_of,
    reject,
    valid_job,
)

log = logging.getLogger(__name__)

#: An entry its consumers died or hung on this many times.
POISON_CODE = "POISON_ENTRY"
#: Failures that are not the entry's: the entry stays pending and is tried again.
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                    redis.exceptions.BusyLoadingError, OperationalError)


class EntryTaker:
    """What each entry of ``P inbox`` and ``P intake`` becomes: a job to hand over, or none."""

    def __init__(self, keys: Keys, producer: Producer, *, charset: str, audit_maxlen: int,
                 max_deliveries: int) -> None:
        self._keys = keys
        self._producer = producer
        self._charset = charset
        self._audit_maxlen = audit_maxlen
        self._max_deliveries = max_deliveries
        self._recorded: dict[str, Job] = {}

    def handle(self, stream: str, raw_id: Any, fields: Mapping[bytes, bytes] | None, *,
               deliveries: int) -> Job | None:
        """The job to hand over for one entry (None: nothing to send)."""
        if fields is None:  # deleted while pending
            return None
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if stream == self._keys.intake:
            return self._intake_job(entry_id, fields, deliveries)
        if deliveries > self._max_deliveries:
            self._reject(job_id_for_entry(self._keys.inbox, entry_id), "",
                         f"delivered {deliveries} times without being taken (its consumers "
                         "died or hung on it); given up unread", code=POISON_CODE)
            return None
        return self._take_or_reject(entry_id, fields)

    def _intake_job(self, entry_id: str, fields: Mapping[bytes, bytes],
                    deliveries: int) -> Job | None:
        """The job of an entry of ``P intake`` (its record is already written). One that cannot
        be read, or was given up, is dropped: its job, still ``queued``, is re-published by the
        sweeper from its record once its lease runs out."""
        try:
            if deliveries > self._max_deliveries:
                raise ValueError(f"delivered {deliveries} times without being taken")
            return intake_job(fields)
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            log.error("intake entry %s dropped (%s)", entry_id, type(exc).__name__)
            return None

    def _take_or_reject(self, entry_id: str, fields: Mapping[bytes, bytes]) -> Job | None:
        """Take one entry; any failure that is the entry's own ends it rejected, with why."""
        try:
            return self.admit(entry_id, fields)[1]
        except TRANSIENT_ERRORS:
            raise  # Redis or the broker is down: the entry stays pending, retried
        except Exception as exc:  # a hostile entry must never stop the inbox
            log.error("inbox entry %s could not be taken (%s); rejected", entry_id,
                      type(exc).__name__)
            self._reject(job_id_for_entry(self._keys.inbox, entry_id), "",
                         f"the entry could not be read ({type(exc).__name__})")
            return None

    def admit(self, entry_id: str, fields: Mapping[bytes, bytes]) -> tuple[str, Job | None]:
        """Record the job of one entry of ``P inbox`` (or record it rejected); returns its id
        and the job to hand over (None: rejected, or already past ``queued``).

        Raises only on Redis or broker errors, which leave the entry pending for a retry.
        """
        job_id = job_id_for_entry(self._keys.inbox, entry_id)
        if entry_id in self._recorded:  # recorded with the other new jobs of its read
            return job_id, self._recorded.pop(entry_id)
        try:
            job = valid_job(job_id, fields, charset=self._charset)
        except ValidationError as exc:
            return self._reject(job_id, reference_of(fields), str(exc)), None
        try:
            return record(self._producer, job)
        except ReferenceConflictError as exc:
            return self._reject(job_id, job.reference, str(exc), code=CONFLICT_CODE), None

    def record_fresh(self, entries: Sequence[tuple[Any, Mapping[bytes, bytes]]]) -> None:
        """Record the new jobs of the valid entries of one read of ``P inbox`` in two round
        trips for all (:func:`record_new`); every other entry (invalid, a reference already
        bound, a record already there) is taken one by one by :meth:`admit`. Call
        :meth:`forget` once the read is handled."""
        jobs: dict[str, Job] = {}
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            try:
                jobs[entry_id] = valid_job(job_id_for_entry(self._keys.inbox, entry_id),
                                           fields, charset=self._charset)
            except Exception:  # a hostile entry: its own path (admit) says why, rejects it
                continue
        self._recorded = record_new(self._producer, jobs)

    def forget(self) -> None:
        """Drop the jobs :meth:`record_fresh` recorded that were not taken."""
        self._recorded = {}

    def _reject(self, job_id: str, reference: str, reason: str, *,
                code: str = INVALID_CODE) -> str:
        return reject(self._producer, job_id, reference, reason, code=code,
                      audit_maxlen=self._audit_maxlen)
