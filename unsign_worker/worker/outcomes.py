"""The writes that end one delivery of a job: what the settle and finish scripts are given.

:func:`settle` describes the outcome of a claimed job (fenced by its token) and
:func:`finish_unclaimed` the end of a job that holds no claim (invalid, duplicate, cancelled),
each as a :class:`~unsign_worker.worker.settlement.Pending` that
:func:`~unsign_worker.worker.settlement.flush` sends, with the audit entry, the event, the hook
record and the dead-letter entry that go with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unsign_worker.protocol.attempt import AttemptRecord
from unsign_worker.protocol.catalogue import ErrorCode, lookup
from unsign_worker.protocol.params import Identity, UnsignRequest
from unsign_worker.store.claims import Claim
from unsign_worker.store.job import Job
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.states import JobState
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.settlement import Decision, DecisionKind, Pending


@dataclass
class Run:
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


def audit_entry(run: Run, record: AttemptRecord, outcome: str) -> dict[str, Any]:
    return {"time": record.started_at, "job_id": run.job.job_id,
            "identity": run.identity.identity_masked, "attempt": record.attempt,
            "params": run.request.params_masked(), "http_status": record.http_status,
            "code": record.code, "duration_ms": record.duration_ms, "outcome": outcome,
            "reason": record.reason, "may_have_reached": record.may_have_reached,
            "campaign": run.job.campaign, "reference": run.job.reference,
            **({"producer": run.job.producer} if run.job.producer else {})}


def audit_now(run: Run, record: AttemptRecord, outcome: str) -> None:
    ctx = run.ctx
    ctx.redis.xadd(ctx.keys.audit, {"data": json.dumps(audit_entry(run, record, outcome))},
                   maxlen=ctx.settings.audit_maxlen, approximate=True)


def settle(run: Run, state: JobState, code: str, reason: str, *,
           customer: Mapping[str, str] | None = None, dlq_kind: str = "",
           dlq_entry: ErrorCode | None = None, lease_seconds: float = 0.0,
           first_failure_at: float | None = None, countdown: float = 0.0,
           cause: str = "") -> Pending:
    """The write that records ``state`` for a claimed job (fenced by its token); ``cause``
    (a retry's: the error's class and masked reason) is the decision's detail."""
    ctx, job, now = run.ctx, run.job, time.time()
    record = run.records[-1] if run.records else None
    event = hook = None
    hook_identity = ""
    if state.is_success:
        event = {"job_id": job.job_id, "outcome": str(state),
                 "identity": run.identity.identity_masked, "campaign": job.campaign,
                 "reference": job.reference, "producer": job.producer, "at": now}
        if ctx.hooks.fn is not None:
            hook_identity = run.identity.key
            hook = {"idempotency_key": f"unsign:{run.identity.key}", "job_id": job.job_id,
                    "outcome": str(state), "params": job.params, "reference": job.reference,
                    "campaign": job.campaign, "producer": job.producer,
                    "customer": dict(customer or {}), "unsigned_at": now}
    request = SettleRequest(
        job_id=job.job_id, identity=run.identity.key, campaign=job.campaign,
        token=run.claim.token, now=now, state=state, code=code, reason=reason,
        attempts=run.attempts, reached=run.reached, lease_seconds=lease_seconds,
        first_failure_at=first_failure_at,
        retries=run.claim.retries + (1 if state is JobState.RETRYING else 0),
        audit=audit_entry(run, record, str(state)) if record else
        {"time": now, "job_id": job.job_id, "outcome": str(state), "code": code},
        retention_seconds=ctx.job_retention_seconds, audit_maxlen=ctx.settings.audit_maxlen,
        events_maxlen=ctx.events_maxlen, hook_delay=ctx.settings.lease_seconds,
        close_breaker=bool(run.claim.probe and state is not JobState.PARKED),
        event=event, hook=hook,
        dlq=dead_letter(run, code, reason, dlq_kind, now, dlq_entry) if dlq_kind else None,
        producer=job.producer)
    kind = DecisionKind.RETRY if state is JobState.RETRYING else DecisionKind.DONE
    return Pending(request, Decision(kind, job.job_id, str(state), code=code,
                                     countdown=countdown, detail=cause),
                   hook_identity=hook_identity, identity_masked=run.identity.identity_masked)


def dead_letter(run: Run, code: str, reason: str, kind: str, now: float,
                 entry: ErrorCode | None = None) -> dict[str, Any]:
    entry = entry or lookup(code)
    advice = entry.advice if kind != "retry_exhausted" else (
        "Retries ran out before the gateway answered; check the gateway's health, then requeue.")
    return {"job_id": run.job.job_id, "kind": kind, "code": code, "zh": entry.zh,
            "en": entry.en, "category": str(entry.category), "advice": advice,
            "reason": reason, "attempts": run.attempts, "identity": run.identity.key,
            "identity_masked": run.identity.identity_masked, "job": run.job.masked(),
            "campaign": run.job.campaign, "reference": run.job.reference,
            "dead_lettered_at": now}


def finish_unclaimed(ctx: WorkerContext, job: Job, identity: Identity | None, state: JobState,
                     code: str, reason: str, original: str = "") -> Pending:
    """The write that ends a job holding no claim (invalid, duplicate, cancelled)."""
    now = time.time()
    request = FinishRequest(
        job_id=job.job_id, identity=identity.key if identity else "",
        identity_masked=identity.identity_masked if identity else "", campaign=job.campaign,
        reference=job.reference, params_json=job.params_json(), now=now, state=state,
        code=code, reason=reason, original=original,
        audit={"time": now, "job_id": job.job_id, "outcome": str(state), "code": code,
               "reason": reason, "original": original, "campaign": job.campaign,
               "reference": job.reference,
               **({"producer": job.producer} if job.producer else {})},
        retention_seconds=ctx.job_retention_seconds, audit_maxlen=ctx.settings.audit_maxlen,
        producer=job.producer)
    return Pending(request, Decision(DecisionKind.DONE, job.job_id, str(state), code=code,
                                     detail=reason))
