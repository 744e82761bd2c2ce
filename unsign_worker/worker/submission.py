"""Submitting one claimed job: sign, send with bounded in-task retries, route the answer.

The answer is routed by its category in the error catalogue (success, halt, escalate, gone,
reject); a retryable failure past the in-task budget is handed back with a countdown or
dead-lettered (:mod:`unsign_worker.worker.retry_policy`). Each route ends in a :class:`Pending`
write (:mod:`unsign_worker.worker.outcomes`); the batch around it is
:mod:`unsign_worker.worker.processor`.
"""

from __future__ import annotations

import time
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from unsign_worker.protocol.attempt import CODE_NETWORK, record_of, send
from unsign_worker.protocol.catalogue import Category, lookup
from unsign_worker.protocol.exceptions import RetryableError, TransportError
from unsign_worker.protocol.masking import mask_text
from unsign_worker.protocol.params import build_query_params, request_params
from unsign_worker.protocol.query_verdict import VerdictKind, judge_query
from unsign_worker.protocol.signing import sign_params
from unsign_worker.store.states import BreakerStatus, JobState
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.outcomes import Run, audit_now, settle
from unsign_worker.worker.retry_policy import MIN_COUNTDOWN_SECONDS, RetryState, Step, Verdict
from unsign_worker.worker.settlement import Pending

#: Answers that mean "this agreement is not (or no longer) signed".
GONE_CODES = frozenset({"NOT_EXIST_CUST_SIGN", "STATUS_CUSTOMER_SIGN"})
#: After this process saw the breaker open, claimed jobs wait this long without sending.
LOCAL_HALT_SECONDS = 2.0


def submit(run: Run) -> Pending:
    """Sign and send a claimed job, retrying in the task as the policy allows, and route the
    answer (or the last failure) to the job's outcome."""
    ctx, s = run.ctx, run.ctx.settings
    params = request_params(run.request, partner=s.partner, charset=s.input_charset)
    signed = sign_params(params, ctx.signer, s.input_charset)
    started = time.time()

    def one_attempt() -> Any:
        run.attempts += 1
        begun = time.time()
        waiting = ctx.reachability.sending(begun) if ctx.reachability is not None else 0
        try:
            resp, status = send(ctx.gateway, signed, charset=s.input_charset, signer=ctx.signer,
                                max_bytes=s.max_response_bytes)
        except RetryableError as exc:
            run.records.append(record_of(run.attempts, begun, error=exc))
            run.reached = run.reached or run.records[-1].may_have_reached
            _note_fault(ctx, exc)
            raise
        finally:
            if ctx.reachability is not None:
                ctx.reachability.done(waiting)
        run.records.append(record_of(run.attempts, begun, response=resp, http_status=status))
        if ctx.reachability is not None:
            ctx.reachability.answered(time.time())
        return resp

    verdicts: dict[int, Verdict] = {}

    def verdict(state: RetryCallState) -> Verdict:
        # tenacity asks both stop and wait after each failure (in an order that changed
        # between versions): the policy decides once per attempt
        n = state.attempt_number
        if n not in verdicts:
            error = state.outcome.exception() if state.outcome else None
            verdicts[n] = _verdict(run, error or RetryableError("no answer"), n, started)
        return verdicts[n]

    def audit_retry(_: RetryCallState) -> None:
        audit_now(run, run.records[-1], "retrying_in_task")

    # every in-task attempt, the first included, in ONE Retrying: one count, one backoff
    retrying = Retrying(retry=retry_if_exception_type(RetryableError),
                        stop=lambda st: verdict(st).step is not Step.WAIT_IN_TASK,
                        wait=lambda st: verdict(st).seconds, before_sleep=audit_retry,
                        reraise=True)
    try:
        response = retrying(one_attempt)
    except RetryableError as exc:
        return _retry_later(run, exc, verdicts[max(verdicts)])
    if response.is_success:
        return settle(run, JobState.UNSIGNED, "", "unsigned", customer=response.customer)
    entry = lookup(response.error)
    if entry.category is Category.HALT:
        return _halt(run, entry.code)
    if entry.category is Category.ESCALATE:
        return settle(run, JobState.DEAD_LETTERED, entry.code, entry.en, dlq_kind="escalate")
    if entry.code in GONE_CODES and run.reached:
        return _settle_gone(run, entry.code)
    return settle(run, JobState.REJECTED, entry.code, entry.en)


def _settle_gone(run: Run, code: str) -> Pending:
    """An earlier attempt of ours may have unsigned it; confirm where the gateway allows."""
    if not run.request.is_partner_protocol:
        return settle(run, JobState.ALREADY_UNSIGNED, code,
                       "an earlier attempt of this job may have reached the gateway")
    ctx, s = run.ctx, run.ctx.settings
    query = sign_params(build_query_params(run.request, partner=s.partner,
                                           charset=s.input_charset), ctx.signer, s.input_charset)
    try:
        resp, _ = send(ctx.gateway, query, charset=s.input_charset, signer=ctx.signer,
                       max_bytes=s.max_response_bytes)
    except RetryableError as exc:  # the query is not retried in the task: hand the job back
        spent = time.time() - ctx.policy.intask_budget_seconds
        return _retry_later(run, exc, _verdict(run, exc, 1, spent))
    verdict = judge_query(resp)
    reason = f"customer_unsign answered {code} after an earlier attempt; {verdict.reason}"
    if verdict.kind is VerdictKind.ALREADY_UNSIGNED:
        return settle(run, JobState.ALREADY_UNSIGNED, code, reason)
    if verdict.kind is VerdictKind.REJECTED:
        return settle(run, JobState.REJECTED, code, reason)
    assert verdict.entry is not None
    if verdict.kind is VerdictKind.HALT:
        return _halt(run, verdict.entry.code, verdict.entry.en)
    return settle(run, JobState.DEAD_LETTERED, verdict.entry.code, reason, dlq_kind="escalate",
                   dlq_entry=verdict.entry)


def _halt(run: Run, code: str, meaning: str = "") -> Pending:
    """Count the halt answer towards the breaker and park the job (never a failure)."""
    state = run.ctx.breaker.record_halt(code, meaning or lookup(code).en, probe=run.claim.probe)
    if state in (BreakerStatus.OPENED, BreakerStatus.OPEN):
        run.ctx.local_halt_until = time.time() + LOCAL_HALT_SECONDS
    return settle(run, JobState.PARKED, code, "integration-wide error: line stopped")


def _note_fault(ctx: WorkerContext, exc: RetryableError) -> None:
    """Tell the process's reachability whether the gateway answered (a retryable code, a 5xx:
    it is there) or not (a network fault)."""
    if ctx.reachability is None:
        return
    if isinstance(exc, TransportError) and exc.network:
        ctx.reachability.failed(str(exc), time.time())
    else:
        ctx.reachability.answered(time.time())


def _verdict(run: Run, error: BaseException, failures: int, started: float) -> Verdict:
    """The retry policy's answer for this job, from the retry state its record holds. While
    the gateway is unreachable from this process, a job is handed back at once instead of
    waiting in the task: another host can send it."""
    state = RetryState(in_task_failures=failures, handbacks=run.claim.retries,
                       first_failure_at=run.claim.first_failure_at or run.now,
                       delivery_started_at=started)
    verdict = run.ctx.policy.decide(state, error, time.time())
    if verdict.step is Step.WAIT_IN_TASK and run.ctx.gateway_unreachable():
        return Verdict(Step.HAND_BACK, MIN_COUNTDOWN_SECONDS)
    return verdict


def _retry_later(run: Run, exc: RetryableError, verdict: Verdict) -> Pending:
    """Act on a verdict that ends this delivery: dead-letter, or hand back with a countdown."""
    ctx = run.ctx
    code = exc.code or CODE_NETWORK
    first = run.claim.first_failure_at or run.now
    if verdict.step is not Step.HAND_BACK:
        return settle(run, JobState.DEAD_LETTERED, code, f"retry_exhausted: {exc}",
                       dlq_kind="retry_exhausted", first_failure_at=first)
    return settle(run, JobState.RETRYING, code, str(exc),
                   lease_seconds=verdict.seconds + ctx.settings.lease_seconds,
                   first_failure_at=first, countdown=verdict.seconds, cause=cause_of(exc))


def cause_of(exc: BaseException) -> str:
    """Why a job is retried, for its log lines: the error's class and its masked reason."""
    return f"{type(exc).__name__}: {mask_text(str(exc))}"
