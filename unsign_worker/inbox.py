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
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from unsign_worker.background import LoopThread
from unsign_worker.client import ReferenceConflictError, reference_errors, submit, validated_params
from unsign_worker.exceptions import FieldError, ValidationError
from unsign_worker.job import Job
from unsign_worker.keys import INBOX_GROUP, Keys
from unsign_worker.producer import Producer

log = logging.getLogger(__name__)

#: Entries read per call.
READ_COUNT = 100
#: How long one read blocks waiting for new entries, milliseconds.
BLOCK_MS = 1000
#: A pending entry idle this long belongs to a dead consumer and is claimed, milliseconds.
STALE_AFTER_MS = 30_000
#: Retention of the record of a rejected inbox job, seconds.
REJECTED_RETENTION_SECONDS = 30 * 86400
INVALID_CODE = "INVALID_JOB"
#: Approximate length kept in the audit stream when the worker does not say.
AUDIT_MAXLEN = 1_000_000


def job_id_for_entry(stream: str, entry_id: str) -> str:
    """A stable job id for an entry without reference: a second read maps to the same job."""
    return hashlib.sha256(f"{stream}\x1f{entry_id}".encode()).hexdigest()[:32]


def parse_entry(fields: Mapping[bytes, bytes]) -> tuple[dict[str, Any], str]:
    """``(params, reference)`` of one stream entry, not yet validated.

    Raises:
        ValidationError: the entry is not a JSON object of strings (field ``job``).
    """
    decoded = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
               for k, v in fields.items()}
    if "job" in decoded:
        try:
            data = json.loads(decoded["job"])
        except json.JSONDecodeError as exc:
            raise ValidationError([FieldError("job", "json", f"is not valid JSON ({exc.msg}, "
                                              f"column {exc.colno})")]) from None
        if not isinstance(data, dict):
            raise ValidationError([FieldError("job", "json_object", "must be a JSON object")])
    else:
        data = dict(decoded)
    reference = data.pop("reference", "") or ""
    if not isinstance(reference, str):
        raise ValidationError([FieldError("reference", "type", "must be a string")])
    return data, reference


class Inbox:
    """Takes entries from ``P inbox`` and enqueues their jobs."""

    def __init__(self, client: redis.Redis, keys: Keys, producer: Producer, *, consumer: str,
                 charset: str = "utf-8", audit_maxlen: int = AUDIT_MAXLEN,
                 stale_after_ms: int = STALE_AFTER_MS) -> None:
        self._r = client
        self._keys = keys
        self._producer = producer
        self.consumer = consumer
        self._charset = charset
        self._audit_maxlen = audit_maxlen
        self._stale_after_ms = stale_after_ms
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
        """Handle this consumer's pending entries, stale ones of others, then new ones.

        Returns the number of entries acknowledged.
        """
        if not self._group_ready:
            self.ensure_group()
        stream = self._keys.inbox
        done = 0
        pending = self._r.xreadgroup(INBOX_GROUP, self.consumer, {stream: "0"}, count=READ_COUNT)
        done += self._handle(pending)
        claimed = self._r.xautoclaim(stream, INBOX_GROUP, self.consumer, self._stale_after_ms,
                                     start_id="0-0", count=READ_COUNT)
        if claimed and claimed[1]:
            done += self._handle([[stream, claimed[1]]])
        fresh = self._r.xreadgroup(INBOX_GROUP, self.consumer, {stream: ">"}, count=READ_COUNT,
                                   block=block_ms if not done else None)
        done += self._handle(fresh)
        return done

    def _handle(self, response: Any) -> int:
        handled = 0
        for _stream, entries in response or []:
            for raw_id, fields in entries:
                if fields is None:  # deleted while pending
                    self._ack(raw_id)
                    continue
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                self.take(entry_id, fields)
                self._ack(raw_id)
                handled += 1
        return handled

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
            log.warning("inbox entry %s: %s", entry_id, exc)
            return exc.job_id

    def _reject(self, job_id: str, reference: str, reason: str) -> str:
        """Record the entry's job as ``rejected`` (never sent); bind its reference if valid."""
        if reference and reference_errors(reference):
            reference = ""
        if reference:
            job_id, created = self._producer.resolve_reference(reference, job_id)
            if not created:
                return job_id
        k, now = self._keys, time.time()
        minute = k.rate(int(now // 60))
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(k.job(job_id), mapping={
            "job_id": job_id, "state": "rejected", "code": INVALID_CODE, "reason": reason,
            "params": "{}", "campaign": "", "reference": reference, "attempts": 0,
            "created_at": repr(now), "updated_at": repr(now), "finished_at": repr(now),
            "source": "inbox"})
        pipe.expire(k.job(job_id), REJECTED_RETENTION_SECONDS)
        pipe.hincrby(k.counts, "rejected", 1)
        pipe.hincrby(minute, "rejected", 1)
        pipe.expire(minute, 3600)
        audit = {"time": now, "job_id": job_id, "outcome": "rejected", "code": INVALID_CODE,
                 "reason": reason, "reference": reference, "campaign": "", "source": "inbox"}
        pipe.xadd(k.audit, {"data": json.dumps(audit)}, maxlen=self._audit_maxlen,
                  approximate=True)
        pipe.execute()
        log.warning("inbox job %s rejected: %s", job_id, reason)
        return job_id

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
