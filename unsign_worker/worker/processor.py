"""One job, start to finish: validate, claim, sign, submit with bounded in-task retries, route.

Celery-free on purpose: the tasks call :func:`process_batch` (a campaign message) or
:func:`process_job` (a single job) and act on the :class:`Decision` each job gets (finish, hand
back to the broker with a countdown, or drop a redelivered copy). Redis round trips: the writes
of the jobs just done and the claims of the next ``CLAIM_CHUNK`` jobs share one pipeline
(:mod:`unsign_worker.worker.settlement`), so a batch costs about two round trips per ten jobs and a
single job one claim and one settle.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from unsign_worker.protocol.attempt import CODE_NETWORK, record_of, send
from unsign_worker.protocol.catalogue import Category, lookup
from unsign_worker.protocol.exceptions import RetryableError, ValidationError
from unsign_worker.protocol.params import (
    Identity,
    UnsignRequest,
    build_query_params,
    request_params,
)
from unsign_worker.protocol.query_verdict import VerdictKind, judge_query
from unsign_worker.protocol.signing import sign_params
from unsign_worker.store.claims import Claim, ClaimStatus
from unsign_worker.store.job import Job
from unsign_worker.store.requests import ClaimRequest
from unsign_worker.store.states import BreakerStatus, JobState
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.outcomes import Run, audit_now, finish_unclaimed, settle
from unsign_worker.worker.retry_policy import RetryState, Step, Verdict
from unsign_worker.worker.settlement import (
    BatchObserver,
    Decision,
    DecisionKind,
    Pending,
    flush,
    tell,
)

log = logging.getLogger(__name__)

__all__ = ["Decision", "process_batch", "process_job"]

#: Answers that mean "this agreement is not (or no longer) signed".
GONE_CODES = frozenset({"NOT_EXIST_CUST_SIGN", "STATUS_CUSTOMER_SIGN"})
#: Jobs of a batch claimed together (one pipeline with the previous chunk's writes).
CLAIM_CHUNK = 10
#: After this process saw the breaker open, claimed jobs wait this long without sending.
LOCAL_HALT_SECONDS = 2.0


@dataclass(frozen=True)
class _Ready:
    index: int
    job: Job
    request: UnsignRequest
    identity: Identity


def process_job(ctx: WorkerContext, message: Mapping[str, Any]) -> Decision:
    """Process one delivery of a job message. Never raises for a job-level problem."""
    return process_batch(ctx, [message])[0]


def process_batch(ctx: WorkerContext, messages: Sequence[Mapping[str, Any]], *,
                  chunk: int = CLAIM_CHUNK, observer: BatchObserver | None = None
                  ) -> list[Decision]:
    """Process the jobs of one message, one after the other, pipelining their Redis writes.

    A job's retry count lives in its record (see :mod:`unsign_worker.worker.retry_policy`), so how
    the
    message came (single, batch, re-published by the sweeper) does not change its backoff.
    ``observer`` hears of each chunk's jobs as they start and of each decision once written."""
    decisions: list[Decision | None] = [None] * len(messages)
    pending: list[tuple[int, Pending]] = []
    ready: list[_Ready] = []
    told = [False] * len(messages)
    for index, message in enumerate(messages):
        prepared = _prepare(ctx, message)
        if isinstance(prepared, Decision):
            decisions[index] = prepared
        elif isinstance(prepared, Pending):
            pending.append((index, prepared))
        else:
            ready.append(_Ready(index, *prepared))
    for start in range(0, len(ready), max(1, chunk)):
        part = ready[start:start + max(1, chunk)]
        claimed_at = time.time()
        claims = _flush(ctx, pending, decisions, [_claim_request(r) for r in part])
        if observer is not None:
            tell(observer, decisions, told)
            observer.started([item.index for item in part])
        for item, claim in zip(part, claims, strict=True):
            if claim.status is ClaimStatus.THROTTLED:
                claim = _claim(ctx, item.job, item.identity)
            elif claim.status is ClaimStatus.CLAIMED and (
                    time.time() - claimed_at > ctx.settings.lease_seconds / 2):
                # slow jobs ahead of it in the chunk: renew before sending, never after expiry
                claim = _renew(ctx, item, claim)
            out = _after_claim(ctx, item, claim)
            if isinstance(out, Decision):
                decisions[item.index] = out
            else:
                pending.append((item.index, out))
    _flush(ctx, pending, decisions, [])
    if observer is not None:
        tell(observer, decisions, told)
    done = [d for d in decisions if d is not None]
    assert len(done) == len(messages), "every job of the message gets a decision"
    return done


def _flush(ctx: WorkerContext, pending: list[tuple[int, Pending]],
           decisions: list[Decision | None], claims: list[ClaimRequest]) -> list[Claim]:
    written, answers = flush(ctx, [p for _, p in pending], claims)
    for (index, item), decision in zip(pending, written, strict=True):
        decisions[index] = decision
        if item.hook_identity and decision.kind is not DecisionKind.IGNORED:
            ctx.hooks.run(item.hook_identity)  # written: the merchant's step, once
    pending.clear()
    return answers


def _prepare(ctx: WorkerContext, message: Mapping[str, Any]
             ) -> Decision | Pending | tuple[Job, UnsignRequest, Identity]:
    try:
        job = Job.from_message(message)
    except ValidationError as exc:
        log.error("dropping a malformed job message: %s", exc)
        job_id = message.get("job_id", "") if isinstance(message, Mapping) else ""
        return Decision(DecisionKind.IGNORED, str(job_id), "malformed", detail=str(exc))
    try:
        request = UnsignRequest.from_mapping(job.params).validate(
            charset=ctx.settings.input_charset)
    except ValidationError as exc:
        return finish_unclaimed(ctx, job, None, JobState.REJECTED, "INVALID_JOB", str(exc))
    return job, request, request.identity(ctx.settings.partner)


def _renew(ctx: WorkerContext, item: _Ready, claim: Claim) -> Claim:
    s = ctx.settings
    renewed = ctx.dedup.claim(job_id=item.job.job_id, identity=item.identity.key,
                              identity_masked=item.identity.identity_masked,
                              params_json=item.job.params_json(), campaign=item.job.campaign,
                              reference=item.job.reference, now=time.time(),
                              lease_seconds=s.lease_seconds,
                              probe_after_seconds=s.breaker_probe_after_seconds,
                              renew_token=claim.token)
    assert renewed is not None
    return renewed if renewed.status is not ClaimStatus.CLAIMED else Claim(
        ClaimStatus.CLAIMED, token=claim.token, reached=claim.reached, attempts=claim.attempts,
        first_failure_at=claim.first_failure_at, probe=claim.probe, retries=claim.retries)


def _claim_request(item: _Ready) -> ClaimRequest:
    return ClaimRequest(job_id=item.job.job_id, identity=item.identity.key,
                        identity_masked=item.identity.identity_masked,
                        params_json=item.job.params_json(), campaign=item.job.campaign,
                        reference=item.job.reference)


def _after_claim(ctx: WorkerContext, item: _Ready, claim: Claim) -> Decision | Pending:
    job, identity = item.job, item.identity
    if claim.status is ClaimStatus.DUPLICATE:
        return finish_unclaimed(ctx, job, identity, JobState.DUPLICATE, "",
                                 f"agreement already handled by job {claim.detail}",
                                 original=claim.detail)
    if claim.status is ClaimStatus.CANCELLED:
        return finish_unclaimed(ctx, job, identity, JobState.CANCELLED, "",
                                 "campaign cancelled before this job was sent")
    if claim.status is ClaimStatus.MISMATCH:
        log.error("refused a message for job %s: its parameters differ from the job's record "
                  "(a second message reusing the job id)", job.job_id)
        return Decision(DecisionKind.IGNORED, job.job_id, "mismatch",
                        detail="the message's parameters differ from the job's record")
    if claim.status in (ClaimStatus.BUSY, ClaimStatus.TERMINAL):
        return Decision(DecisionKind.IGNORED, job.job_id, claim.detail or "in_flight",
                        detail=f"redelivered copy ({claim.status})")
    if claim.status in (ClaimStatus.PARKED, ClaimStatus.PAUSED):
        reason = "circuit breaker open" if claim.status is ClaimStatus.PARKED else "campaign paused"
        return Decision(DecisionKind.DONE, job.job_id, JobState.PARKED, code=claim.detail,
                        detail=reason)
    run = Run(ctx, job, item.request, identity, claim, time.time(), attempts=claim.attempts,
               reached=claim.reached)
    if not claim.probe and ctx.local_halt_until > time.time():
        # this process just saw the breaker open: don't spend a claimed job on the gateway
        return settle(run, JobState.PARKED, "", "circuit breaker open")
    return _submit(run)


def _claim(ctx: WorkerContext, job: Job, identity: Identity) -> Claim:
    """Claim the agreement, waiting out the campaign's global rate limit if it is used up."""
    s = ctx.settings
    while True:
        claim = ctx.dedup.claim(job_id=job.job_id, identity=identity.key,
                                identity_masked=identity.identity_masked,
                                params_json=job.params_json(),
                                campaign=job.campaign, reference=job.reference, now=time.time(),
                                lease_seconds=s.lease_seconds,
                                probe_after_seconds=s.breaker_probe_after_seconds)
        if claim.status is not ClaimStatus.THROTTLED:
            return claim
        time.sleep(max(1, int(claim.detail or 0)) / 1000 + random.random() * 0.05)


def _submit(run: Run) -> Pending:
    ctx, s = run.ctx, run.ctx.settings
    params = request_params(run.request, partner=s.partner, charset=s.input_charset)
    signed = sign_params(params, ctx.signer, s.input_charset)
    started = time.time()

    def one_attempt() -> Any:
        run.attempts += 1
        begun = time.time()
        try:
            resp, status = send(ctx.gateway, signed, charset=s.input_charset, signer=ctx.signer,
                                max_bytes=s.max_response_bytes)
        except RetryableError as exc:
            run.records.append(record_of(run.attempts, begun, error=exc))
            run.reached = run.reached or run.records[-1].may_have_reached
            raise
        run.records.append(record_of(run.attempts, begun, response=resp, http_status=status))
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


def _verdict(run: Run, error: BaseException, failures: int, started: float) -> Verdict:
    """The retry policy's answer for this job, from the retry state its record holds."""
    state = RetryState(in_task_failures=failures, handbacks=run.claim.retries,
                       first_failure_at=run.claim.first_failure_at or run.now,
                       delivery_started_at=started)
    return run.ctx.policy.decide(state, error, time.time())


def _retry_later(run: Run, exc: RetryableError, verdict: Verdict) -> Pending:
    """Act on a verdict that ends this delivery: dead-letter, or hand back with a countdown."""
    ctx, now = run.ctx, time.time()
    code = exc.code or CODE_NETWORK
    first = run.claim.first_failure_at or run.now
    if verdict.step is not Step.HAND_BACK:
        return settle(run, JobState.DEAD_LETTERED, code, f"retry_exhausted: {exc}",
                       dlq_kind="retry_exhausted", first_failure_at=first)
    return settle(run, JobState.RETRYING, code, str(exc),
                   lease_until=now + verdict.seconds + ctx.settings.lease_seconds,
                   first_failure_at=first, countdown=verdict.seconds)
