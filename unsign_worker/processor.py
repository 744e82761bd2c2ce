"""One job, start to finish: validate, claim, sign, submit with bounded in-task retries, route.

Celery-free on purpose: the tasks (single jobs and campaign batches) call :func:`process_job`
and act on the :class:`Decision` it returns (finish, hand back to the broker with a countdown,
or drop a redelivered copy). Redis round trips on the happy path: one claim, one settle.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay

from unsign_worker.attempt import CODE_NETWORK, AttemptRecord, record_of, send
from unsign_worker.context import WorkerContext
from unsign_worker.dedup import Claim
from unsign_worker.errors import Category, lookup
from unsign_worker.exceptions import RetryableError, ValidationError
from unsign_worker.job import Job
from unsign_worker.params import Identity, UnsignRequest, build_params, build_query_params
from unsign_worker.signing import sign_params
from unsign_worker.states import JobState

log = logging.getLogger(__name__)

#: Shortest broker countdown (RabbitMQ's delayed delivery refuses less than a second).
MIN_COUNTDOWN_SECONDS = 1.0
#: Answers that mean "this agreement is not (or no longer) signed".
GONE_CODES = frozenset({"NOT_EXIST_CUST_SIGN", "STATUS_CUSTOMER_SIGN"})


@dataclass(frozen=True)
class Decision:
    """What the task must do next."""

    kind: str  # done | retry | ignored
    job_id: str
    state: str
    code: str = ""
    countdown: float = 0.0
    detail: str = ""
    hook_retry_in: float = 0.0

    def result(self) -> dict[str, Any]:
        """The task's result, as Flower shows it: outcome and code, nothing personal."""
        out: dict[str, Any] = {"job_id": self.job_id, "outcome": self.state, "code": self.code}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class _Run:
    """Mutable state of one delivery."""

    ctx: WorkerContext
    job: Job
    request: UnsignRequest
    identity: Identity
    claim: Claim
    now: float
    attempts: int = 0
    reached: bool = False
    records: list[AttemptRecord] = field(default_factory=list)


def process_job(ctx: WorkerContext, message: Mapping[str, Any], *, broker_retries: int = 0
                ) -> Decision:
    """Process one delivery of a job message. Never raises for a job-level problem."""
    now = time.time()
    try:
        job = Job.from_message(message)
    except ValidationError as exc:
        log.error("dropping a malformed job message: %s", exc)
        job_id = message.get("job_id", "") if isinstance(message, Mapping) else ""
        return Decision("ignored", str(job_id), "malformed", detail=str(exc))
    charset = ctx.settings.input_charset
    try:
        request = UnsignRequest.from_mapping(job.params).validate(charset=charset)
    except ValidationError as exc:
        return _finish_unclaimed(ctx, job, None, JobState.REJECTED, "INVALID_JOB", str(exc), now)
    identity = request.identity(ctx.settings.partner)
    claim = _claim(ctx, job, identity)
    if claim.status == "duplicate":
        return _finish_unclaimed(ctx, job, identity, JobState.DUPLICATE, "",
                                 f"agreement already handled by job {claim.detail}", now,
                                 original=claim.detail)
    if claim.status == "cancelled":
        return _finish_unclaimed(ctx, job, identity, JobState.CANCELLED, "",
                                 "campaign cancelled before this job was sent", now)
    if claim.status in ("busy", "terminal"):
        return Decision("ignored", job.job_id, claim.detail or "in_flight",
                        detail=f"redelivered copy ({claim.status})")
    if claim.status in ("parked", "paused"):
        reason = "circuit breaker open" if claim.status == "parked" else "campaign paused"
        return Decision("done", job.job_id, JobState.PARKED, code=claim.detail, detail=reason)
    run = _Run(ctx, job, request, identity, claim, now, attempts=claim.attempts,
               reached=claim.reached)
    return _submit(run, broker_retries)


def _claim(ctx: WorkerContext, job: Job, identity: Identity) -> Claim:
    """Claim the agreement, waiting out the campaign's global rate limit if it is used up."""
    s = ctx.settings
    while True:
        claim = ctx.dedup.claim(job_id=job.job_id, identity=identity.key,
                                identity_masked=identity.masked(), params_json=job.params_json(),
                                campaign=job.campaign, reference=job.reference, now=time.time(),
                                lease_seconds=s.lease_seconds,
                                probe_after_seconds=s.breaker_probe_after_seconds)
        if claim.status != "throttled":
            return claim
        time.sleep(max(1, int(claim.detail or 0)) / 1000 + random.random() * 0.05)


def _submit(run: _Run, broker_retries: int) -> Decision:
    ctx, s = run.ctx, run.ctx.settings
    params = build_params(run.request, partner=s.partner, charset=s.input_charset)
    signed = sign_params(params, ctx.signer, s.input_charset)

    def one_attempt() -> Any:
        run.attempts += 1
        started = time.time()
        try:
            resp, status = send(ctx.gateway, signed, charset=s.input_charset, signer=ctx.signer,
                                max_bytes=s.max_response_bytes)
        except RetryableError as exc:
            run.records.append(record_of(run.attempts, started, error=exc))
            run.reached = run.reached or run.records[-1].may_have_reached
            raise
        run.records.append(record_of(run.attempts, started, response=resp, http_status=status))
        return resp

    def before_sleep(state: RetryCallState) -> None:
        _audit_now(run, run.records[-1], "retrying_in_task")

    retrying = Retrying(stop=stop_after_delay(s.intask_retry_budget_seconds),
                        wait=ctx.policy.intask_wait(),
                        retry=retry_if_exception_type(RetryableError), reraise=True,
                        before_sleep=before_sleep)
    try:
        response = retrying(one_attempt)
    except RetryableError as exc:
        return _retry_later(run, exc, broker_retries)
    if response.is_success:
        return _settle(run, JobState.UNSIGNED, "", "unsigned", customer=response.customer)
    entry = lookup(response.error)
    if entry.category is Category.HALT:
        return _halt(run, entry.code)
    if entry.category is Category.ESCALATE:
        return _settle(run, JobState.DEAD_LETTERED, entry.code, entry.en, dlq_kind="escalate")
    if entry.code in GONE_CODES and run.reached:
        return _settle_gone(run, entry.code)
    return _settle(run, JobState.REJECTED, entry.code, entry.en)


def _settle_gone(run: _Run, code: str) -> Decision:
    """An earlier attempt of ours may have unsigned it; confirm where the gateway allows."""
    if not run.request.is_partner_protocol:
        return _settle(run, JobState.ALREADY_UNSIGNED, code,
                       "an earlier attempt of this job may have reached the gateway")
    ctx, s = run.ctx, run.ctx.settings
    query = sign_params(build_query_params(run.request, partner=s.partner,
                                           charset=s.input_charset), ctx.signer, s.input_charset)
    try:
        resp, _ = send(ctx.gateway, query, charset=s.input_charset, signer=ctx.signer,
                       max_bytes=s.max_response_bytes)
    except RetryableError as exc:
        return _retry_later(run, exc, 0)
    if resp.is_success and resp.fields.get("charge_agent") == "F":
        return _settle(run, JobState.ALREADY_UNSIGNED, code,
                       "query_customer_protocol confirms the agreement is no longer signed")
    return _settle(run, JobState.REJECTED, code,
                   "query_customer_protocol says the agreement is still signed")


def _halt(run: _Run, code: str) -> Decision:
    """Count the halt answer towards the breaker and park the job (never a failure)."""
    run.ctx.breaker.record_halt(code, lookup(code).en, probe=run.claim.probe)
    return _settle(run, JobState.PARKED, code, "integration-wide error: line stopped")


def _retry_later(run: _Run, exc: RetryableError, broker_retries: int) -> Decision:
    ctx, now = run.ctx, time.time()
    code = exc.code or CODE_NETWORK
    first = run.claim.first_failure_at or run.now
    if ctx.policy.exhausted(first, now):
        return _settle(run, JobState.DEAD_LETTERED, code, f"retry_exhausted: {exc}",
                       dlq_kind="retry_exhausted", first_failure_at=first)
    countdown = ctx.policy.countdown_seconds(broker_retries + 1)
    countdown = min(countdown, max(0.0, first + ctx.policy.deadline_seconds - now) + 0.5)
    countdown = max(MIN_COUNTDOWN_SECONDS, countdown)
    decision = _settle(run, JobState.RETRYING, code, str(exc),
                       lease_until=now + countdown + ctx.settings.lease_seconds,
                       first_failure_at=first)
    if decision.kind != "done":
        return decision
    return Decision("retry", run.job.job_id, JobState.RETRYING, code=code, countdown=countdown)


def _audit_entry(run: _Run, record: AttemptRecord, outcome: str) -> dict[str, Any]:
    return {"time": record.started_at, "job_id": run.job.job_id,
            "identity": run.identity.masked(), "attempt": record.attempt,
            "params": run.request.masked(), "http_status": record.http_status,
            "code": record.code, "duration_ms": record.duration_ms, "outcome": outcome,
            "campaign": run.job.campaign, "reference": run.job.reference}


def _audit_now(run: _Run, record: AttemptRecord, outcome: str) -> None:
    ctx = run.ctx
    ctx.redis.xadd(ctx.keys.audit, {"data": json.dumps(_audit_entry(run, record, outcome))},
                   maxlen=ctx.settings.audit_maxlen, approximate=True)


def _settle(run: _Run, state: JobState, code: str, reason: str, *,
            customer: Mapping[str, str] | None = None, dlq_kind: str = "",
            lease_until: float = 0.0, first_failure_at: float | None = None) -> Decision:
    ctx, job, now = run.ctx, run.job, time.time()
    terminal = state.is_terminal
    record = run.records[-1] if run.records else None
    payload: dict[str, Any] = {
        "job_id": job.job_id, "token": run.claim.token, "now": now, "state": str(state),
        "code": code, "reason": reason, "attempts": run.attempts,
        "reached": "1" if run.reached else "0", "lease_until": lease_until,
        "first_failure_at": repr(first_failure_at) if first_failure_at else "",
        "terminal": terminal, "success": state.is_success,
        "audit": _audit_entry(run, record, str(state)) if record else
        {"time": now, "job_id": job.job_id, "outcome": str(state), "code": code},
        "retention": ctx.job_retention_seconds, "audit_maxlen": ctx.settings.audit_maxlen,
        "events_maxlen": ctx.events_maxlen, "hook_identity": run.identity.key,
        "hook_due": now + ctx.settings.lease_seconds,
        "close_breaker": bool(run.claim.probe and state is not JobState.PARKED),
    }
    if state.is_success:
        event = {"job_id": job.job_id, "outcome": str(state), "identity": run.identity.masked(),
                 "campaign": job.campaign, "reference": job.reference, "at": now}
        payload["event"] = event
        if ctx.hooks.fn is not None:
            payload["hook"] = {"idempotency_key": f"unsign:{run.identity.key}",
                               "job_id": job.job_id, "outcome": str(state),
                               "params": job.params, "reference": job.reference,
                               "campaign": job.campaign, "customer": dict(customer or {}),
                               "unsigned_at": now}
    if dlq_kind:
        entry = lookup(code)
        payload["dlq"] = {"job_id": job.job_id, "kind": dlq_kind, "code": code,
                          "zh": entry.zh, "en": entry.en, "category": str(entry.category),
                          "advice": entry.advice if dlq_kind != "retry_exhausted" else
                          "Retries ran out before the gateway answered; check the gateway's "
                          "health, then requeue.",
                          "reason": reason, "attempts": run.attempts,
                          "identity": run.identity.key,
                          "identity_masked": run.identity.masked(), "job": job.masked(),
                          "campaign": job.campaign, "reference": job.reference,
                          "dead_lettered_at": now}
    out = ctx.dedup.settle(job_id=job.job_id, identity=run.identity.key, campaign=job.campaign,
                           payload=payload, minute=int(now // 60))
    if out == "stale":
        log.warning("job %s lost its claim on %s before settling as %s; a newer delivery "
                    "owns it", job.job_id, run.identity.masked(), state)
        return Decision("ignored", job.job_id, str(state), code=code, detail="stale claim")
    if state is JobState.DEAD_LETTERED:
        log.warning("job %s dead-lettered: %s (%s)", job.job_id, code, dlq_kind)
    hook_retry = 0.0
    if state.is_success and ctx.hooks.fn is not None:
        hook_retry = ctx.hooks.run(run.identity.key).retry_in
    return Decision("done", job.job_id, str(state), code=code, hook_retry_in=hook_retry)


def _finish_unclaimed(ctx: WorkerContext, job: Job, identity: Identity | None, state: JobState,
                      code: str, reason: str, now: float, original: str = "") -> Decision:
    payload = {"job_id": job.job_id, "now": now, "state": str(state), "code": code,
               "reason": reason, "original": original,
               "identity": identity.key if identity else "",
               "identity_masked": identity.masked() if identity else "",
               "params": job.params_json(), "campaign": job.campaign,
               "reference": job.reference, "retention": ctx.job_retention_seconds,
               "audit": {"time": now, "job_id": job.job_id, "outcome": str(state), "code": code,
                         "reason": reason, "original": original, "campaign": job.campaign,
                         "reference": job.reference},
               "audit_maxlen": ctx.settings.audit_maxlen}
    out = ctx.dedup.finish_unclaimed(job_id=job.job_id, campaign=job.campaign, payload=payload,
                                     minute=int(now // 60))
    if out == "terminal":
        return Decision("ignored", job.job_id, str(state), detail="already finished")
    return Decision("done", job.job_id, str(state), code=code, detail=reason)
