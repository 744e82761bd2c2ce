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
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from celery import Celery

from unsign_worker.store.broker import amqp_config, is_amqp, redis_tls_options
from unsign_worker.store.job import UNSIGN_BATCH_TASK, UNSIGN_TASK, Job, batch_repr, masked_repr
from unsign_worker.store.keys import AUDIT_MAXLEN, QUEUE, Keys
from unsign_worker.store.sentinel import is_sentinel, kombu_broker

log = logging.getLogger(__name__)

#: Retention of a producer reference -> job id mapping.
REF_RETENTION_SECONDS = 30 * 86400
#: Retention of the record of a job rejected before it was sent, seconds.
REJECTED_RETENTION_SECONDS = 30 * 86400
#: A job that named a reference already bound to another job.
CONFLICT_CODE = "REFERENCE_CONFLICT"
#: A job still ``queued`` this long after it was enqueued is re-published by the sweeper: its
#: message may have been lost (the Redis broker can drop a message popped just as the
#: connection fails). Re-publishing is safe, a redundant copy is dropped by the claim.
QUEUED_GRACE_SECONDS = 3600.0


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
    """Writes job records and sends their messages, pipelined."""

    def __init__(self, app: Celery, client: redis.Redis, keys: Keys, *,
                 queued_grace_seconds: float = QUEUED_GRACE_SECONDS) -> None:
        self.app = app
        self.redis = client
        self.keys = keys
        self.queued_grace_seconds = queued_grace_seconds
        #: ``.kombu``: the kombu producer of :meth:`batched` in this thread, while it lasts
        self._batch = threading.local()

    def record_fields(self, job: Job) -> dict[str, Any]:
        return {"job_id": job.job_id, "state": "queued", "params": job.params_json(),
                "campaign": job.campaign, "reference": job.reference,
                "created_at": repr(job.enqueued_at), "attempts": 0}

    def resolve_reference(self, reference: str, job_id: str) -> tuple[str, bool]:
        """Bind ``reference`` to ``job_id`` unless it is bound already.

        Returns ``(job_id, created)``: the bound job's id, and whether this call bound it.
        """
        key = self.keys.ref(reference)
        if self.redis.set(key, job_id, nx=True, ex=REF_RETENTION_SECONDS):
            return job_id, True
        existing = self.redis.get(key)
        return (existing.decode() if existing else job_id), False

    def record_rejected(self, job_id: str, *, reference: str, code: str, reason: str,
                        source: str, audit_maxlen: int = AUDIT_MAXLEN) -> str:
        """Record ``job_id`` as ``rejected`` (never sent), counted and audited; a
        ``REFERENCE_CONFLICT`` is also listed in ``P conflicts:<reference>``, where the
        producer of the refused job finds it (``P ref:<reference>`` names the other job)."""
        k, now = self.keys, time.time()
        if self.redis.hget(k.job(job_id), "state") == b"rejected":
            return job_id  # read again after a crash: already recorded
        minute = k.rate(int(now // 60))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(k.job(job_id), mapping={
            "job_id": job_id, "state": "rejected", "code": code, "reason": reason,
            "params": "{}", "campaign": "", "reference": reference, "attempts": 0,
            "created_at": repr(now), "updated_at": repr(now), "finished_at": repr(now),
            "source": source})
        pipe.expire(k.job(job_id), REJECTED_RETENTION_SECONDS)
        if code == CONFLICT_CODE and reference:
            pipe.sadd(k.conflicts(reference), job_id)
            pipe.expire(k.conflicts(reference), REJECTED_RETENTION_SECONDS)
        pipe.hincrby(k.counts, "rejected", 1)
        pipe.hincrby(minute, "rejected", 1)
        pipe.expire(minute, 3600)
        audit = {"time": now, "job_id": job_id, "outcome": "rejected", "code": code,
                 "reason": reason, "reference": reference, "campaign": "", "source": source}
        pipe.xadd(k.audit, {"data": json.dumps(audit)}, maxlen=audit_maxlen, approximate=True)
        pipe.execute()
        log.warning("%s job %s rejected: %s", source, job_id, reason)
        return job_id

    def write_records(self, jobs: Sequence[Job], *, pipe: Any = None) -> None:
        own = pipe is None
        pipe = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for job in jobs:
            pipe.hset(self.keys.job(job.job_id), mapping=self.record_fields(job))
        pipe.zadd(self.keys.leases, {job.job_id: job.enqueued_at + self.queued_grace_seconds
                                     for job in jobs}, nx=True)
        if own:
            pipe.execute()

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
