"""Taking one entry of the inbox streams: the job it hands over, or why it has none.

An entry of a producer's stream ``P inbox:<name>`` gets a random job id, bound to the entry
with ``SET NX`` (:meth:`Producer.bind_entry`): read twice, after a crash, it names the same
job. It is parsed and validated (:mod:`unsign_worker.worker.inbox_entry`) and its job recorded
with its producer's name (references are bound among that producer's own), or recorded
``rejected`` with the reason (``INVALID_JOB``, ``REFERENCE_CONFLICT``, ``POISON_ENTRY`` once
delivered more than the cap). An entry that repeats a job through its reference is pointed at
that job. An entry of ``P intake`` (the operator's) already has its record and only carries the
job. Any failure of one entry that is not a Redis or broker outage (:data:`TRANSIENT_ERRORS`)
ends that entry: a hostile entry never stops the inbox. Reading the streams, handing the jobs
over and acknowledging the entries is :mod:`unsign_worker.worker.inbox`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import redis
from kombu.exceptions import OperationalError

from unsign_worker.producers.admission import ReferenceConflictError, record, record_new
from unsign_worker.producers.producer import CONFLICT_CODE, Producer
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.store.job import Job
from unsign_worker.store.states import JobState
from unsign_worker.worker.inbox_entry import (
    INVALID_CODE,
    intake_job,
    reference_of,
    reject,
    valid_job,
)

log = logging.getLogger(__name__)

#: An entry its consumers died or hung on this many times.
POISON_CODE = "POISON_ENTRY"
#: Why an entry whose id an earlier entry of its producer already took is refused.
REUSED_REASON = "entry_reused"
#: Failures that are not the entry's: the entry stays pending and is tried again.
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                    redis.exceptions.BusyLoadingError, OperationalError)


class EntryTaker:
    """What each entry of the inbox streams becomes: a job to hand over, or none."""

    def __init__(self, producer: Producer, *, charset: str, audit_maxlen: int,
                 max_deliveries: int) -> None:
        self._producer = producer
        self._charset = charset
        self._audit_maxlen = audit_maxlen
        self._max_deliveries = max_deliveries

    def handle(self, name: str, entry_id: str, fields: Mapping[bytes, bytes] | None, *,
               deliveries: int) -> Job | None:
        """The job to hand over for one entry of producer ``name``'s stream ("" for
        ``P intake``); None: nothing to send."""
        if fields is None:  # deleted while pending
            return None
        if not name:
            return self._intake_job(entry_id, fields, deliveries)
        if deliveries > self._max_deliveries:
            self._reject(name, self._producer.bind_entry(name, entry_id)[0], "",
                         f"delivered {deliveries} times without being taken (its consumers "
                         "died or hung on it); given up unread", code=POISON_CODE)
            return None
        return self._take_or_reject(name, entry_id, fields)

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

    def _take_or_reject(self, name: str, entry_id: str, fields: Mapping[bytes, bytes]
                        ) -> Job | None:
        """Take one entry; any failure that is the entry's own ends it rejected, with why."""
        try:
            return self.admit(name, entry_id, fields)[1]
        except TRANSIENT_ERRORS:
            raise  # Redis or the broker is down: the entry stays pending, retried
        except Exception as exc:  # a hostile entry must never stop the inbox
            log.error("entry %s of producer %s could not be taken (%s); rejected", entry_id,
                      name, type(exc).__name__)
            self._reject(name, self._producer.bind_entry(name, entry_id)[0], "",
                         f"the entry could not be read ({type(exc).__name__})")
            return None

    def admit(self, name: str, entry_id: str, fields: Mapping[bytes, bytes]
              ) -> tuple[str, Job | None]:
        """Record the job of one entry of producer ``name``'s stream (or record it rejected);
        returns its id and the job to hand over (None: rejected, or already past ``queued``).

        Raises only on Redis or broker errors, which leave the entry pending for a retry.
        """
        job_id, created = self._producer.bind_entry(name, entry_id)
        try:
            job = valid_job(job_id, fields, charset=self._charset, producer=name)
        except ValidationError as exc:
            return self._reject(name, job_id, reference_of(fields), str(exc)), None
        if not created and self._reused(job):
            log.warning("entry %s of producer %s reuses the id of an earlier entry, whose job "
                        "%s names other parameters or another reference; refused", entry_id,
                        name, job_id)
            self._producer.refuse_entry(name, entry_id, REUSED_REASON,
                                        f"the entry id was already taken by job {job_id}, "
                                        "with other parameters or another reference")
            return job_id, None
        try:
            found, handed = record(self._producer, job)
        except ReferenceConflictError as exc:
            return self._reject(name, job_id, job.reference, str(exc), code=CONFLICT_CODE), None
        if found != job_id:  # the entry repeats the job its reference is bound to
            self._producer.rebind_entry(name, entry_id, found)
        return found, handed

    def _reused(self, job: Job) -> bool:
        """Whether the job already recorded under the entry's bound id is another request
        (an entry id the producer reused after deleting its stream), not this entry read
        again."""
        state, params, reference = self._producer.redis.hmget(
            self._producer.keys.job(job.job_id), "state", "params", "reference")
        if state is None:  # bound, never recorded (a crash in between): this entry's job
            return False
        if (reference or b"").decode() != job.reference:
            return True
        if state == JobState.REJECTED.value.encode():  # recorded without its parameters
            return False
        try:
            return bool(json.loads(params or b"{}") != job.params)
        except ValueError:
            return True

    def take_fresh(self, name: str, entries: Sequence[tuple[str, Mapping[bytes, bytes]]]
                   ) -> list[Job | None]:
        """The jobs of a read's new entries of producer ``name``'s stream, in order (None: no
        job to hand over). The new jobs of valid entries are bound and recorded in three round
        trips for all (:meth:`Producer.bind_entries`, :func:`record_new`); every other entry
        (invalid, a reference already bound, an entry read before) is taken one by one."""
        bound = self._producer.bind_entries(name, [entry_id for entry_id, _ in entries])
        fresh: dict[str, Job] = {}
        for entry_id, fields in entries:
            job_id, created = bound[entry_id]
            if not created:
                continue
            try:
                fresh[entry_id] = valid_job(job_id, fields, charset=self._charset,
                                            producer=name)
            except Exception:  # a hostile entry: its own path (admit) says why, rejects it
                continue
        recorded = record_new(self._producer, fresh)
        return [recorded[entry_id] if entry_id in recorded
                else self._take_or_reject(name, entry_id, fields)
                for entry_id, fields in entries]

    def _reject(self, name: str, job_id: str, reference: str, reason: str, *,
                code: str = INVALID_CODE) -> str:
        return reject(self._producer, job_id, reference, reason, code=code,
                      audit_maxlen=self._audit_maxlen, name=name)
