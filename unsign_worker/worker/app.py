"""The Celery app and its tasks, built from ``celeryconfig.config_for`` and the settings object.

Tasks (all JSON, all acks-late):

- ``unsign_worker.unsign`` (queue ``unsign``): one job; see :mod:`unsign_worker.worker.processor`.
- ``unsign_worker.unsign_batch`` (queue ``unsign``): several campaign jobs in one message,
  processed one after the other by one pool slot; each job keeps its own state, dedup and
  audit, and a job that must be retried later is handed back as its own
  ``unsign_worker.unsign`` message.
- ``unsign_worker.unsign_jobs`` (queue ``unsign``): single jobs taken in bulk from the inbox
  streams (:mod:`unsign_worker.worker.inbox`), run as a batch; the message sends no task event
  of its own, each job is shown in Flower as its own ``unsign_worker.unsign`` task
  (:mod:`unsign_worker.worker.job_events`), and a job handed back is an ``unsign_worker.unsign``
  message whose task id is the job id.
- ``unsign_worker.run_hook`` (queue ``unsign.hooks``): the success hook's own retries.

``argsrepr``/``kwargsrepr`` are always masked (see :class:`UnsignTask`), so logs, events and
Flower never show personal data. ``celery -A unsign_worker.worker.app`` finds ``app``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import task_received, worker_init, worker_ready, worker_shutdown
from celery.worker import state as worker_state

import celeryconfig
from unsign_worker.producers.producer import Producer
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.settings import Settings
from unsign_worker.store.broker import is_amqp
from unsign_worker.store.job import (
    HOOK_TASK,
    UNSIGN_BATCH_TASK,
    UNSIGN_JOBS_TASK,
    UNSIGN_TASK,
    batch_repr,
    masked_repr,
)
from unsign_worker.store.keys import QUEUE
from unsign_worker.store.recovery import HeldMessages, job_ids_of
from unsign_worker.store.sentinel import connect
from unsign_worker.worker import kombu_fixes, monitoring, remote_control
from unsign_worker.worker.context import WorkerContext, build_context, build_signer
from unsign_worker.worker.gateway_watch import GatewayWatch, watch_consumer
from unsign_worker.worker.inbox import Inbox, InboxThread
from unsign_worker.worker.job_events import JobEvents
from unsign_worker.worker.processor import process_batch, process_job
from unsign_worker.worker.settlement import DecisionKind
from unsign_worker.worker.sweeper import Sweeper, SweeperThread
from unsign_worker.worker.task_outcome import (
    BatchNotDone,
    JobNotDone,
    JobRetry,
    check_batch,
    check_job,
    log_retry,
)

log = logging.getLogger(__name__)


class UnsignTask(Task):  # type: ignore[misc]
    """Base task: masked ``argsrepr``/``kwargsrepr`` on every send, retries included."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if kwargs and isinstance(kwargs.get("job"), dict):
            options["kwargsrepr"] = masked_repr(kwargs["job"])
            options.setdefault("argsrepr", "()")
        elif kwargs and isinstance(kwargs.get("jobs"), list):
            options["kwargsrepr"] = batch_repr(kwargs["jobs"])
            options.setdefault("argsrepr", "()")
        return super().apply_async(args, kwargs, **options)


class _Runtime:
    """Per-process state: the worker context, built at first use (after any fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx: WorkerContext | None = None
        self._lock = threading.Lock()
        self.sweeper: SweeperThread | None = None
        self.inbox: InboxThread | None = None
        self.gateway_watch: GatewayWatch | None = None
        self._held: HeldMessages | None = None

    def held(self) -> HeldMessages:
        """The message leases (see :mod:`unsign_worker.store.recovery`)."""
        if self._held is None:
            ctx = self.context()
            self._held = HeldMessages(ctx.redis, ctx.keys,
                                      lease_seconds=self.settings.lease_seconds)
        return self._held

    def release(self, message_id: str) -> None:
        """The message was handled; its lease goes (if Redis is away, the lease simply
        expires and the sweeper finds nothing left to do)."""
        try:
            self.held().release(message_id)
        except Exception as exc:
            log.warning("could not release the lease of message %s: %s", message_id, exc)

    def context(self) -> WorkerContext:
        if self._ctx is None:
            with self._lock:
                if self._ctx is None:
                    self._ctx = build_context(self.settings)
        return self._ctx


def _broker_client(settings: Settings) -> Any:
    """A client for the broker's Redis when it is not the store's (None: the same, or
    RabbitMQ)."""
    if is_amqp(settings.broker_url) or settings.broker_url == settings.redis_url:
        return None
    return connect(settings.broker_url, socket_connect_timeout=5, health_check_interval=30)


def create_app(settings: Settings | None = None) -> Celery:
    """Build the app for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    kombu_fixes.apply()
    monitoring.connect_log_signals()
    app = Celery("unsign_worker", set_as_current=False)
    app.conf.update(celeryconfig.config_for(settings))
    runtime = _Runtime(settings)

    # A job that did not end well raises an expected error (``throws``) once its outcome is
    # written: Flower lists it as failed, the worker logs no traceback, the message is acked.
    @app.task(name=UNSIGN_TASK, bind=True, base=UnsignTask, max_retries=None, shared=False,
              throws=(JobNotDone,))
    def unsign(self: Task, job: dict[str, Any]) -> dict[str, Any]:
        try:
            decision = process_job(runtime.context(), job)
        finally:
            runtime.release(self.request.id)
        if decision.kind is DecisionKind.RETRY:  # Celery's "Retry in N s" line names the cause
            raise self.retry(kwargs={"job": job}, countdown=decision.countdown,
                             max_retries=None, exc=JobRetry(decision.detail))
        return check_job(decision, job)

    @app.task(name=UNSIGN_BATCH_TASK, bind=True, base=UnsignTask, shared=False,
              throws=(BatchNotDone,))
    def unsign_batch(self: Task, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        # One after the other within the batch: the pool's concurrency stays the number of
        # requests in flight, a batch costs one broker message instead of one per job, and its
        # Redis writes and claims are pipelined ten jobs at a time.
        try:
            decisions = process_batch(runtime.context(), jobs)
        finally:
            runtime.release(self.request.id)
        for job, decision in zip(jobs, decisions, strict=True):
            if decision.kind is DecisionKind.RETRY:
                log_retry(decision)
                unsign.apply_async(kwargs={"job": job}, countdown=decision.countdown)
        return check_batch(decisions, jobs)

    @app.task(name=UNSIGN_JOBS_TASK, bind=True, base=UnsignTask, shared=False,
              send_events=False)
    def unsign_jobs(self: Task, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        events = JobEvents(app, hostname=self.request.hostname or "", batch_id=self.request.id,
                           messages=jobs)
        events.received()
        try:
            decisions = process_batch(runtime.context(), jobs, observer=events)
        finally:
            runtime.release(self.request.id)
            events.flush()
        outcomes: dict[str, int] = {}
        for job, decision in zip(jobs, decisions, strict=True):
            outcomes[decision.state] = outcomes.get(decision.state, 0) + 1
            if decision.kind is DecisionKind.RETRY:  # Flower's entry for the job carries on
                log_retry(decision)
                unsign.apply_async(kwargs={"job": job}, countdown=decision.countdown,
                                   task_id=decision.job_id)
        return {"jobs": len(jobs), "outcomes": outcomes}

    @app.task(name=HOOK_TASK, base=UnsignTask, shared=False)
    def run_hook(identity: str) -> dict[str, Any]:
        result = runtime.context().hooks.run(identity)
        return {"hook": result.status, "attempts": result.attempts}

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        ctx, consumer = runtime.context(), sender
        sweeper = Sweeper(ctx.redis, ctx.keys, lease_seconds=settings.lease_seconds,
                          probe_after_seconds=settings.breaker_probe_after_seconds,
                          publish_job=lambda job: unsign.apply_async(kwargs={"job": job}),
                          publish_hook=lambda identity: run_hook.apply_async(args=[identity]),
                          hostname=getattr(sender, "hostname", None),
                          held_ids=lambda: [r.id for r in list(worker_state.reserved_requests)],
                          broker=_broker_client(settings),
                          broker_is_redis=not is_amqp(settings.broker_url),
                          interval_seconds=settings.sweep_interval_seconds)
        runtime.sweeper = SweeperThread(sweeper)
        runtime.sweeper.start()
        # the inbox hands its batches over through an app of the same configuration that sends
        # no task-sent event: the batch's jobs, not the batch, are what Flower shows
        sender = Celery("unsign_worker_inbox", set_as_current=False)
        sender.conf.update(celeryconfig.config_for(settings), task_send_sent_event=False)
        inbox = Inbox(ctx.redis, ctx.keys, Producer(sender, ctx.redis, ctx.keys),
                      consumer=sweeper.hostname, charset=settings.input_charset,
                      audit_maxlen=settings.audit_maxlen)
        runtime.inbox = InboxThread(inbox)
        runtime.inbox.start()
        runtime.gateway_watch = watch_consumer(ctx, consumer, QUEUE)

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        if runtime.sweeper is not None:
            runtime.sweeper.stop()
        if runtime.inbox is not None:
            runtime.inbox.stop()
        if runtime.gateway_watch is not None:
            runtime.gateway_watch.stop()

    def on_init(sender: Any = None, **_: Any) -> None:
        try:  # any Celery worker of this app, however started, refuses what could not verify
            build_signer(runtime.settings)
        except ConfigError as exc:
            log.critical("cannot start the worker: %s", exc)
            raise SystemExit(1) from None  # not an Exception: Celery's signal dispatch lets it out
        off = remote_control.restrict(runtime.settings.remote_control)
        if off:
            log.info("remote control: read-only (%d commands turned off)", len(off))

    worker_init.connect(on_init, weak=False)

    def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
        # Lease every message as it arrives (prefetched or not), so that a SIGKILL leaves a
        # record the sweeper finds within one lease; a delayed retry has its job's own lease.
        if request is None or request.eta or getattr(sender, "app", app) is not app:
            return
        ids = job_ids_of(request.task_name, request.kwargs or {})
        if ids:
            try:
                runtime.held().record(request.id, ids)
            except Exception as exc:  # never refuse a message for its bookkeeping
                log.warning("could not lease message %s: %s", request.id, exc)

    task_received.connect(on_received, weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    return app


def _lazy_app() -> Celery:
    try:
        return create_app()
    except Exception as exc:  # the CLI reports configuration problems with context
        log.debug("app not built from the environment: %s", exc)
        return Celery("unsign_worker", set_as_current=False)


app = _lazy_app()
