"""The one retry policy: the pure decision by table, then the three paths a retried job can take
(in the task, handed back from a batch, re-published by the sweeper) continuing ONE count kept in
the job's record. Real Redis, the emulator over real HTTP; no real sleeping."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.plugins.emulator import cae
from unsign_worker.protocol.exceptions import RetryableError
from unsign_worker.worker.processor import process_batch, process_job
from unsign_worker.worker.retry_policy import RetryPolicy, RetryState, Step, Verdict
from unsign_worker.worker.sweeper import Sweeper

POLICY = RetryPolicy(intask_budget_seconds=3, intask_base_seconds=0.1, intask_cap_seconds=1,
                     countdown_base_seconds=4, countdown_cap_seconds=64, deadline_seconds=600)
T0 = 1_000_000.0


def state(failures: int = 1, handbacks: int = 0, failing_for: float = 0.0,
          in_delivery: float = 0.0) -> RetryState:
    return RetryState(in_task_failures=failures, handbacks=handbacks,
                      first_failure_at=T0 - failing_for, delivery_started_at=T0 - in_delivery)


@pytest.mark.parametrize(("given", "rand", "expected"), [
    # inside the in-task budget: wait the exponential step plus jitter
    (state(failures=1), 0.0, Verdict(Step.WAIT_IN_TASK, 0.1)),
    (state(failures=2), 0.0, Verdict(Step.WAIT_IN_TASK, 0.2)),
    (state(failures=3), 0.5, Verdict(Step.WAIT_IN_TASK, 0.45)),
    (state(failures=9), 0.0, Verdict(Step.WAIT_IN_TASK, 1.0)),  # capped
    # the budget cannot hold the next wait: hand back, the countdown growing with the count
    (state(in_delivery=2.95), 0.0, Verdict(Step.HAND_BACK, 2.0)),
    (state(in_delivery=3, handbacks=0), 0.0, Verdict(Step.HAND_BACK, 2.0)),
    (state(in_delivery=3, handbacks=1), 0.0, Verdict(Step.HAND_BACK, 4.0)),
    (state(in_delivery=3, handbacks=2), 0.99, Verdict(Step.HAND_BACK, 8.0 + 7.92)),
    (state(in_delivery=3, handbacks=30), 0.0, Verdict(Step.HAND_BACK, 32.0)),  # capped
    # never past the deadline (plus half a second), never under a second
    (state(in_delivery=3, handbacks=5, failing_for=595), 0.0, Verdict(Step.HAND_BACK, 5.5)),
    (state(in_delivery=3, handbacks=5, failing_for=599.9), 0.0, Verdict(Step.HAND_BACK, 1.0)),
    # failing for longer than the deadline: dead letter, wherever the job is
    (state(failing_for=600), 0.0, Verdict(Step.DEAD_LETTER)),
    (state(in_delivery=3, failing_for=601), 0.0, Verdict(Step.DEAD_LETTER)),
])
def test_the_policy_decides_by_attempts_first_failure_and_budget(given, rand, expected):
    verdict = POLICY.decide(given, RetryableError("SYSTEM_ERROR"), T0, rand=lambda: rand)

    assert verdict.step is expected.step
    assert verdict.seconds == pytest.approx(expected.seconds)


def test_an_error_that_is_not_retryable_is_never_retried():
    assert POLICY.decide(state(), ValueError("boom"), T0).step is Step.DEAD_LETTER


@pytest.mark.parametrize("bad", [{"intask_budget_seconds": -1},
                                 {"countdown_cap_seconds": 1, "countdown_base_seconds": 2}])
def test_a_policy_with_bad_values_is_refused_when_built(bad):
    values = {"intask_budget_seconds": 1, "intask_base_seconds": 0.1, "intask_cap_seconds": 1,
              "countdown_base_seconds": 1, "countdown_cap_seconds": 5, "deadline_seconds": 60}
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**{**values, **bad})


def job(**extra: Any) -> dict[str, Any]:
    return {"job_id": uuid.uuid4().hex, "params": {"customer_code": "C00001"}, **extra}


def test_the_first_in_task_backoff_step_is_taken_once(emulator_factory, make_ctx, monkeypatch):
    # Given a gateway that answers SYSTEM_ERROR three times, then unsigns
    gw = emulator_factory([cae("a1", 1, script=("SYSTEM_ERROR",) * 3 + ("OK",))])
    ctx = make_ctx(gw, intask_retry_budget_seconds=30)
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)

    # When the job runs
    decision = process_job(ctx, job())

    # Then the three waits are the first, second and third steps (0.1 s base, up to 0.1 s
    # jitter): the first step once, not the first step twice
    assert decision.state == "unsigned" and gw.requests("a1") == 4
    assert len(waits) == 3
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.3 and 0.4 <= waits[2] <= 0.5


def _always_failing(emulator_factory, make_ctx) -> Any:
    gw = emulator_factory([cae("a1", 1, script=("SYSTEM_ERROR",) * 50)])
    # no in-task budget: every failure hands the job back; countdowns 1-2 s, 2-4 s, 4-8 s ...
    return make_ctx(gw, intask_retry_budget_seconds=0, retry_countdown_base_seconds=2,
                    retry_countdown_cap_seconds=32)


def test_a_batch_job_handed_back_keeps_its_retry_count(emulator_factory, make_ctx):
    ctx = _always_failing(emulator_factory, make_ctx)
    message = job(campaign="")

    # a batch job handed back comes again as its own message, whose broker count starts at 0
    countdowns = [process_batch(ctx, [message])[0].countdown for _ in range(3)]

    assert 1 <= countdowns[0] <= 2 and 2 <= countdowns[1] <= 4 and 4 <= countdowns[2] <= 8
    assert ctx.redis.hget(ctx.keys.job(message["job_id"]), "retries") == b"3"


def test_a_job_republished_by_the_sweeper_continues_its_retry_count(emulator_factory, make_ctx):
    ctx = _always_failing(emulator_factory, make_ctx)
    message = job()
    first = process_job(ctx, message)
    second = process_job(ctx, message)
    assert (first.kind, second.kind) == ("retry", "retry")

    # Given the broker lost the retry message: the sweeper re-publishes the job from its record
    republished: list[dict[str, Any]] = []
    sweeper = Sweeper(ctx.redis, ctx.keys, lease_seconds=20, probe_after_seconds=60,
                      publish_job=republished.append, publish_hook=lambda _: None)
    assert sweeper.republish(message["job_id"], time.time())

    # When that copy runs, Then its countdown is the third step, not the first again
    third = process_job(ctx, republished[0])
    assert third.kind == "retry" and 4 <= third.countdown <= 8


def test_the_sweep_lock_lives_as_long_as_the_configured_interval(redis_client, key_prefix):
    from unsign_worker.store.keys import Keys

    keys = Keys(key_prefix)
    sweeper = Sweeper(redis_client, keys, lease_seconds=20, probe_after_seconds=60,
                      publish_job=lambda _: None, publish_hook=lambda _: None,
                      interval_seconds=60)

    sweeper.sweep_once()

    # 90% of the 60 s interval, not of the 5 s default: a second sweeper stays out
    assert redis_client.pttl(keys.sweeper) > 50_000
