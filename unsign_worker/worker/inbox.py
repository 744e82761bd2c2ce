"""The inbox: single jobs taken in bulk from Redis streams.

- ``P inbox:<name>``: the jobs of producer ``<name>``, one stream per producing application, in
  any language (the producers the workers read are listed in ``P producers``: ``unsign-worker
  producer add``). An application adds one entry per job, as its own Redis user, which may
  write that stream only; the job is one JSON object of the business parameters plus an
  optional ``reference``, in the field ``job``::

    XADD unsign:inbox:crm * job '{"customer_code":"C00000000042","reference":"order-42"}'

  (the fields may also be given flat: ``XADD unsign:inbox:crm * customer_code C00000000042
  reference order-42``). The job's status is then read from the producer's own keys, never its
  parameters: ``GET unsign:producer:crm:entry:<entry id>`` or ``GET
  unsign:producer:crm:ref:order-42`` -> job id, ``HGETALL unsign:producer:crm:job:<id>``
  (:class:`~unsign_worker.producers.client.UnsignClient` does all this for Python). Its entry
  is parsed, validated and its record written by :mod:`unsign_worker.worker.entry_taker`.
- ``P intake``: the jobs of ``unsign-worker enqueue`` (the operator), whose records were
  written in the same transaction as their entries (``producers/admission.py``).

Each worker process runs an :class:`InboxThread`. One read (:class:`ProducerStreams`, a script
run inside Redis, plus ``XREADGROUP`` on ``P intake``; consumer ``<hostname>``, group
``unsign-workers``) takes up to :data:`READ_COUNT` new entries of each stream; an entry larger
than its producer's limit, or read while its producer's stream holds more than its cap of
pending entries, is refused inside Redis and never reaches the worker (listed in
``P producer:<name>:refused``). While every stream is empty the inbox looks again every
:data:`IDLE_POLL_SECONDS` (a script cannot block). The jobs go to the pool as
``unsign_worker.unsign_jobs`` messages of up to :data:`BATCH_SIZE` jobs (claims and outcomes
pipelined; Flower shows each job as its own task); only then are the entries acknowledged and
deleted, so a crash loses nothing: pending entries are tried again by this consumer when it
starts again, or claimed by another after :data:`STALE_AFTER_MS`. An entry read twice maps to
the same job (its entry's binding, or its reference, names it); a job handed over twice is
dropped by its claim. An invalid entry is not sent: its job is recorded ``rejected`` with code
``INVALID_JOB`` and the reason.

Entries come from applications, so none may stop the inbox: any failure of one entry that is
not a Redis or broker outage rejects and acknowledges that entry with its reason; an entry
whose consumers died or hung on it more than :data:`MAX_DELIVERIES` times is ended unread
(``POISON_ENTRY``). A valid entry whose reference is bound to a job with other parameters (or
an invalid entry whose reference is bound to another job) becomes its own job, rejected
``REFERENCE_CONFLICT`` and listed in its producer's conflicts of that reference.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from unsign_worker.producers.producer import AUDIT_MAXLEN, Producer
from unsign_worker.store.job import Job
from unsign_worker.store.keys import INBOX_GROUP, Keys
from unsign_worker.store.producer_registry import ProducerRegistry, ProducerSettings
from unsign_worker.store.producer_streams import ProducerStreams, Read
from unsign_worker.worker.background import LoopThread
from unsign_worker.worker.entry_taker import POISON_CODE, TRANSIENT_ERRORS, EntryTaker
from unsign_worker.worker.inbox_entry import (
    INVALID_CODE,
    MAX_ENTRY_BYTES,
    MAX_ENTRY_FIELDS,
    parse_entry,
    storable,
)

__all__ = ["INVALID_CODE", "MAX_ENTRY_BYTES", "MAX_ENTRY_FIELDS", "POISON_CODE", "Inbox",
           "InboxThread", "parse_entry", "storable"]  # tests import these

log = logging.getLogger(__name__)

#: New entries read per call, per stream.
READ_COUNT = 100
#: Most jobs per ``unsign_worker.unsign_jobs`` message: a batch runs its jobs one after the
#: other in one pool slot, so a backlog is spread over the slots in batches of this size.
BATCH_SIZE = 20
#: How long one poll waits for new entries, milliseconds.
BLOCK_MS = 1000
#: While the streams are empty, the inbox looks again after this many seconds.
IDLE_POLL_SECONDS = 0.03
#: Pending entries (of this consumer, or stale ones of dead consumers) are looked for at most
#: this often, seconds: they only come from a crash or an outage.
PENDING_CHECK_SECONDS = 1.0
#: The list of producers is read again after this many seconds.
PRODUCERS_REFRESH_SECONDS = 2.0
#: A pending entry idle this long belongs to a dead consumer and is claimed, milliseconds.
STALE_AFTER_MS = 30_000
#: An entry delivered more often than this (claimed from dead consumers) is ended unread.
MAX_DELIVERIES = 5


class Inbox:
    """Takes entries from the producers' streams and ``P intake``; hands their jobs to the
    pool."""

    def __init__(self, client: redis.Redis, keys: Keys, producer: Producer, *, consumer: str,
                 charset: str = "utf-8", audit_maxlen: int = AUDIT_MAXLEN,
                 stale_after_ms: int = STALE_AFTER_MS, max_deliveries: int = MAX_DELIVERIES,
                 batch_size: int = BATCH_SIZE, idle_poll_seconds: float = IDLE_POLL_SECONDS,
                 hand_over: Callable[[Sequence[Job]], None] | None = None) -> None:
        """``hand_over`` sends one batch of jobs to the pool (default: an
        ``unsign_worker.unsign_jobs`` message through ``producer``)."""
        self._r = client
        self._keys = keys
        self.consumer = consumer
        self._stale_after_ms = stale_after_ms
        self._batch_size = max(1, batch_size)
        self._idle_poll = idle_poll_seconds
        self._hand_over = hand_over or producer.send_jobs
        self._registry = ProducerRegistry(client, keys)
        self._streams_reader = ProducerStreams(client, keys)
        self._taker = EntryTaker(producer, charset=charset, audit_maxlen=audit_maxlen,
                                 max_deliveries=max_deliveries)
        self._producers: list[ProducerSettings] = []
        #: stream key -> producer name ("" for P intake)
        self._names: dict[str, str] = {}
        self._grouped: set[str] = set()
        self._refreshed_at = float("-inf")
        self._pending_checked_at = float("-inf")

    @property
    def streams(self) -> list[str]:
        """The streams read: ``P intake``, then each producer's."""
        return list(self._names)

    def refresh(self) -> None:
        """Read the list of producers again and create the consumer groups of new streams
        (from the streams' start, so no early entry is missed)."""
        self._producers = list(self._registry.all().values())
        self._names = {self._keys.intake: ""}
        self._names.update({self._keys.inbox(p.name): p.name for p in self._producers})
        for stream in self._names:
            if stream not in self._grouped:
                self._create_group(stream)
        self._refreshed_at = time.monotonic()

    ensure_group = refresh

    def _create_group(self, stream: str) -> None:
        try:
            self._r.xgroup_create(stream, INBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped.add(stream)

    def poll_once(self, *, block_ms: int = BLOCK_MS) -> int:
        """Claim stale entries of others, handle this consumer's pending entries, then new ones;
        while there are none, look again every :data:`IDLE_POLL_SECONDS` for ``block_ms``.

        Returns the number of entries acknowledged.
        """
        deadline = time.monotonic() + block_ms / 1000
        while True:
            if time.monotonic() - self._refreshed_at >= PRODUCERS_REFRESH_SECONDS:
                self.refresh()
            try:
                done = self._poll()
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # a stream (and its group) was deleted: recreate them, read again next time
                log.warning("an inbox stream had no consumer group; creating them")
                self._grouped.clear()
                self.refresh()
                return 0
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(self._idle_poll, max(0.0, deadline - time.monotonic())))

    def _poll(self) -> int:
        done = 0
        if time.monotonic() - self._pending_checked_at >= PENDING_CHECK_SECONDS:
            done = self._poll_pending()
            self._pending_checked_at = time.monotonic()
        return done + self._poll_new()

    def _poll_pending(self) -> int:
        streams = self.streams
        # entries of dead consumers become this one's pending entries (attempts counted below)
        pipe = self._r.pipeline(transaction=False)
        for stream in streams:
            pipe.xautoclaim(stream, INBOX_GROUP, self.consumer, self._stale_after_ms,
                            start_id="0-0", count=READ_COUNT, justid=True)
        for stream in streams:
            pipe.xpending_range(stream, INBOX_GROUP, min="-", max="+", count=READ_COUNT,
                                consumername=self.consumer)
        pending = pipe.execute()[len(streams):]
        return sum(self._handle_pending(stream, items)
                   for stream, items in zip(streams, pending, strict=True))

    def _poll_new(self) -> int:
        pipe = self._r.pipeline(transaction=False)
        pipe.xreadgroup(INBOX_GROUP, self.consumer, {self._keys.intake: ">"}, count=READ_COUNT)
        self._streams_reader.read(self._producers, consumer=self.consumer, count=READ_COUNT,
                                  pipe=pipe)
        intake, raw = pipe.execute()
        fresh = ProducerStreams.parse(self._producers, raw)
        self._log_refused(fresh)
        read: dict[str, list[str]] = {}
        jobs: list[Job] = []
        try:
            for _, entries in intake or []:
                ids = [_text(raw_id) for raw_id, _ in entries]
                read[self._keys.intake] = ids
                for entry_id, (_, fields) in zip(ids, entries, strict=True):
                    job = self._attempt(self._keys.intake, entry_id, fields, 1)
                    if job is not None:
                        jobs.append(job)
            by_producer: dict[str, list[tuple[str, Mapping[bytes, bytes]]]] = {}
            for name, entry_id, fields in fresh.accepted:
                by_producer.setdefault(name, []).append((entry_id, fields))
            for name, entries in by_producer.items():
                read[self._keys.inbox(name)] = [entry_id for entry_id, _ in entries]
                jobs.extend(j for j in self._taker.take_fresh(name, entries) if j is not None)
            # entries repeating one job (its reference) in one read: handed over once
            self._send(list({job.job_id: job for job in jobs}.values()))
        except TRANSIENT_ERRORS:
            # an outage is not the entries' fault: these reads do not count towards the cap
            with contextlib.suppress(redis.RedisError):
                for stream, ids in read.items():
                    self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, ids, retrycount=0,
                                   justid=True)
            raise
        if read:
            self._ack(read)
        return sum(len(ids) for ids in read.values()) + len(fresh.refused)

    def _log_refused(self, fresh: Read) -> None:
        counted: dict[tuple[str, str], list[str]] = {}
        for refusal in fresh.refused:
            counted.setdefault((refusal.producer, refusal.reason), []).append(refusal.entry_id)
        for (name, reason), ids in counted.items():
            log.warning("producer %s: %d entr%s refused unread (%s), first %s; listed in %s",
                        name, len(ids), "y" if len(ids) == 1 else "ies", reason, ids[0],
                        self._keys.producer_refused(name))

    def _send(self, jobs: Sequence[Job]) -> None:
        for start in range(0, len(jobs), self._batch_size):
            self._hand_over(jobs[start:start + self._batch_size])

    def _handle_pending(self, stream: str, pending: list[dict[str, Any]]) -> int:
        """Try this consumer's pending entries again, one at a time, each attempt counted in
        its delivery count before it starts (``XCLAIM ... RETRYCOUNT``, which also refreshes
        its idle time, so no other consumer takes over an entry this one is working on): an
        entry that kills or hangs its consumer, even one restarted under the same name, reaches
        :data:`MAX_DELIVERIES` and is ended unread; the entries before it are acknowledged one
        by one. (Only entries within their producer's limits are ever delivered: the others
        are refused inside Redis.)"""
        done = 0
        for item in pending or []:
            entry_id, attempt = _text(item["message_id"]), int(item["times_delivered"]) + 1
            self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, [entry_id],
                           retrycount=attempt, justid=True)
            found = self._r.xrange(stream, entry_id, entry_id)
            job = self._attempt(stream, entry_id, found[0][1] if found else None, attempt)
            if job is not None:
                self._send([job])
            self._ack({stream: [entry_id]})
            done += 1 if found else 0
        return done

    def _attempt(self, stream: str, entry_id: str, fields: Mapping[bytes, bytes] | None,
                 attempt: int) -> Job | None:
        try:
            return self._taker.handle(self._names.get(stream, ""), entry_id, fields,
                                      deliveries=attempt)
        except TRANSIENT_ERRORS:
            # an outage is not the entry's fault: this attempt does not count towards the cap
            with contextlib.suppress(redis.RedisError):
                self._r.xclaim(stream, INBOX_GROUP, self.consumer, 0, [entry_id],
                               retrycount=attempt - 1, justid=True)
            raise

    def take(self, name: str, entry_id: str, fields: Mapping[bytes, bytes]) -> str:
        """Enqueue the job of one entry of producer ``name``'s stream (or record it
        rejected); returns its id.

        Raises only on Redis or broker errors, which leave the entry pending for a retry.
        """
        job_id, job = self._taker.admit(name, entry_id, fields)
        if job is not None:
            self._send([job])
        return job_id

    def _ack(self, read: Mapping[str, Sequence[str]]) -> None:
        pipe = self._r.pipeline(transaction=True)
        for stream, ids in read.items():
            pipe.xack(stream, INBOX_GROUP, *ids)
            pipe.xdel(stream, *ids)
        pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class InboxThread(LoopThread):
    """Runs :meth:`Inbox.poll_once` (which waits while the inbox is empty) until stopped."""

    def __init__(self, inbox: Inbox, *, retry_seconds: float = 2.0) -> None:
        super().__init__("unsign-inbox", inbox.poll_once, pause=0, retry=retry_seconds,
                         what="inbox read")
