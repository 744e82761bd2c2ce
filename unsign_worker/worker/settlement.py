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

from unsign_worker.store.claims import Claim, parse_claim, text
from unsign_worker.store.requests import ClaimRequest, FinishRequest, SettleRequest
from unsign_worker.store.states import JobState
from unsign_worker.worker.context import WorkerContext

log = logging.getLogger(__name__)

#: After a WAIT that came back short, seconds during which writes do not wait for replicas.
REPLICA_DEGRADED_SECONDS = 30


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

    Returns the decisions of the pending writes (same order) and the claims' answers.
    """
    if not pending and not claims:
        return [], []
    s = ctx.settings
    single = len(pending) + len(claims) == 1
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
        replies = pipe.execute()
    _replicate(ctx)
    decisions = [_decide(ctx, item, replies[i]) for i, item in enumerate(pending)]
    offset = len(pending)
    answers = [r if isinstance(r, Claim) else parse_claim(r) for r in replies[offset:]]
    return decisions, answers


def _replicate(ctx: WorkerContext) -> None:
    """With ``UNSIGN_REPLICA_ACKS`` > 0, wait until that many replicas hold what was just
    written: the claims before the gateway is called (so a failover cannot forget that a request
    may have reached it), the outcomes before the hook runs and the message is acknowledged (so
    it cannot forget an unsign). Fewer replicas in time is logged and the job goes on:
    replication narrows the window, it cannot close it (docs/reliability.md). Then, for
    ``REPLICA_DEGRADED_SECONDS``, no WAIT is made (the replicas are gone, e.g. after a failover
    that left none: waiting the full timeout on every write would only slow every job down)."""
    s = ctx.settings
    now = time.time()
    if s.replica_acks <= 0 or now - ctx.replica_warned_at < REPLICA_DEGRADED_SECONDS:
        return
    acked = int(ctx.redis.wait(s.replica_acks, s.replica_wait_ms))
    if acked < s.replica_acks:
        ctx.replica_warned_at = now
        log.warning("only %d of %d replica(s) confirmed the last writes within %d ms; a "
                    "failover now could lose them; writes go on without waiting for %ds",
                    acked, s.replica_acks, s.replica_wait_ms, REPLICA_DEGRADED_SECONDS)


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
