"""The per-job path without Celery: real Redis, the emulator over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import redis

from tests.plugins.emulator import PARTNER, cae, partner_protocol
from unsign_worker.emulator.options import AnswerOptions
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.requests import SettleRequest
from unsign_worker.store.states import JobState
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.processor import process_job


def job(params: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"job_id": extra.pop("job_id", uuid.uuid4().hex), "params": params, **extra}


def record(ctx: WorkerContext, job_id: str) -> dict[str, str]:
    raw = ctx.redis.hgetall(ctx.keys.job(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_a_signed_agreement_is_unsigned_and_audited_and_announced(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"}, campaign="", reference="r-1")

    decision = process_job(ctx, message)

    assert (decision.kind, decision.state) == ("done", "unsigned")
    assert record(ctx, message["job_id"])["state"] == "unsigned"
    assert gw.unsigns("a1") == 1
    audit = [json.loads(f[b"data"]) for _, f in ctx.redis.xrange(ctx.keys.audit)]
    assert audit[-1]["outcome"] == "unsigned" and audit[-1]["attempt"] == 1
    assert audit[-1]["http_status"] == 200
    events = [json.loads(f[b"data"]) for _, f in ctx.redis.xrange(ctx.keys.events)]
    assert [e["job_id"] for e in events] == [message["job_id"]]


def test_retry_codes_are_retried_in_the_task_with_the_original_parameters(emulator_factory,
                                                                         make_ctx):
    gw = emulator_factory([cae("a1", 1, script=("SYSTEM_ERROR", "ILLEGAL_SYSTEM", "OK"))])
    ctx = make_ctx(gw, intask_retry_budget_seconds=5)

    decision = process_job(ctx, job({"customer_code": "C00001"}))

    assert decision.state == "unsigned"
    assert gw.requests("a1") == 3 and gw.unsigns("a1") == 1
    assert record(ctx, decision.job_id)["attempts"] == "3"
    outcomes = [json.loads(f[b"data"])["outcome"] for _, f in ctx.redis.xrange(ctx.keys.audit)]
    assert outcomes == ["retrying_in_task", "retrying_in_task", "unsigned"]


def test_a_spent_in_task_budget_hands_the_job_back_with_a_countdown(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1, script=("SYSTEM_ERROR",) * 50)])
    ctx = make_ctx(gw, intask_retry_budget_seconds=0.2)

    decision = process_job(ctx, job({"customer_code": "C00001"}))

    assert (decision.kind, decision.state, decision.code) == ("retry", "retrying", "SYSTEM_ERROR")
    assert 0 < decision.countdown <= 5
    assert ctx.redis.zscore(ctx.keys.leases, decision.job_id) is not None


def test_retries_past_the_deadline_go_to_the_dead_letter_queue(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1, script=("SYSTEM_ERROR",) * 50)])
    ctx = make_ctx(gw, intask_retry_budget_seconds=0.1, retry_deadline_seconds=0)
    decision = process_job(ctx, job({"customer_code": "C00001"}))

    assert decision.state == "dead_lettered"
    entry = {k.decode(): v.decode()
             for k, v in ctx.redis.hgetall(ctx.keys.dlq_entry(decision.job_id)).items()}
    assert entry["kind"] == "retry_exhausted" and entry["code"] == "SYSTEM_ERROR"
    assert ctx.redis.zscore(ctx.keys.dlq, decision.job_id) is not None


@pytest.mark.parametrize("code", ["TOO_MUCH_TYPE_CODE", "FAIL_UNFREEZE_STANDARD_BAIL",
                                  "STATUS_TYPE_CODE", "SOME_CODE_NOBODY_KNOWS"])
def test_escalation_and_unknown_codes_are_dead_lettered_with_advice(emulator_factory, make_ctx,
                                                                   code):
    gw = emulator_factory([cae("a1", 1, script=(code,))])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"}, reference="ref-9")

    decision = process_job(ctx, message)

    assert (decision.state, decision.code) == ("dead_lettered", code)
    entry = {k.decode(): v.decode()
             for k, v in ctx.redis.hgetall(ctx.keys.dlq_entry(decision.job_id)).items()}
    assert entry["code"] == code and entry["advice"] and entry["zh"]
    assert json.loads(entry["job"])["reference"] == "ref-9"
    assert gw.requests("a1") == 1  # never retried


def test_argument_errors_fail_fast_with_the_reason(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    decision = process_job(ctx, job({"type_code": "BUSI0031"}))
    assert decision.state == "rejected"
    reason = record(ctx, decision.job_id)["reason"]
    assert "trans_account_out" in reason and "must not both be empty" in reason
    assert gw.state.stats.requests == 0


def test_an_unknown_agreement_is_rejected_not_retried(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    decision = process_job(ctx, job({"customer_code": "C99999"}))
    assert (decision.state, decision.code) == ("rejected", "NOT_EXIST_CUST_SIGN")


def test_a_lost_answer_is_settled_as_already_unsigned(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1, script=("LOST_ANSWER",))])
    ctx = make_ctx(gw, intask_retry_budget_seconds=3)
    decision = process_job(ctx, job({"customer_code": "C00001"}))
    assert (decision.state, decision.code) == ("already_unsigned", "STATUS_CUSTOMER_SIGN")
    assert gw.unsigns("a1") == 1


@pytest.mark.parametrize("options", [{}, {"sign_query": True, "sign_errors": True},
                                     {"charset": "gbk"}], ids=["documents", "signed", "gbk"])
def test_a_lost_answer_on_a_partner_agreement_is_confirmed_by_query(emulator_factory, make_ctx,
                                                                    options):
    # the documents' unsigned query answer, a signed one (query document 6.1.1) and GBK answers
    gw = emulator_factory([partner_protocol("p1", 7, script=("LOST_ANSWER",))])
    gw.state.options = AnswerOptions.from_mapping(options)
    ctx = make_ctx(gw, intask_retry_budget_seconds=3)
    decision = process_job(ctx, job({"biz_type": "10004", "user_email": "user7@example.com"}))
    assert decision.state == "already_unsigned"
    assert gw.state.stats.query_requests == 1


def test_without_an_earlier_attempt_status_customer_sign_is_a_rejection(emulator_factory,
                                                                       make_ctx):
    gw = emulator_factory([cae("a1", 1, status="unsigned")])
    ctx = make_ctx(gw)
    decision = process_job(ctx, job({"customer_code": "C00001"}))
    assert (decision.state, decision.code) == ("rejected", "STATUS_CUSTOMER_SIGN")


@pytest.mark.parametrize("step", ["MALFORMED", "OVERSIZED", "WRONG_SIGN", "HTTP_503", "RESET"])
def test_untrustworthy_answers_are_never_success_and_are_retried(emulator_factory, make_ctx,
                                                                  step):
    gw = emulator_factory([cae("a1", 1, script=(step,))])
    ctx = make_ctx(gw, intask_retry_budget_seconds=3, max_response_bytes=64 * 1024)
    decision = process_job(ctx, job({"customer_code": "C00001"}))
    audit = [json.loads(f[b"data"]) for _, f in ctx.redis.xrange(ctx.keys.audit)]
    assert audit[0]["outcome"] == "retrying_in_task"
    # the first answer was never taken as success; the retry settles it
    assert decision.state in ("unsigned", "already_unsigned")
    assert gw.unsigns("a1") == 1


def test_two_jobs_for_one_agreement_unsign_once(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    first = process_job(ctx, job({"customer_code": "C00001"}))
    second = process_job(ctx, job({"customer_code": "C00001"}))
    assert (first.state, second.state) == ("unsigned", "duplicate")
    assert record(ctx, second.job_id)["original"] == first.job_id
    assert gw.requests("a1") == 1


def test_a_redelivered_finished_job_is_dropped(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"})
    assert process_job(ctx, message).state == "unsigned"
    again = process_job(ctx, message)
    assert again.kind == "ignored"
    assert gw.requests("a1") == 1


def test_a_copy_of_a_job_in_flight_is_dropped(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"})
    identity_key = _claim_by_hand(ctx, message)
    copy = process_job(ctx, message)
    assert copy.kind == "ignored" and "busy" in copy.detail
    assert ctx.redis.hget(ctx.keys.agreement(identity_key), "holder").decode() == message["job_id"]


def _claim_args(message: dict[str, Any], *, lease_seconds: float) -> dict[str, Any]:
    """Keyword arguments of DedupStore.claim for ``message`` (all but ``now``)."""
    from unsign_worker.protocol.params import UnsignRequest

    identity = UnsignRequest.from_mapping(message["params"]).identity(PARTNER)
    return dict(job_id=message["job_id"], identity=identity.key,
                identity_masked=identity.identity_masked,
                params_json=json.dumps(message["params"], sort_keys=True), campaign="",
                reference="", lease_seconds=lease_seconds, probe_after_seconds=60)


def _claim_by_hand(ctx: WorkerContext, message: dict[str, Any]) -> str:
    kwargs = _claim_args(message, lease_seconds=30)
    assert ctx.dedup.claim(**kwargs).status == "claimed"
    return str(kwargs["identity"])


def test_a_stale_holder_cannot_overwrite_the_new_holders_outcome(emulator_factory, make_ctx):
    # Given a delivery whose lease expired and a newer delivery that claimed again
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"})
    old = ctx.dedup.claim(**_claim_args(message, lease_seconds=0))  # expired as it is written
    kwargs = _claim_args(message, lease_seconds=30)
    new = ctx.dedup.claim(**kwargs)
    assert int(new.token) == int(old.token) + 1
    # When the old one settles
    out = ctx.dedup.settle(SettleRequest(
        job_id=message["job_id"], identity=kwargs["identity"], campaign="", token=old.token,
        now=time.time(), state=JobState.UNSIGNED, code="", reason="unsigned", attempts=1,
        reached=True, audit={"note": "stale"}, retention_seconds=60, audit_maxlen=100,
        events_maxlen=100, hook_delay=0), minute=0)
    # Then its outcome is refused
    assert out == "stale"
    assert record(ctx, message["job_id"])["state"] == "in_flight"


def test_halt_answers_open_the_breaker_and_park_jobs_without_failing_them(emulator_factory,
                                                                          make_ctx):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 7)])
    gw.faults(global_code="ILLEGAL_SIGN")
    ctx = make_ctx(gw, breaker_threshold=3)

    decisions = [process_job(ctx, job({"customer_code": f"C{i:05d}"})) for i in range(1, 7)]

    assert {d.state for d in decisions} == {"parked"}
    assert ctx.breaker.state().state == "open"
    assert gw.state.stats.requests == 3  # after the third halt nobody calls the gateway
    assert ctx.redis.zcard(ctx.keys.parked) == 6
    counts = {k.decode(): v for k, v in ctx.redis.hgetall(ctx.keys.counts).items()}
    assert "rejected" not in counts and "dead_lettered" not in counts


def test_a_half_open_probe_that_succeeds_closes_the_breaker(emulator_factory, make_ctx):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 5)])
    gw.faults(global_code="ILLEGAL_PARTNER")
    ctx = make_ctx(gw, breaker_threshold=1, breaker_probe_after_seconds=0)
    assert process_job(ctx, job({"customer_code": "C00001"})).state == "parked"
    assert ctx.breaker.state().state == "open"
    gw.faults()
    # the next claim is the probe; its success closes the breaker
    assert process_job(ctx, job({"customer_code": "C00002"})).state == "unsigned"
    assert ctx.breaker.state().state == "closed"


def test_a_paused_campaign_parks_and_a_cancelled_one_cancels(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1), cae("a2", 2)])
    ctx = make_ctx(gw)
    ctx.redis.hset(ctx.keys.campaign("c1"), mapping={"state": "paused", "rate": 0})
    paused = process_job(ctx, job({"customer_code": "C00001"}, campaign="c1"))
    assert paused.state == "parked"
    assert ctx.redis.zscore(ctx.keys.campaign_parked("c1"), paused.job_id) is not None
    ctx.redis.hset(ctx.keys.campaign("c1"), "state", "cancelled")
    cancelled = process_job(ctx, job({"customer_code": "C00002"}, campaign="c1"))
    assert cancelled.state == "cancelled"
    assert gw.state.stats.requests == 0


def test_a_campaign_rate_limit_spaces_the_claims(emulator_factory, make_ctx):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 7)])
    ctx = make_ctx(gw)
    ctx.redis.hset(ctx.keys.campaign("c2"), mapping={"state": "running", "rate": 2})
    started = time.monotonic()
    states = [process_job(ctx, job({"customer_code": f"C{i:05d}"}, campaign="c2")).state
              for i in range(1, 7)]
    assert states == ["unsigned"] * 6
    # 6 jobs at 2 per second need at least two full window changes
    assert time.monotonic() - started >= 1.0


def test_a_malformed_message_is_dropped_and_invalid_params_rejected(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    assert process_job(ctx, {"params": {}}).kind == "ignored"
    bad = process_job(ctx, job({"customer_code": "C1", "colour": "red"}))
    assert bad.state == "rejected" and "colour" in record(ctx, bad.job_id)["reason"]


def test_the_success_hook_runs_once_with_a_stable_idempotency_key(emulator_factory, make_ctx,
                                                                  redis_client: redis.Redis,
                                                                  monkeypatch, key_prefix):
    import tests.hook_target as target

    monkeypatch.setenv("UNSIGN_TEST_HOOK_LIST", f"{key_prefix}hookcalls")
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw, success_hook="tests.hook_target:record")
    message = job({"customer_code": "C00001"})
    assert process_job(ctx, message).state == "unsigned"
    process_job(ctx, message)  # redelivered
    calls = target.calls(redis_client, f"{key_prefix}hookcalls")
    assert len(calls) == 1 and calls[0].startswith("unsign:")


def test_a_batch_routes_each_job_on_its_own_and_pipelines_its_writes(emulator_factory,
                                                                     make_ctx):
    # Given a batch mixing every kind of job, more than one claim chunk long
    from unsign_worker.worker.processor import process_batch

    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 15)] +
                         [cae("esc", 90, script=("TOO_MUCH_TYPE_CODE",))])
    ctx = make_ctx(gw)
    messages = [job({"customer_code": f"C{i:05d}"}, campaign="c9") for i in range(1, 15)]
    messages += [job({"customer_code": "C00003"}, campaign="c9"),  # same agreement again
                 job({"customer_code": "C00090"}, campaign="c9"),  # escalation
                 job({"type_code": "BUSI0031"}, campaign="c9"),  # invalid
                 {"params": {}}]  # malformed
    # When the batch is processed with chunks of 4
    decisions = process_batch(ctx, messages, chunk=4)
    # Then each job has its own outcome, recorded in Redis
    states = [d.state for d in decisions]
    assert states[:14] == ["unsigned"] * 14
    assert states[14:] == ["duplicate", "dead_lettered", "rejected", "malformed"]
    for message, decision in zip(messages[:17], decisions[:17], strict=True):
        assert record(ctx, message["job_id"])["state"] == decision.state
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 15))
    counts = {k.decode(): int(v) for k, v in
              ctx.redis.hgetall(ctx.keys.campaign_counts("c9")).items()}
    assert counts == {"unsigned": 14, "duplicate": 1, "dead_lettered": 1, "rejected": 1}
    # And the campaign's progress over time adds up to its counts (settled and finished jobs)
    over_time: Counter[str] = Counter()
    for outcomes in CampaignStore(ctx.redis, ctx.keys).progress("c9").values():
        over_time.update(outcomes)
    assert over_time == counts
    # And each minute's outcomes are kept 25 hours, for the chart of the last 24
    rates = list(ctx.redis.scan_iter(f"{ctx.keys.prefix}rate:*"))
    assert rates and all(ctx.redis.ttl(key) > 24 * 3600 for key in rates)


def test_a_claim_held_for_long_is_renewed_by_its_own_delivery(emulator_factory, make_ctx):
    gw = emulator_factory([cae("a1", 1)])
    ctx = make_ctx(gw)
    message = job({"customer_code": "C00001"})
    kwargs = _claim_args(message, lease_seconds=30)
    first = ctx.dedup.claim(**kwargs)
    first_lease = float(ctx.redis.hget(ctx.keys.agreement(kwargs["identity"]), "lease_until"))
    # a copy without the token is busy; the holder with its token renews, keeping the token
    assert ctx.dedup.claim(**kwargs).status == "busy"
    renewed = ctx.dedup.claim(**{**kwargs, "lease_seconds": 60}, renew_token=first.token)
    assert (renewed.status, renewed.token) == ("claimed", first.token)
    lease = float(ctx.redis.hget(ctx.keys.agreement(kwargs["identity"]), "lease_until"))
    assert lease >= first_lease + 30


def test_after_a_halt_the_process_stops_sending_the_jobs_it_already_claimed(emulator_factory,
                                                                           make_ctx):
    from unsign_worker.worker.processor import process_batch

    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 11)])
    gw.faults(global_code="ILLEGAL_PARTNER")
    ctx = make_ctx(gw, breaker_threshold=1)
    decisions = process_batch(ctx, [job({"customer_code": f"C{i:05d}"}) for i in range(1, 11)],
                              chunk=10)
    assert {d.state for d in decisions} == {"parked"}
    assert gw.state.stats.requests == 1
    assert ctx.redis.zcard(ctx.keys.parked) == 10
