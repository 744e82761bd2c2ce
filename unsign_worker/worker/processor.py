"""One job, start to finish: validate, claim, then submit (:mod:`unsign_worker.worker.submission`:
sign, send with bounded in-task retries, route the answer).

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

from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.protocol.params import Identity, UnsignRequest
from unsign_worker.store.claims import Claim, ClaimStatus
from unsign_worker.store.job import Job
from unsign_worker.store.requests import ClaimRequest
from unsign_worker.store.states import JobState
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.outcomes import Run, finish_unclaimed, settle
from unsign_worker.worker.settlement import (
    UNCONFIRMED,
    BatchObserver,
    Decision,
    DecisionKind,
    Pending,
    confirm_claim,
    flush,
    tell,
)
from unsign_worker.worker.submission import submit

log = logging.getLogger(__name__)

__all__ = ["Decision", "process_batch", "process_job"]

#: Jobs of a batch claimed together (one pipeline with the previous chunk's writes).
CLAIM_CHUNK = 10
#: The decision's state and code of a job handed back unclaimed (its record is unchanged).
HANDED_BACK = "handed_back"
GATEWAY_UNREACHABLE = "GATEWAY_UNREACHABLE"


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
        if ctx.gateway_unreachable():  # not from here: the rest goes back, unclaimed
            for item in ready[start:]:
                decisions[item.index] = hand_back(ctx, item.job)
            break
        claimed_at = time.time()
        claims = _flush(ctx, pending, decisions, [_claim_request(r) for r in part])
        if observer is not None:
            tell(observer, decisions, told)
            observer.started([item.index for item in part])
        for item, claim in zip(part, claims, strict=True):
            if claim.status is ClaimStatus.THROTTLED:
                claim = confirm_claim(ctx, _claim_request(item),
                                      _claim(ctx, item.job, item.identity))
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


def hand_back(ctx: WorkerContext, job: Job) -> Decision:
    """A job this process will not send, the gateway being unreachable from here: back to the
    broker at once, unclaimed (its record is untouched), for a host that reaches it."""
    host = ctx.reachability.host if ctx.reachability is not None else "?"
    return Decision(DecisionKind.RETRY, job.job_id, HANDED_BACK, code=GATEWAY_UNREACHABLE,
                    detail=f"gateway {host} unreachable from this worker; handed back")


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
                              reference=item.job.reference, lease_seconds=s.lease_seconds,
                              probe_after_seconds=s.breaker_probe_after_seconds,
                              renew_token=claim.token, producer=item.job.producer)
    assert renewed is not None
    return renewed if renewed.status is not ClaimStatus.CLAIMED else Claim(
        ClaimStatus.CLAIMED, token=claim.token, reached=claim.reached, attempts=claim.attempts,
        first_failure_at=claim.first_failure_at, probe=claim.probe, retries=claim.retries)


def _claim_request(item: _Ready) -> ClaimRequest:
    return ClaimRequest(job_id=item.job.job_id, identity=item.identity.key,
                        identity_masked=item.identity.identity_masked,
                        params_json=item.job.params_json(), campaign=item.job.campaign,
                        reference=item.job.reference, producer=item.job.producer)


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
    if claim == UNCONFIRMED:
        return Decision(DecisionKind.IGNORED, job.job_id, "in_flight",
                        detail="claim not confirmed on a replica: not sent")
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
    if ctx.gateway_unreachable():  # claimed with its chunk before the cut was known: back now
        back = hand_back(ctx, job)
        return settle(run, JobState.RETRYING, GATEWAY_UNREACHABLE, back.detail,
                      lease_seconds=ctx.settings.lease_seconds,
                      first_failure_at=claim.first_failure_at, cause=back.detail)
    return submit(run)


def _claim(ctx: WorkerContext, job: Job, identity: Identity) -> Claim:
    """Claim the agreement, waiting out the campaign's global rate limit if it is used up."""
    s = ctx.settings
    while True:
        claim = ctx.dedup.claim(job_id=job.job_id, identity=identity.key,
                                identity_masked=identity.identity_masked,
                                params_json=job.params_json(),
                                campaign=job.campaign, reference=job.reference,
                                lease_seconds=s.lease_seconds,
                                probe_after_seconds=s.breaker_probe_after_seconds,
                                producer=job.producer)
        if claim.status is not ClaimStatus.THROTTLED:
            return claim
        time.sleep(max(1, int(claim.detail or 0)) / 1000 + random.random() * 0.05)
