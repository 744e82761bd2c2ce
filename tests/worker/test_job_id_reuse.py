"""A message that reuses a job's id never acts on another agreement: the worker compares the
message with the job's record and refuses a second copy whose parameters differ. Real Redis,
a real gateway emulator, and (slow) a real worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.plugins.emulator import cae
from tests.plugins.worker_fixtures import wait_for
from tests.worker.test_processor import job, record
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.producer import Producer
from unsign_worker.store.job import Job
from unsign_worker.worker.processor import process_batch, process_job

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

X1, X2 = "a1" * 16, "a2" * 16
A = {"customer_code": "C00001"}
B = {"customer_code": "C00002"}


def recorded_for_a(ctx: Any, job_id: str, campaign: str = "") -> None:
    """X's record, as a producer writes it before sending X's message."""
    Producer(None, ctx.redis, ctx.keys).write_records(  # type: ignore[arg-type]
        [Job(job_id=job_id, params=dict(A), campaign=campaign)])


@pytest.mark.parametrize("forged", [
    {"params": B},
    {"params": {"customer_code": "bad!"}},  # an invalid copy must not end X rejected either
    {"params": A, "campaign": "other"},
])
def test_a_second_message_with_other_parameters_is_refused_and_the_record_kept(
        emulator_factory: Callable[..., Any], make_ctx: Callable[..., Any],
        forged: dict[str, Any]) -> None:
    gw = emulator_factory([cae("a", 1), cae("b", 2)])
    ctx = make_ctx(gw)
    recorded_for_a(ctx, X1)
    # When a message reuses X's id with other parameters
    decision = process_job(ctx, job(job_id=X1, **forged))
    # Then it is refused: nothing sent, X's record untouched
    assert (decision.kind, decision.state) == ("ignored", "mismatch")
    assert gw.requests("a") == gw.requests("b") == 0
    kept = record(ctx, X1)
    assert kept["state"] == "queued" and json.loads(kept["params"]) == A
    # And the genuine message still unsigns A
    assert process_job(ctx, job(A, job_id=X1)).state == "unsigned"
    assert (gw.unsigns("a"), gw.unsigns("b")) == (1, 0)


def test_a_forged_copy_in_a_batch_is_refused_and_the_others_proceed(
        emulator_factory: Callable[..., Any], make_ctx: Callable[..., Any]) -> None:
    gw = emulator_factory([cae("a", 1), cae("b", 2), cae("c", 3)])
    ctx = make_ctx(gw)
    recorded_for_a(ctx, X2)
    decisions = process_batch(ctx, [job(B, job_id=X2), job({"customer_code": "C00003"})])
    assert [d.state for d in decisions] == ["mismatch", "unsigned"]
    assert (gw.unsigns("b"), gw.unsigns("c")) == (0, 1)


@pytest.mark.slow
def test_a_worker_never_unsigns_the_agreement_of_a_forged_copy(
        ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([Agreement(id="a", customer_code="C00000000001"),
                   Agreement(id="b", customer_code="C00000000002")])
    workers = env.workers
    genuine = Job(job_id="ab" * 16, params={"customer_code": "C00000000001"})
    workers.producer.write_records([genuine])
    # a producer that can write the queue sends X's id with B's parameters first
    workers.producer.send(Job(job_id=genuine.job_id, params={"customer_code": "C00000000002"}))
    workers.start_worker()
    wait_for(lambda: workers.redis.llen(workers.keys.queue()) == 0, timeout=60,
             what="the worker to take the forged message")
    workers.producer.send(genuine)
    done = workers.wait_terminal([genuine.job_id])
    assert done[genuine.job_id]["state"] == "unsigned"
    assert json.loads(done[genuine.job_id]["params"]) == genuine.params
    stats = env.stats()
    assert stats["unsigns"] == 1
    assert stats["agreements"]["a"]["unsigns"] == 1
    assert stats["agreements"].get("b", {}).get("unsigns", 0) == 0
