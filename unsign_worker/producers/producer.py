"""Putting jobs in: the job record in Redis first, then the task message, by task name.

Needs only ``celery`` and ``redis`` (and the pure modules ``job``, ``keys``, ``params``): a
producer never imports the worker's code and never holds a key or secret.

Order matters for "nothing lost": the record (state ``queued``) is written before the message is
sent, and enqueueing a job whose record is still ``queued`` sends its message again, which is
safe (the worker drops a redundant copy), so an enqueue interrupted between the two steps can
simply be repeated.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from celery import Celery

from unsign_worker.store.broker import amqp_config, is_amqp, redis_tls_options
from unsign_worker.store.job import (
    UNSIGN_BATCH_TASK,
    UNSIGN_JOBS_TASK,
    UNSIGN_TASK,
    Job,
    batch_repr,
    masked_repr,
    new_job_id,
)
from unsign_worker.store.job_records import (
    CONFLICT_CODE,
    QUEUED_GRACE_SECONDS,
    REJECTED_RETENTION_SECONDS,
    JobRecords,
)
from unsign_worker.store.keys import AUDIT_MAXLEN, QUEUE, Keys
from unsign_worker.store.producer_registry import REFUSED_MAXLEN
from unsign_worker.store.sentinel import is_sentinel, kombu_broker

log = logging.getLogger(__name__)

#: Retention of a producer reference -> job id mapping.
REF_RETENTION_SECONDS = 30 * 86400

__all__ = ["AUDIT_MAXLEN", "CONFLICT_CODE", "QUEUED_GRACE_SECONDS", "REJECTED_RETENTION_SECONDS",
           "Producer", "producer_app"]


def producer_app(broker_url: str, key_prefix: str, *, visibility_timeout_seconds: int = 3600
                 ) -> Celery:
    """A send-only Celery app with the same broker layout as the workers."""
    transport: dict[str, Any] = {"global_keyprefix": key_prefix,
                                 "visibility_timeout": visibility_timeout_seconds}
    sentinel_tls = None
    if is_sentinel(broker_url):  # kombu's sentinel:// transport, master_name, TLS
        broker_url, sentinel_options, sentinel_tls = kombu_broker(broker_url)
        transport.update(sentinel_options)
    app = Celery("unsign_producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=transport,
        task_serializer="json", accept_content=["json"], task_send_sent_event=True,
        broker_connection_retry_on_startup=True, task_default_queue=QUEUE,
    )
    if is_amqp(broker_url):  # RabbitMQ: declare the queues exactly as the workers do
        app.conf.update(amqp_config())
    tls = redis_tls_options(broker_url)
    if tls is not None:  # rediss://: verify the certificate, as the workers do
        app.conf.broker_use_ssl = tls
    if sentinel_tls is not None:
        app.conf.broker_use_ssl = sentinel_tls
    return app


class Producer:
    """Writes job records (through :class:`~unsign_worker.store.job_records.JobRecords`) and
    sends their messages, pipelined."""

    def __init__(self, app: Celery, client: redis.Redis, keys: Keys, *,
                 queued_grace_seconds: float = QUEUED_GRACE_SECONDS) -> None:
        self.app = app
        self.redis = client
        self.keys = keys
        self.queued_grace_seconds = queued_grace_seconds
        self.records = JobRecords(client, keys, queued_grace_seconds=queued_grace_seconds)
        #: ``.kombu``: the kombu producer of :meth:`batched` in this thread, while it lasts
        self._batch = threading.local()

    def resolve_reference(self, reference: str, job_id: str, producer: str = ""
                          ) -> tuple[str, bool]:
        """Bind ``reference`` (of ``producer``: references are namespaced per producer) to
        ``job_id`` unless it is bound already.

        Returns ``(job_id, created)``: the bound job's id, and whether this call bound it.
        """
        key = self.keys.reference(producer, reference)
        if self.redis.set(key, job_id, nx=True, ex=REF_RETENTION_SECONDS):
            return job_id, True
        existing = self.redis.get(key)
        return (existing.decode() if existing else job_id), False

    def bind_entry(self, producer: str, entry_id: str) -> tuple[str, bool]:
        """The job id of entry ``entry_id`` of ``producer``'s stream: a new random one, bound
        to the entry with ``SET NX`` (one round trip), or the one bound by an earlier read, so
        an entry read twice (a crash while it was taken) never makes a second job. Returns
        ``(job_id, created)``: whether this call bound it."""
        candidate = new_job_id()
        earlier = self.redis.set(self.keys.producer_entry(producer, entry_id), candidate,
                                 nx=True, get=True, ex=REF_RETENTION_SECONDS)
        return (earlier.decode(), False) if earlier else (candidate, True)

    def refuse_entry(self, producer: str, entry_id: str, reason: str, detail: str) -> None:
        """List an entry taken without a job in ``producer``'s refused entries, counted."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.producer_refused(producer),
                  {"entry": entry_id, "reason": reason, "detail": detail},
                  maxlen=REFUSED_MAXLEN, approximate=True)
        pipe.hincrby(self.keys.producers_rejected, f"{producer}:{reason}", 1)
        pipe.execute()

    def bind_entries(self, producer: str, entry_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """:meth:`bind_entry` for many entries in one round trip: entry id -> (job id,
        whether this call bound it)."""
        pipe = self.redis.pipeline(transaction=False)
        candidates = [new_job_id() for _ in entry_ids]
        for entry_id, candidate in zip(entry_ids, candidates, strict=True):
            pipe.set(self.keys.producer_entry(producer, entry_id), candidate, nx=True, get=True,
                     ex=REF_RETENTION_SECONDS)
        return {entry_id: ((earlier.decode(), False) if earlier else (candidate, True))
                for entry_id, candidate, earlier in zip(entry_ids, candidates, pipe.execute(),
                                                        strict=True)}

    def rebind_entry(self, producer: str, entry_id: str, job_id: str) -> None:
        """Point an entry at the job its reference named (the entry repeats that job)."""
        self.redis.set(self.keys.producer_entry(producer, entry_id), job_id,
                       ex=REF_RETENTION_SECONDS)

    def record_rejected(self, job_id: str, *, reference: str, code: str, reason: str,
                        source: str, audit_maxlen: int = AUDIT_MAXLEN,
                        producer: str = "") -> str:
        """Record ``job_id`` as ``rejected`` (never sent), counted and audited; a
        ``REFERENCE_CONFLICT`` is also listed in ``P conflicts:<reference>``, where the
        producer of the refused job finds it (``P ref:<reference>`` names the other job)."""
        if self.records.record_rejected(job_id, reference=reference, code=code, reason=reason,
                                        source=source, audit_maxlen=audit_maxlen,
                                        producer=producer):
            log.warning("%s job %s%s rejected: %s", source, job_id,
                        f" of producer {producer}" if producer else "", reason)
        return job_id

    def write_records(self, jobs: Sequence[Job], *, pipe: Any = None) -> None:
        """Record ``jobs`` as ``queued`` (:meth:`JobRecords.write_queued`)."""
        self.records.write_queued(jobs, pipe=pipe)

    def admit(self, jobs: Sequence[Job], *, new: bool = True) -> None:
        """Hand ``jobs`` to the workers through ``P intake``: with ``new``, their records are
        written in the same transaction (MULTI), so no worker can read an entry whose record
        is missing, and an entry is never lost once the record is there."""
        pipe = self.redis.pipeline(transaction=True)
        if new:
            self.write_records(jobs, pipe=pipe)
        for job in jobs:
            pipe.xadd(self.keys.intake, {"job": json.dumps(job.to_message())})
        pipe.execute()

    def send_jobs(self, jobs: Sequence[Job]) -> None:
        """Single jobs taken in bulk (the inbox streams): one message, each job shown in Flower
        as its own task."""
        messages = [j.to_message() for j in jobs]
        self.app.send_task(UNSIGN_JOBS_TASK, kwargs={"jobs": messages}, queue=QUEUE,
                           kwargsrepr=batch_repr(messages), argsrepr="()",
                           producer=getattr(self._batch, "kombu", None))

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Messages sent meanwhile (and their ``task-sent`` events) reach the broker together
        when the block ends, in one pipeline (kombu's ``Producer.batch``, on Redis from kombu
        5.7), instead of two round trips each; elsewhere they go one by one, as outside.
        Raised out of the block, nothing unsent is sent. Only this thread's sends are batched.

        Raises:
            kombu.exceptions.BatchPublishError: the pipeline failed; which messages went is
                not known (a job sent twice is dropped by the worker).
        """
        with self.app.producer_or_acquire() as producer:
            batch = getattr(producer, "batch", None)
            self._batch.kombu = producer
            try:
                if batch is None:
                    yield
                else:
                    with batch():
                        yield
            finally:
                self._batch.kombu = None

    def send(self, job: Job, *, countdown: float | None = None) -> None:
        message = job.to_message()
        self.app.send_task(UNSIGN_TASK, kwargs={"job": message}, queue=QUEUE,
                           kwargsrepr=masked_repr(message), argsrepr="()", countdown=countdown,
                           producer=getattr(self._batch, "kombu", None))

    def send_batch(self, jobs: Sequence[Job]) -> None:
        messages = [j.to_message() for j in jobs]
        self.app.send_task(UNSIGN_BATCH_TASK, kwargs={"jobs": messages}, queue=QUEUE,
                           kwargsrepr=batch_repr(messages), argsrepr="()",
                           producer=getattr(self._batch, "kombu", None))

    def enqueue(self, jobs: Iterable[Job], *, batch_size: int = 0) -> int:
        """Record and send ``jobs``; with ``batch_size`` > 1 several jobs share a message.

        Returns the number of jobs sent.
        """
        pending = list(jobs)
        if not pending:
            return 0
        self.write_records(pending)
        if batch_size > 1:
            for start in range(0, len(pending), batch_size):
                self.send_batch(pending[start:start + batch_size])
        else:
            for job in pending:
                self.send(job)
        return len(pending)
