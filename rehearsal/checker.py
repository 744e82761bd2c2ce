"""The checker: invariants (a)-(f) of a round, as pure functions over its records
(:class:`rehearsal.records.History`), none of which the product writes itself except the job
records and campaign counters read at the end.

(a) every enqueued job is terminal within ``bound`` seconds after the last fault healed;
(b) no further ``customer_unsign`` for an agreement after any worker has read an answer for it;
(c) no job rejected or dead-lettered for an agreement that our own earlier request unsigned;
(d) the success hook exactly once per idempotency key (and once for every job reported a
    success);
(e) no job in a success state whose agreement is still signed at the gateway;
(f) each campaign's counters equal its job records.

What "read an answer" means for (b): the gateway wrote a final answer (``T`` or a business
code; not a system error, which the rules ask to re-send, nor a transport fault) and no fault
cut the requesting host from the gateway, or killed it, between just before the answer and
:data:`READ_SLACK_SECONDS` after it. An answer written into a cut link may never have been read,
and a second request is then what the protocol asks for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from rehearsal.records import (
    FAILURE_STATES,
    SUCCESS_STATES,
    TERMINAL_STATES,
    FaultWindow,
    GatewayRequest,
    History,
)

INVARIANTS: dict[str, str] = {
    "a": "every enqueued job terminal within the bound after the last heal",
    "b": "no customer_unsign after a worker read an answer for the agreement",
    "c": "no job rejected or dead-lettered for an agreement our request unsigned",
    "d": "the success hook exactly once per idempotency key",
    "e": "no job reported a success for an agreement still signed at the gateway",
    "f": "campaign counters equal the job records",
}
UNSIGN = "customer_unsign"
#: answers the rules ask to re-send the original request after
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "ILLEGAL_SYSTEM"})
#: faults after which an answer written to the host may never have been read
PATH_FAULTS = frozenset({"gateway_cut", "host_kill", "slow_gateway", "clock_skew"})
#: how long after the gateway wrote an answer a worker may still be reading it, seconds
READ_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Violation:
    invariant: str
    #: the job, agreement, idempotency key or campaign it concerns
    subject: str
    detail: str
    #: when the history first went wrong (epoch seconds), to attribute it to a fault: (a) the
    #: last request for the job's agreement (a job never sent: its creation, at the earliest
    #: the first fault), (b) the answer read
    #: before the request sent again, (c) our request that unsigned, (d) the first call of a
    #: repeated hook (a missing one: the job's end), (e) the job's end, (f) the reading
    at: float


def check(history: History) -> list[Violation]:
    """Every violation of (a)-(f), in that order."""
    return [*terminal_in_time(history), *no_unsign_after_answer(history),
            *no_failure_after_our_unsign(history), *hook_once(history),
            *no_success_while_signed(history), *campaign_counters(history)]


def terminal_in_time(history: History) -> list[Violation]:
    """(a) Every enqueued job has a record, is terminal, and ended by the last heal + bound."""
    deadline = history.last_heal + history.bound
    last_seen: dict[str, float] = {}
    for request in history.requests:
        last_seen[request.agreement] = max(last_seen.get(request.agreement, 0.0),
                                           request.received_at)
    found = []
    for job_id in history.enqueued:
        job = history.jobs.get(job_id)
        if job is None:
            found.append(Violation("a", job_id, "enqueued, but no job record",
                                   history.observed_at))
            continue
        # when it was last sent; a job never sent was lost by a fault, at the earliest the first
        first_fault = min((f.start for f in history.faults), default=0.0)
        at = last_seen.get(job.agreement) or max(job.created_at or 0.0, first_fault)
        origin = f"campaign {job.campaign}" if job.campaign else "single job"
        if job.state not in TERMINAL_STATES:
            found.append(Violation("a", job_id, f"{origin}, still {job.state} when the records "
                                   f"were read, {history.observed_at - history.last_heal:.0f}s "
                                   f"after the last heal", at))
        elif job.finished_at is not None and job.finished_at > deadline:
            late = job.finished_at - history.last_heal
            found.append(Violation("a", job_id, f"{origin}, {job.state} {late:.1f}s after the "
                                   f"last heal (bound {history.bound:.0f}s)", at))
    return found


def _unread(request: GatewayRequest, faults: list[FaultWindow]) -> bool:
    """A fault on the requester's path may have kept it from reading this answer."""
    return any(f.kind in PATH_FAULTS and request.peer in f.hosts
               and f.start - READ_SLACK_SECONDS <= request.answered_at <= f.heal
               + READ_SLACK_SECONDS for f in faults)


def read_answer(request: GatewayRequest, faults: list[FaultWindow]) -> bool:
    """The gateway wrote a final answer and the requester was there to read it."""
    return (request.service == UNSIGN and request.action == "answer"
            and request.code not in RETRYABLE_CODES and not _unread(request, faults))


def no_unsign_after_answer(history: History) -> list[Violation]:
    """(b) One violation per ``customer_unsign`` received after an answer for the same
    agreement was read (plus the slack)."""
    by_agreement: dict[str, list[GatewayRequest]] = defaultdict(list)
    for request in history.requests:
        if request.service == UNSIGN and request.agreement:
            by_agreement[request.agreement].append(request)
    found = []
    for agreement, requests in by_agreement.items():
        requests.sort(key=lambda r: r.received_at)
        first_read: GatewayRequest | None = None
        for request in requests:
            if first_read is not None and (request.received_at
                                           > first_read.answered_at + READ_SLACK_SECONDS):
                after = request.received_at - first_read.answered_at
                found.append(Violation(
                    "b", agreement, f"customer_unsign from {request.peer} answered "
                    f"{request.code or request.action} {after:.1f}s after {first_read.peer} "
                    f"read {first_read.code}", first_read.answered_at))
            if first_read is None and read_answer(request, history.faults):
                first_read = request
    return found


def _applied(history: History) -> dict[str, float]:
    """Agreement -> when our first request unsigned it."""
    applied: dict[str, float] = {}
    for request in history.requests:
        if request.applied and request.agreement not in applied:
            applied[request.agreement] = request.received_at
    return applied


def no_failure_after_our_unsign(history: History) -> list[Violation]:
    """(c) A job reported rejected or dead-lettered, for an agreement our request unsigned."""
    applied = _applied(history)
    return [Violation("c", job.job_id, f"{job.state}, but our request unsigned {job.agreement} "
                      "at the gateway", applied[job.agreement])
            for job in history.jobs.values()
            if job.state in FAILURE_STATES and job.agreement in applied]


def hook_once(history: History) -> list[Violation]:
    """(d) No idempotency key called twice; every agreement reported unsigned has its call."""
    calls = Counter(call.key for call in history.hooks)
    found = []
    first: dict[str, float] = {}
    for call in sorted(history.hooks, key=lambda c: c.at):
        if call.key in first:
            found.append(Violation("d", call.key, f"hook called {calls[call.key]} times "
                                   f"(again for job {call.job_id})", first[call.key]))
        first.setdefault(call.key, call.at)
    hooked = {call.agreement for call in history.hooks}
    found += [Violation("d", job.job_id, f"{job.state}, but the hook never ran for "
                        f"{job.agreement}", job.finished_at or history.observed_at)
              for job in history.jobs.values()
              if job.state in SUCCESS_STATES and job.agreement not in hooked]
    return found


def no_success_while_signed(history: History) -> list[Violation]:
    """(e) A job reported a success, but its agreement is still signed at the gateway."""
    applied = _applied(history)
    return [Violation("e", job.job_id, f"{job.state}, but {job.agreement} is still signed at "
                      "the gateway", job.finished_at or history.observed_at)
            for job in history.jobs.values()
            if job.state in SUCCESS_STATES and job.agreement in history.initially_signed
            and job.agreement not in applied]


def campaign_counters(history: History) -> list[Violation]:
    """(f) Each campaign's outcome counter equals the number of its records in that state."""
    found = []
    for campaign, counters in sorted(history.campaign_counts.items()):
        records = Counter(job.state for job in history.jobs.values()
                          if job.campaign == campaign and job.state in TERMINAL_STATES)
        for state in sorted(set(counters) | set(records)):
            if counters.get(state, 0) != records.get(state, 0):
                found.append(Violation("f", campaign, f"{state}: counter "
                                       f"{counters.get(state, 0)}, records "
                                       f"{records.get(state, 0)}", history.observed_at))
    return found
