"""Flower's view of single jobs run in bulk: each job of an ``unsign_worker.unsign_jobs`` message
is shown as its own ``unsign_worker.unsign`` task, as if it had come in its own message.

The batch task sends no event of its own (``send_events=False``). For each of its jobs this
module sends the events Celery sends for a single-job task, with ``uuid`` the job id, the
masked arguments, and the batch's task id as parent and root: ``task-received`` when the batch
starts, ``task-started`` when its claim is made, then ``task-succeeded`` (the result Celery
would show), ``task-failed`` (a job that did not end well raises :class:`JobNotDone` in a
single task: the same text here) or ``task-retried`` (the job is handed back as its own
``unsign_worker.unsign`` message whose task id is the job id, so Flower's entry carries on). A
copy of a job dropped by its claim (redelivered, stale, forged) ends with no event: the job's
entry is the one of the delivery that owns it.

Events are grouped: one message (a list of events, routing key ``task.multi``) per step of a
batch, through Celery's ``EventDispatcher`` with ``buffer_group=['task']``; Celery's
``EventReceiver``, which Flower uses, takes a list body event by event. An event that cannot be
sent (broker away) is logged and dropped: it never fails a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from unsign_worker.store.job import JOB_ID_RE, UNSIGN_TASK, masked_repr
from unsign_worker.worker.settlement import Decision, DecisionKind
from unsign_worker.worker.task_outcome import JobNotDone, describe, is_failure

log = logging.getLogger(__name__)


class JobEvents:
    """The per-job task events of one batch message."""

    def __init__(self, app: Celery, *, hostname: str, batch_id: str,
                 messages: Sequence[Mapping[str, Any]]) -> None:
        self._app = app
        self._hostname = hostname
        self._batch_id = batch_id
        self._messages = messages
        self._started: dict[int, float] = {}
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self.enabled = bool(app.conf.worker_send_task_events)

    def _job_id(self, index: int) -> str:
        message = self._messages[index]
        return str(message.get("job_id", "")) if isinstance(message, Mapping) else ""

    def received(self) -> None:
        for index, message in enumerate(self._messages):
            if not JOB_ID_RE.fullmatch(self._job_id(index)):
                continue  # a malformed message: dropped by the processor, nothing to show
            self._queue.append(("task-received", {
                "uuid": self._job_id(index), "name": UNSIGN_TASK, "args": "()",
                "kwargs": masked_repr(message), "root_id": self._batch_id,
                "parent_id": self._batch_id, "retries": 0, "eta": None, "expires": None}))

    def started(self, indexes: Sequence[int]) -> None:
        now = time.monotonic()
        for index in indexes:
            self._started[index] = now
            self._queue.append(("task-started", {"uuid": self._job_id(index)}))
        self.flush()

    def decided(self, index: int, decision: Decision) -> None:
        uuid = self._job_id(index)
        if decision.kind is DecisionKind.IGNORED:
            # a redelivered, stale or forged copy: the job's entry is its owning delivery's
            return
        if index not in self._started:  # decided without a claim: invalid, malformed
            self._queue.append(("task-started", {"uuid": uuid}))
        runtime = time.monotonic() - self._started.get(index, time.monotonic())
        if decision.kind is DecisionKind.RETRY:
            self._queue.append(("task-retried", {
                "uuid": uuid, "traceback": "",
                "exception": f"Retry('handed back: retry in {decision.countdown:.0f}s "
                             f"({decision.detail or decision.code or decision.state})')"}))
        elif is_failure(decision):
            reference = self._messages[index].get("reference") or ""
            failure = JobNotDone(describe(decision, reference if isinstance(reference, str)
                                          else ""))
            self._queue.append(("task-failed", {"uuid": uuid, "exception": repr(failure),
                                                "traceback": ""}))
            log.info("Task %s[%s] raised expected: %r", UNSIGN_TASK, uuid, failure)
        else:
            self._queue.append(("task-succeeded", {"uuid": uuid, "runtime": runtime,
                                                   "result": repr(decision.result())}))

    def flush(self) -> None:
        """Send what was queued, as one grouped message."""
        queued, self._queue = self._queue, []
        if not queued or not self.enabled:
            return
        try:
            with self._app.amqp.producer_pool.acquire(block=True) as producer:
                dispatcher = self._app.events.Dispatcher(
                    producer.connection, self._hostname, True, producer.channel,
                    buffer_while_offline=False, groups=["task"], buffer_group=["task"],
                    buffer_limit=len(queued) + 1)
                for kind, fields in queued:
                    dispatcher.send(kind, **fields)
                dispatcher.flush()
                dispatcher.close()
        except Exception as exc:  # Flower's view is not worth a job: logged, dropped
            log.warning("could not send %d task event(s) of batch %s: %s", len(queued),
                        self._batch_id, type(exc).__name__)
