"""What a finished task tells Flower: a job that did not end well is a failed task.

Flower marks a task FAILURE only from a ``task-failed`` event, and a task that returns normally is
SUCCESS whatever its result says. So a job that ended ``rejected``, ``dead_lettered``, ``parked``
or ``cancelled`` (or whose message was malformed, or refused as not matching its job's record)
raises :class:`JobNotDone` after its outcome is written. The task lists it in ``Task.throws``:
Celery marks it failed and sends the event, logs one line without a traceback, acknowledges the
message (``task_acks_on_failure_or_timeout``) and retries nothing. A batch raises
:class:`BatchNotDone` naming its counts and its failed jobs.

Only outcomes, codes, job ids and references go into the text: never parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from unsign_worker.protocol.exceptions import UnsignError
from unsign_worker.store.states import JobState
from unsign_worker.worker.settlement import Decision, DecisionKind

log = logging.getLogger(__name__)

#: Outcomes that leave a job needing a person (or a breaker reset) to finish; ``mismatch`` is a
#: message refused because its parameters differ from its job's record (a forged or stale copy:
#: someone should look at where it came from).
FAILED_OUTCOMES = frozenset({"rejected", "dead_lettered", "parked", "cancelled", "malformed",
                             "mismatch"})
#: The processor's reason for a job parked by a paused campaign.
PAUSED_DETAIL = "campaign paused"
#: Failed jobs a batch's error text names one by one (the counts cover the rest).
MAX_NAMED = 20


class JobNotDone(UnsignError):
    """The job ended without unsigning; the text gives outcome, code, job id and reference."""


class BatchNotDone(UnsignError):
    """A batch holding at least one job that ended without unsigning."""


class JobRetry(UnsignError):
    """Why a job is handed back (given to Celery's ``retry``, whose log line shows it)."""

    def __repr__(self) -> str:  # Celery shows the repr: "Retry in 5s: <this>"
        return str(self) or "no cause recorded"


def log_retry(decision: Decision) -> None:
    """One line for a job of a batch handed back as its own message, with its cause."""
    log.info("job %s will retry in %.0fs: %s", decision.job_id, decision.countdown,
             decision.detail or decision.code or "no cause recorded")


def is_failure(decision: Decision) -> bool:
    """True for a job that ended (or was dropped) without unsigning.

    A redelivered copy dropped because another worker holds the job (``ignored``/``in_flight``)
    is not a failure: the job is being handled elsewhere. Nor is a job parked because an
    operator paused its campaign: it runs on resume. A job parked by the open breaker is one:
    the line is stopped and someone must act.
    """
    if decision.state == JobState.PARKED and decision.detail == PAUSED_DETAIL:
        return False
    return decision.state in FAILED_OUTCOMES and decision.kind != DecisionKind.RETRY


def describe(decision: Decision, reference: str = "") -> str:
    """``dead_lettered TOO_MUCH_TYPE_CODE: <reason> [job <id>, reference <ref>]``."""
    text = decision.state + (f" {decision.code}" if decision.code else "")
    if decision.detail:
        text += f": {decision.detail}"
    where = f"job {decision.job_id}" + (f", reference {reference}" if reference else "")
    return f"{text} [{where}]"


def check_job(decision: Decision, message: Mapping[str, Any]) -> dict[str, Any]:
    """The task's result, or :class:`JobNotDone` when the job did not end well."""
    if is_failure(decision):
        raise JobNotDone(describe(decision, _reference(message)))
    return decision.result()


def check_batch(decisions: Sequence[Decision], messages: Sequence[Mapping[str, Any]]
                ) -> dict[str, Any]:
    """The batch's result (``{'jobs': n, 'outcomes': {...}}``), or :class:`BatchNotDone`."""
    counts: dict[str, int] = {}
    failed: list[str] = []
    for decision, message in zip(decisions, messages, strict=True):
        counts[decision.state] = counts.get(decision.state, 0) + 1
        if is_failure(decision):
            failed.append(describe(decision, _reference(message)))
    result = {"jobs": len(decisions), "outcomes": counts}
    if failed:
        named = "; ".join(failed[:MAX_NAMED])
        more = f"; and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
        raise BatchNotDone(f"{len(failed)} of {len(decisions)} jobs did not end unsigned "
                           f"{result}: {named}{more}")
    return result


def _reference(message: Mapping[str, Any]) -> str:
    reference = message.get("reference") if isinstance(message, Mapping) else ""
    return reference if isinstance(reference, str) else ""
