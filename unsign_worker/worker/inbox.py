"""The inbox: single jobs taken in bulk from two Redis streams.

- ``P intake``: the jobs of ``UnsignClient.enqueue``, whose records were written in the same
  transaction as their entries (``{job: <message JSON>}``; ``producers/admission.py``).
- ``P inbox``: jobs from any language. An application adds one entry per job with a plain Redis
  client; the job is one JSON object of the business parameters plus an optional
  ``reference``, in the field ``job``::

    XADD unsign:inbox * job '{"customer_code":"C00000000042","reference":"order-42"}'

  (the fields may also be given flat: ``XADD unsign:inbox * customer_code C00000000042
  reference order-42``). The job's status is then found through its reference
  (``GET unsign:ref:order-42`` -> job id, ``HGETALL unsign:job:<id>``). Its entry is parsed,
  validated and its record written by :mod:`unsign_worker.worker.entry_taker` (the fields'
  rules: :mod:`unsign_worker.worker.inbox_entry`); this module reads and acknowledges the
  streams.

Each worker process runs an :class:`InboxThread`: one blocking ``XREADGROUP`` over both streams
(consumer ``<hostname>``, group ``unsign-workers``) reads up to :data:`READ_COUNT` new entries of
each: a job alone is picked up at once, a backlog a hundred at a time. Their jobs go to the pool
as ``unsign_worker.unsign_jobs`` messages of up to :data:`BATCH_SIZE` jobs (claims and outcomes
pipelined; Flower shows each job as its own task); only then are the entries acknowledged and
deleted, so a crash loses nothing: pending entries are tried again by this consumer when it
starts again, or claimed by another after :data:`STALE_AFTER_MS`. An entry read twice maps to
the same job (its reference, or else its entry id, names it); a job handed over twice is
dropped by its claim. An invalid entry is not sent: its job is recorded ``rejected`` with code
``INVALID_JOB`` and the reason.

Entries come from anyone who may write the stream, so none may stop the inbox: any failure of
one entry that is not a Redis or broker outage rejects and acknowledges that entry with its
reason; an entry whose consumers died or hung on it more than :data:`MAX_DELIVERIES` times is
ended unread (``POISON_ENTRY``); an entry is read only up to ``MAX_ENTRY_BYTES``. A valid
entry whose reference is bound to a job with other parameters (or an invalid entry whose
reference is bound to another job) becomes its own job, rejected ``REFERENCE_CONFLICT`` and
listed in ``P conflicts:<reference>``: its producer finds it there, never the other job's
outcome.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from unsign_worker.producers.producer import AUDIT_MAXLEN, Producer
from unsign_worker.store.job import Job
from unsign_worker.store.keys import INBOX_GROUP, Keys
from unsign_worker.worker.background import LoopThread
from unsign_worker.worker.entry_taker import POISON_CODE, TRANSIENT_ERRORS, EntryTaker
from unsign_worker.worker.inbox_entry import (
    INVALID_CODE,
    MAX_ENTRY_BYTES,
    MAX_ENTRY_FIELDS,
    job_id_for_entry,
    parse_entry,
    storable,
)

__all__ = ["INVALID_CODE", "MAX_ENTRY_BYTES", "MAX_ENTRY_FIELDS", "POISON_CODE", "Inbox",
           "InboxThread", "job_id_for_entry", "parse_entry", "storable"]  # tests import these

log = logging.getLogger(__name__)

#: New entries read per call, per stream.
READ_COUNT = 100
#: Most jobs per ``unsign_worker.unsign_jobs`` message: a batch runs its jobs one after the
#: other in one pool slot, so a backlog is spread over the slots in batches of this size.
BATCH_SIZE = 20
#: How long one read blocks waiting for new entries, milliseconds.
BLOCK_MS = 1000
#: A pending entry idle this long belongs to a dead consumer and is claimed, milliseconds.
STALE_AFTER_MS = 30_000
#: An entry delivered more often than this (claimed from dead consumers) is ended unread.
MAX_DELIVERIES = 5


class Inbox:
    """Takes entries from ``P inbox`` and ``P intake`` and hands their jobs to the pool."""

    def __init__(self, client: redis.Redis, keys: Keys, producer: Producer, *, consumer: str,
                 charset: str = "utf-8", audit_maxlen: int = AUDIT_MAXLEN,
                 stale_after_ms: int = STALE_AFTER_MS, max_deliveries: int = MAX_DELIVERIES,
                 batch_size: int = BATCH_SIZE,
                 hand_over: Callable[[Sequence[Job]], None] | None = None) -> None:
        """``hand_over`` sends one batch of jobs to the pool (default: an
        ``unsign_worker.unsign_jobs`` message through ``producer``)."""
        self._r = client
        self._keys = keys
        self.consumer = consumer
        self._stale_after_ms = stale_after_ms
        self._batch_size = max(1, batch_size)
        self._hand_over = hand_over or producer.send_jobs
        self._streams = (keys.inbox, keys.intake)
        self._taker = EntryTaker(keys, producer, charset=charset, audit_maxlen=audit_maxlen,
                                 max_deliveries=max_deliveries)
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the consumer groups (from the streams' start, so no early entry is missed)."""
        for stream in self._streams:
            try:
                self._r.xgroup_create(stream, INBOX_GROUP, id="0", mkstream=True)
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
            # a stream (and its group) was deleted: recreate them, read again next time
            log.warning("inbox %s had no consumer group; creating it", self._keys.inbox)
            self.ensure_group()
            return 0

    def _poll(self, block_ms: int) -> int:
        # entries of dead consumers become this one's pending entries (attempts counted below)
        pipe = self._r.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xautoclaim(stream, INBOX_GROUP, self.consumer, self._stale_after_ms,
                            start_id="0-0", count=READ_COUNT, justid=True)
        for stream in self._streams:
            pipe.xpending_range(stream, INBOX_GROUP, min="-", max="+", count=READ_COUNT,
                                consumername=self.consumer)
        pending = pipe.execute()[len(self._streams):]
        done = sum(self._handle_pending(stream, items)
                   for stream, items in zip(self._streams, pending, strict=True))
        fresh = self._r.xreadgroup(INBOX_GROUP, self.consumer, dict.fromkeys(self._streams, ">"),
                                   count=READ_COUNT, block=block_ms if not done else None)
        read: dict[str, list[Any]] = {}
        jobs: list[Job] = []
        try:
            for raw_stream, entries in fresh or []:
                stream = raw_stream.decode() if isinstance(raw_stream, bytes) else raw_stream
                read.setdefault(stream, []).extend(raw_id for raw_id, _ in entries)
                if stream == self._keys.inbox:
                    self._taker.record_fresh(entries)
                for raw_id, fields in entries:
                    job = self._attempt(stream, raw_id, fields, 1)
                    if job is not None:
                        jobs.append(job)
            self._send(jobs)
        except TRANSIENT_ERRORS:
            # an outage is not the entries' fault: these reads do not count towards the cap
            with contextlib.suppress(redis.RedisError):
                for stream, ids in read.items():
                    self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, ids, retrycount=0,
                                   justid=True)
            raise
        finally:
            self._taker.forget()
        if read:
            self._ack(read)
        return done + sum(len(ids) for ids in read.values())

    def _send(self, jobs: Sequence[Job]) -> None:
        for start in range(0, len(jobs), self._batch_size):
            self._hand_over(jobs[start:start + self._batch_size])

    def _handle_pending(self, stream: str, pending: list[dict[str, Any]]) -> int:
        """Try this consumer's pending entries again, one at a time, each attempt counted in
        its delivery count before it starts (``XCLAIM ... RETRYCOUNT``, which also refreshes
        its idle time, so no other consumer takes over an entry this one is working on): an
        entry that kills or hangs its consumer, even one restarted under the same name, reaches
        :data:`MAX_DELIVERIES` and is ended unread; the entries before it are acknowledged one
        by one."""
        done = 0
        for item in pending or []:
            raw_id, attempt = item["message_id"], int(item["times_delivered"]) + 1
            self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, [raw_id], retrycount=attempt,
                           justid=True)
            found = self._r.xrange(stream, raw_id, raw_id)
            job = self._attempt(stream, raw_id, found[0][1] if found else None, attempt)
            if job is not None:
                self._send([job])
            self._ack({stream: [raw_id]})
            done += 1 if found else 0
        return done

    def _attempt(self, stream: str, raw_id: Any, fields: Mapping[bytes, bytes] | None,
                 attempt: int) -> Job | None:
        try:
            return self._taker.handle(stream, raw_id, fields, deliveries=attempt)
        except TRANSIENT_ERRORS:
            # an outage is not the entry's fault: this attempt does not count towards the cap
            with contextlib.suppress(redis.RedisError):
                self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, [raw_id],
                               retrycount=attempt - 1, justid=True)
            raise

    def take(self, entry_id: str, fields: Mapping[bytes, bytes]) -> str:
        """Enqueue the job of one entry of ``P inbox`` (or record it rejected); returns its id.

        Raises only on Redis or broker errors, which leave the entry pending for a retry.
        """
        job_id, job = self._taker.admit(entry_id, fields)
        if job is not None:
            self._send([job])
        return job_id

    def _ack(self, read: Mapping[str, Sequence[Any]]) -> None:
        pipe = self._r.pipeline(transaction=True)
        for stream, ids in read.items():
            pipe.xack(stream, INBOX_GROUP, *ids)
            pipe.xdel(stream, *ids)
        pipe.execute()


class InboxThread(LoopThread):
    """Runs :meth:`Inbox.poll_once` (which blocks while the inbox is empty) until stopped."""

    def __init__(self, inbox: Inbox, *, retry_seconds: float = 2.0) -> None:
        super().__init__("unsign-inbox", inbox.poll_once, pause=0, retry=retry_seconds,
                         what="inbox read")
