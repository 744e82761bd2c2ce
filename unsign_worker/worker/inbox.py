"""The inbox: jobs from any language, through a Redis stream (``P inbox``).

An application adds one entry per job with a plain Redis client; the job is one JSON object of
the business parameters plus an optional ``reference``, in the field ``job``::

    XADD unsign:inbox * job '{"customer_code":"C00000000042","reference":"order-42"}'

(the fields may also be given flat: ``XADD unsign:inbox * customer_code C00000000042
reference order-42``). The job's status is then found through its reference
(``GET unsign:ref:order-42`` -> job id, ``HGETALL unsign:job:<id>``).

Each worker process runs an :class:`InboxThread`: it reads the stream as consumer
``<hostname>`` of group ``unsign-workers`` and acknowledges (and deletes) an entry only once its
job is safely enqueued (record written, message sent), so a crash loses nothing; entries left
pending by a dead worker are claimed by another after :data:`STALE_AFTER_MS`. An entry read
twice maps to the same job (the reference, or else the entry id, names it). An invalid entry is
not sent: its job is recorded ``rejected`` with code ``INVALID_JOB`` and the reason.

Entries come from anyone who may write the stream, so none may stop the inbox: any failure of
one entry that is not a Redis or broker outage rejects and acknowledges that entry with its
reason; an entry whose consumers died or hung on it more than :data:`MAX_DELIVERIES` times is
ended unread (``POISON_ENTRY``); an entry is read only up to :data:`MAX_ENTRY_BYTES`. A valid
entry whose reference is bound to a job with other parameters (or an invalid entry whose
reference is bound to another job) becomes its own job, rejected ``REFERENCE_CONFLICT`` and
listed in ``P conflicts:<reference>``: its producer finds it there, never the other job's
outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import redis
from kombu.exceptions import OperationalError

from unsign_worker.producers.client import (
    ReferenceConflictError,
    reference_errors,
    submit,
    validated_params,
)
from unsign_worker.producers.producer import AUDIT_MAXLEN, CONFLICT_CODE, Producer
from unsign_worker.protocol.exceptions import FieldError, ValidationError
from unsign_worker.store.job import Job
from unsign_worker.store.keys import INBOX_GROUP, Keys
from unsign_worker.worker.background import LoopThread

log = logging.getLogger(__name__)

#: Entries read per call.
READ_COUNT = 100
#: How long one read blocks waiting for new entries, milliseconds.
BLOCK_MS = 1000
#: A pending entry idle this long belongs to a dead consumer and is claimed, milliseconds.
STALE_AFTER_MS = 30_000
INVALID_CODE = "INVALID_JOB"
#: An entry its consumers died or hung on this many times.
POISON_CODE = "POISON_ENTRY"
#: An entry delivered more often than this (claimed from dead consumers) is ended unread.
MAX_DELIVERIES = 5
#: Largest entry read (field names and values together), bytes: a job is a few hundred.
MAX_ENTRY_BYTES = 16_384
#: Most fields an entry may have (a flat job has at most six).
MAX_ENTRY_FIELDS = 16
#: Longest reason stored for a rejected entry, characters.
MAX_REASON_CHARS = 2_000
#: Failures that are not the entry's: the entry stays pending and is tried again.
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
                    redis.exceptions.BusyLoadingError, OperationalError)


def job_id_for_entry(stream: str, entry_id: str) -> str:
    """A stable job id for an entry without reference: a second read maps to the same job."""
    return hashlib.sha256(f"{stream}\x1f{entry_id}".encode()).hexdigest()[:32]


def parse_entry(fields: Mapping[bytes, bytes]) -> tuple[dict[str, Any], str]:
    """``(params, reference)`` of one stream entry, not yet validated.

    Raises:
        ValidationError: the entry is too large, or not a JSON object of strings (field ``job``).
    """
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES or len(fields) > MAX_ENTRY_FIELDS:
        raise ValidationError([FieldError("job", "max_size", f"the entry holds {len(fields)} "
                                          f"fields and {size} bytes; at most {MAX_ENTRY_FIELDS} "
                                          f"fields and {MAX_ENTRY_BYTES} bytes are read")])
    decoded = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
               for k, v in fields.items()}
    if "job" in decoded:
        try:
            data = json.loads(decoded["job"])
        except json.JSONDecodeError as exc:
            raise ValidationError([FieldError("job", "json", f"is not valid JSON ({exc.msg}, "
                                              f"column {exc.colno})")]) from None
        except RecursionError:
            raise ValidationError([FieldError("job", "json", "is nested too deeply")]) from None
        except ValueError:  # a number of more than 4,300 digits
            raise ValidationError([FieldError("job", "json", "holds a number too long to "
                                              "read")]) from None
        if not isinstance(data, dict):
            raise ValidationError([FieldError("job", "json_object", "must be a JSON object")])
    else:
        data = dict(decoded)
    reference = data.pop("reference", "") or ""
    if not isinstance(reference, str):
        raise ValidationError([FieldError("reference", "type", "must be a string")])
    return data, reference


def storable(text: str) -> str:
    """``text`` cut to :data:`MAX_REASON_CHARS` and encodable as UTF-8 (a lone surrogate is
    escaped), so a hostile entry's reason can always be written."""
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Inbox:
    """Takes entries from ``P inbox`` and enqueues their jobs."""

    def __init__(self, client: redis.Redis, keys: Keys, producer: Producer, *, consumer: str,
                 charset: str = "utf-8", audit_maxlen: int = AUDIT_MAXLEN,
                 stale_after_ms: int = STALE_AFTER_MS,
                 max_deliveries: int = MAX_DELIVERIES) -> None:
        self._r = client
        self._keys = keys
        self._producer = producer
        self.consumer = consumer
        self._charset = charset
        self._audit_maxlen = audit_maxlen
        self._stale_after_ms = stale_after_ms
        self._max_deliveries = max_deliveries
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start, so no early entry is missed)."""
        try:
            self._r.xgroup_create(self._keys.inbox, INBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def poll_once(self, *, block_ms: int = BLOCK_MS) -> int:
        """Claim stale entries of others, handle this consumer's pending entries, then new ones.

        Returns the number of entries acknowledged.
        """
        if not self._group_ready:
            self.ensure_group()
        try:
            return self._poll(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream (and its group) was deleted: recreate them, read again next time
            log.warning("inbox %s had no consumer group; creating it", self._keys.inbox)
            self.ensure_group()
            return 0

    def _poll(self, block_ms: int) -> int:
        stream = self._keys.inbox
        # entries of dead consumers become this one's pending entries (attempts counted below)
        self._r.xautoclaim(stream, INBOX_GROUP, self.consumer, self._stale_after_ms,
                           start_id="0-0", count=READ_COUNT, justid=True)
        done = self._handle_pending()
        fresh = self._r.xreadgroup(INBOX_GROUP, self.consumer, {stream: ">"}, count=READ_COUNT,
                                   block=block_ms if not done else None)
        for _stream, entries in fresh or []:
            for raw_id, fields in entries:
                done += self._attempt(raw_id, fields, 1)
        return done

    def _handle_pending(self) -> int:
        """Try this consumer's pending entries again, each attempt counted in its delivery
        count before it starts (``XCLAIM ... RETRYCOUNT``, which also refreshes its idle time,
        so no other consumer takes over an entry this one is working on): an entry that kills
        or hangs its consumer, even one restarted under the same name, reaches
        :data:`MAX_DELIVERIES` and is ended unread."""
        stream = self._keys.inbox
        pending = self._r.xpending_range(stream, INBOX_GROUP, min="-", max="+",
                                         count=READ_COUNT, consumername=self.consumer)
        done = 0
        for item in pending or []:
            raw_id, attempt = item["message_id"], int(item["times_delivered"]) + 1
            self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, [raw_id], retrycount=attempt,
                           justid=True)
            found = self._r.xrange(stream, raw_id, raw_id)
            done += self._attempt(raw_id, found[0][1] if found else None, attempt)
        return done

    def _attempt(self, raw_id: Any, fields: Mapping[bytes, bytes] | None, attempt: int) -> int:
        try:
            return self._handle(raw_id, fields, deliveries=attempt)
        except TRANSIENT_ERRORS:
            # an outage is not the entry's fault: this attempt does not count towards the cap
            with contextlib.suppress(redis.RedisError):
                self._r.xclaim(self._keys.inbox, INBOX_GROUP, self.consumer, 0, [raw_id],
                               retrycount=attempt - 1, justid=True)
            raise

    def _handle(self, raw_id: Any, fields: Mapping[bytes, bytes] | None, *,
                deliveries: int) -> int:
        if fields is None:  # deleted while pending
            self._ack(raw_id)
            return 0
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if deliveries > self._max_deliveries:
            self._reject(job_id_for_entry(self._keys.inbox, entry_id), "",
                         f"delivered {deliveries} times without being taken (its consumers "
                         "died or hung on it); given up unread", code=POISON_CODE)
        else:
            self._take_or_reject(entry_id, fields)
        self._ack(raw_id)
        return 1

    def _take_or_reject(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        """Take one entry; any failure that is the entry's own ends it rejected, with why."""
        try:
            self.take(entry_id, fields)
        except TRANSIENT_ERRORS:
            raise  # Redis or the broker is down: the entry stays pending, retried
        except Exception as exc:  # a hostile entry must never stop the inbox
            log.error("inbox entry %s could not be taken (%s); rejected", entry_id,
                      type(exc).__name__)
            self._reject(job_id_for_entry(self._keys.inbox, entry_id), "",
                         f"the entry could not be read ({type(exc).__name__})")

    def take(self, entry_id: str, fields: Mapping[bytes, bytes]) -> str:
        """Enqueue the job of one entry (or record it rejected); returns its job id.

        Raises only on Redis or broker errors, which leave the entry pending for a retry.
        """
        job_id = job_id_for_entry(self._keys.inbox, entry_id)
        reference = ""
        try:
            params, reference = parse_entry(fields)
            errors = reference_errors(reference)
            try:
                params = validated_params(params, charset=self._charset)
            except ValidationError as exc:
                errors = exc.errors + errors
            if errors:
                raise ValidationError(errors)
        except ValidationError as exc:
            return self._reject(job_id, reference, str(exc))
        job = Job(job_id=job_id, params=params, reference=reference)
        try:
            return submit(self._producer, job)
        except ReferenceConflictError as exc:
            return self._reject(job_id, reference, str(exc), code=CONFLICT_CODE)

    def _reject(self, job_id: str, reference: str, reason: str, *,
                code: str = INVALID_CODE) -> str:
        """Record the entry's job as ``rejected`` (never sent) and bind its reference if valid
        and free; a reference bound to another job gets this job in ``P conflicts:<ref>``."""
        if reference and reference_errors(reference):
            reference = ""
        if reference and code != CONFLICT_CODE:
            bound, created = self._producer.resolve_reference(reference, job_id)
            if bound == job_id and not created:
                return job_id  # read again after a crash: already recorded
            if not created:
                code = CONFLICT_CODE
                reason = f"reference is already bound to job {bound}; {reason}"
        return self._producer.record_rejected(job_id, reference=reference, code=code,
                                              reason=storable(reason), source="inbox",
                                              audit_maxlen=self._audit_maxlen)

    def _ack(self, raw_id: Any) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self._keys.inbox, INBOX_GROUP, raw_id)
        pipe.xdel(self._keys.inbox, raw_id)
        pipe.execute()


class InboxThread(LoopThread):
    """Runs :meth:`Inbox.poll_once` (which blocks while the inbox is empty) until stopped."""

    def __init__(self, inbox: Inbox, *, retry_seconds: float = 2.0) -> None:
        super().__init__("unsign-inbox", inbox.poll_once, pause=0, retry=retry_seconds,
                         what="inbox read")
