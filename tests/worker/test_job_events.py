"""The per-job task events of single jobs run in bulk (worker/job_events.py): what each job of a
batch tells Flower, grouped into one event message per step. A real Celery app on real Redis;
the dispatcher records what it would publish."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from unsign_worker.store.job import UNSIGN_TASK
from unsign_worker.worker.job_events import JobEvents
from unsign_worker.worker.settlement import Decision, DecisionKind

IDS = ["a" * 32, "b" * 32, "c" * 32, "d" * 32]


class Recorder:
    """Stands for Celery's EventDispatcher: records each grouped publish."""

    def __init__(self, published: list[list[tuple[str, dict[str, Any]]]], *args: Any,
                 **kwargs: Any) -> None:
        assert kwargs["buffer_group"] == ["task"]
        self.published = published
        self.buffer: list[tuple[str, dict[str, Any]]] = []

    def send(self, kind: str, **fields: Any) -> None:
        self.buffer.append((kind, fields))

    def flush(self) -> None:
        self.published.append(self.buffer)

    def close(self) -> None:
        pass


@pytest.fixture
def app(redis_url: str, key_prefix: str) -> Iterator[Celery]:
    app = Celery("job-events-test", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": key_prefix}
    app.conf.worker_send_task_events = True
    yield app
    app.close()


def test_each_job_of_a_batch_is_told_as_its_own_task_in_grouped_messages(
        app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[list[tuple[str, dict[str, Any]]]] = []
    monkeypatch.setattr(app.events, "Dispatcher",
                        lambda *a, **k: Recorder(published, *a, **k))
    messages = [{"job_id": job_id, "params": {"user_email": "li.wei@example.com"},
                 "reference": f"r-{n}", "campaign": ""} for n, job_id in enumerate(IDS)]
    events = JobEvents(app, hostname="w1@test", batch_id="batch-1", messages=messages)
    events.received()
    events.started([0, 1, 2, 3])
    events.decided(0, Decision(DecisionKind.DONE, IDS[0], "unsigned"))
    events.decided(1, Decision(DecisionKind.DONE, IDS[1], "rejected", code="NOT_EXIST_CUST_SIGN"))
    events.decided(2, Decision(DecisionKind.RETRY, IDS[2], "retrying", code="HTTP_503",
                               countdown=30, detail="TransportError: HTTP 503 from the gateway"))
    events.decided(3, Decision(DecisionKind.IGNORED, IDS[3], "in_flight",
                               detail="redelivered copy (busy)"))
    events.flush()

    assert len(published) == 2  # received + started in one message, the outcomes in another
    first, second = published
    received = [f for kind, f in first if kind == "task-received"]
    assert [f["uuid"] for f in received] == IDS
    assert all(f["name"] == UNSIGN_TASK and f["parent_id"] == f["root_id"] == "batch-1"
               for f in received)
    assert "l***@example.com" in received[0]["kwargs"]
    assert "li.wei" not in repr(published)
    assert [f["uuid"] for kind, f in first if kind == "task-started"] == IDS
    ends = {f["uuid"]: (kind, f) for kind, f in second}
    assert ends[IDS[0]][0] == "task-succeeded" and "'outcome': 'unsigned'" in ends[IDS[0]][1][
        "result"]
    assert ends[IDS[1]][0] == "task-failed"
    assert ends[IDS[1]][1]["exception"].startswith("JobNotDone('rejected NOT_EXIST_CUST_SIGN")
    assert "reference r-1" in ends[IDS[1]][1]["exception"]
    assert ends[IDS[2]][0] == "task-retried"
    assert "retry in 30s (TransportError: HTTP 503 from the gateway)" in ends[IDS[2]][1][
        "exception"]  # Flower shows the cause
    assert IDS[3] not in ends  # a dropped copy: the job's entry is its owning delivery's


def test_no_event_when_the_worker_sends_no_task_events(
        app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    app.conf.worker_send_task_events = False
    published: list[list[tuple[str, dict[str, Any]]]] = []
    monkeypatch.setattr(app.events, "Dispatcher",
                        lambda *a, **k: Recorder(published, *a, **k))
    events = JobEvents(app, hostname="w1@test", batch_id="b",
                       messages=[{"job_id": IDS[0], "params": {}}])
    events.received()
    events.started([0])
    events.flush()
    assert published == []
