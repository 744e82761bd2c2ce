"""Outcomes waiting to be written, and the pipeline that writes them.

The processor decides an outcome and describes its write as a :class:`Pending`; :func:`flush`
sends every pending write of a batch (and the claims of the next jobs) to Redis in ONE pipeline,
then turns each reply into the task's :class:`Decision`: a settle refused by the fencing token
becomes ``ignored``, a dead letter is logged. The merchant's hook is not run here: the task
runs it once the write is done (:mod:`unsign_worker.worker.processor`). A job whose
answer is known but whose write is still pending is protected like any in-flight job: its claim
is live and its ``open_attempt`` mark is set, so a crash before the flush settles it from the
gateway's state on redelivery (``already_unsigned``), never by unsigning twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from unsign_worker.store.claims import Claim, ClaimStatus, parse_claim, text
from unsign_worker.store.replication import Written
from unsign_worker.store.requests import ClaimRequest, FinishRequest, SettleRequest
from unsign_worker.store.states import JobState
from unsign_worker.worker.context import WorkerContext

log = logging.getLogger(__name__)


class DecisionKind(StrEnum):
    """What the task must do next with a job."""

    DONE = "done"
    RETRY = "retry"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Decision:
    """What the task must do next."""

    kind: DecisionKind
    job_id: str
    state: str
    code: str = ""
    countdown: float = 0.0
    detail: str = ""

    def result(self) -> dict[str, Any]:
        """The task's result, as Flower shows it: outcome and code, nothing personal."""
        out: dict[str, Any] = {"job_id": self.job_id, "outcome": self.state, "code": self.code}
        if self.detail:
            out["detail"] = self.detail
        return out


class BatchObserver(Protocol):
    """Told how a batch goes, job by job (Flower's per-job events: worker/job_events.py)."""

    def started(self, indexes: Sequence[int]) -> None: ...

    def decided(self, index: int, decision: Decision) -> None: ...


def tell(observer: BatchObserver, decisions: Sequence[Decision | None], told: list[bool]
         ) -> None:
    """Tell ``observer`` each decision made since the last call (``told`` marks them)."""
    for index, decision in enumerate(decisions):
        if decision is not None and not told[index]:
            told[index] = True
            observer.decided(index, decision)


@dataclass(frozen=True)
class Pending:
    """One write for the next flush and the decision it yields once written."""

    #: a settle (holds a claim, fenced) or a finish (no claim: invalid, duplicate, cancelled)
    request: SettleRequest | FinishRequest
    decision: Decision
    #: identity whose success hook runs after the write ("" for none)
    hook_identity: str = ""
    #: masked identity, for the log line of a stale write
    identity_masked: str = ""

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def is_settle(self) -> bool:
        return isinstance(self.request, SettleRequest)


def flush(ctx: WorkerContext, pending: Sequence[Pending],
          claims: Sequence[ClaimRequest] = ()) -> tuple[list[Decision], list[Claim]]:
    """Write ``pending`` and make ``claims`` in one round trip.

    Returns the decisions of the pending writes (same order) and the claims' answers. With
    ``UNSIGN_REPLICA_ACKS`` ≥ 1 the round trip ends with ``WAIT``, and a write it does not
    confirm is held (:mod:`unsign_worker.store.replication`): a claim that stays unconfirmed
    comes back as :data:`UNCONFIRMED` (the gateway is not called), an outcome as ``ignored``
    (no hook, and the job's lease brings it back).
    """
    if not pending and not claims:
        return [], []
    s = ctx.settings
    replication = ctx.replication
    single = len(pending) + len(claims) == 1 and not replication.enabled
    pipe = None if single else ctx.redis.pipeline(transaction=False)
    replies: list[Any] = []
    for item in pending:
        # Counted in the minute of the job's own finished_at, so that a requeue finds it there.
        minute = int(item.request.now // 60)
        if isinstance(item.request, SettleRequest):
            replies.append(ctx.dedup.settle(item.request, minute=minute, pipe=pipe))
        else:
            replies.append(ctx.dedup.finish_unclaimed(item.request, minute=minute, pipe=pipe))
    for c in claims:
        replies.append(ctx.dedup.claim(job_id=c.job_id, identity=c.identity,
                                       identity_masked=c.identity_masked,
                                       params_json=c.params_json, campaign=c.campaign,
                                       reference=c.reference, lease_seconds=s.lease_seconds,
                                       probe_after_seconds=s.breaker_probe_after_seconds,
                                       pipe=pipe, producer=c.producer))
    if pipe is not None:
        if replication.enabled:
            replication.add_wait(pipe)
        replies = pipe.execute()
    offset = len(pending)
    answers = [r if isinstance(r, Claim) else parse_claim(r)
               for r in replies[offset:offset + len(claims)]]
    decisions = [_decide(ctx, item, replies[i]) for i, item in enumerate(pending)]
    if replication.enabled and not replication.confirmed(replies[-1]):
        _hold(ctx, decisions, claims, answers)
    return decisions, answers


#: The answer standing for a claim no replica confirmed: the gateway is not called for it.
UNCONFIRMED = Claim(ClaimStatus.BUSY, detail="claim_unconfirmed")


def confirm_claim(ctx: WorkerContext, request: ClaimRequest, claim: Claim) -> Claim:
    """A claim made outside :func:`flush` (after a rate-limit wait), confirmed the same way."""
    if not ctx.replication.enabled or claim.status is not ClaimStatus.CLAIMED:
        return claim
    answers = [claim]
    _hold(ctx, [], [request], answers, waited=False)
    return answers[0]


def _hold(ctx: WorkerContext, decisions: list[Decision], claims: Sequence[ClaimRequest],
          answers: list[Claim], *, waited: bool = True) -> None:
    """Too few replicas confirmed the flush: hold its writes until they do (or are found gone,
    or half a lease passed), and take back whatever stays unconfirmed. A claim is known by the
    time (the Redis server's) its script wrote in the job's record (``updated_at``, returned as
    ``Claim.at``): a fencing token alone is not enough, since the new primary hands the lost
    token's number out again."""
    keys = ctx.keys
    held: list[tuple[str, int, Written]] = []
    for index, (request, answer) in enumerate(zip(claims, answers, strict=True)):
        if answer.status is ClaimStatus.CLAIMED:
            held.append(("claim", index, Written(keys.job(request.job_id), "updated_at",
                                                 answer.at)))
    for index, decision in enumerate(decisions):
        if decision.kind is not DecisionKind.IGNORED:
            held.append(("outcome", index, Written(keys.job(decision.job_id), "state",
                                                   decision.state)))
    found = ctx.replication.hold([w for _, _, w in held], what=f"{len(held)} write(s)",
                                 deadline=time.monotonic() + ctx.settings.lease_seconds / 2,
                                 waited=waited)
    for (kind, index, _), ok in zip(held, found, strict=True):
        if ok:
            continue
        if kind == "claim":
            log.warning("job %s: its claim was not confirmed on a replica; not sent, its lease "
                        "brings it back", claims[index].job_id)
            answers[index] = UNCONFIRMED
        else:
            was = decisions[index]
            log.warning("job %s: its outcome %s was not confirmed on a replica; not acted on, "
                        "its lease brings it back", was.job_id, was.state)
            decisions[index] = Decision(DecisionKind.IGNORED, was.job_id, was.state,
                                        code=was.code, detail="outcome not confirmed")


def _decide(ctx: WorkerContext, item: Pending, reply: Any) -> Decision:
    out = text(reply)
    decision = item.decision
    if item.is_settle and out == "stale":
        log.warning("job %s lost its claim on %s before settling as %s; a newer delivery "
                    "owns it", item.job_id, item.identity_masked, decision.state)
        return Decision(DecisionKind.IGNORED, item.job_id, decision.state, code=decision.code,
                        detail="stale claim")
    if not item.is_settle and out == "mismatch":
        log.error("refused a message for job %s: its parameters differ from the job's record "
                  "(a second message reusing the job id)", item.job_id)
        return Decision(DecisionKind.IGNORED, item.job_id, "mismatch",
                        detail="the message's parameters differ from the job's record")
    if not item.is_settle and out == "terminal":
        return Decision(DecisionKind.IGNORED, item.job_id, decision.state,
                        detail="already finished")
    if decision.state == JobState.DEAD_LETTERED:
        log.warning("job %s dead-lettered: %s", item.job_id, decision.code)
    return decision
