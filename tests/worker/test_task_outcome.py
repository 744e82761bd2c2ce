"""What a finished task tells Flower: pure checks of :mod:`unsign_worker.worker.task_outcome`."""

from __future__ import annotations

import logging

import pytest
from celery.exceptions import Retry

from unsign_worker.worker.settlement import Decision, DecisionKind
from unsign_worker.worker.task_outcome import (
    MAX_NAMED,
    BatchNotDone,
    JobNotDone,
    JobRetry,
    check_batch,
    check_job,
    log_retry,
)


def test_celerys_retry_line_names_the_cause_not_only_the_countdown() -> None:
    # Celery logs "Task ...[id] retry: <str(Retry)>" for a single job handed back
    cause = "TransportError: read timeout while reading the answer"
    assert str(Retry(exc=JobRetry(cause), when=5)) == f"Retry in 5s: {cause}"


def test_a_batch_job_handed_back_is_logged_with_its_cause(caplog) -> None:
    caplog.set_level(logging.INFO, logger="unsign_worker.worker.task_outcome")
    log_retry(Decision(DecisionKind.RETRY, "j1", "retrying", code="NETWORK_ERROR", countdown=3,
                       detail="TransportError: connect timeout"))
    assert caplog.messages == ["job j1 will retry in 3s: TransportError: connect timeout"]


@pytest.mark.parametrize("state", ["unsigned", "already_unsigned", "duplicate"])
def test_a_job_that_ended_well_returns_its_outcome(state: str) -> None:
    result = check_job(Decision("done", "j1", state), {"reference": "r1"})
    assert result == {"job_id": "j1", "outcome": state, "code": ""}


@pytest.mark.parametrize("state,code", [("rejected", "NOT_EXIST_CUST_SIGN"),
                                        ("dead_lettered", "STATUS_TYPE_CODE"),
                                        ("parked", "ILLEGAL_SIGN"), ("cancelled", ""),
                                        ("malformed", ""), ("mismatch", "")])
def test_a_job_that_did_not_end_well_raises_an_expected_error_naming_it(
        state: str, code: str) -> None:
    kind = "ignored" if state in ("malformed", "mismatch") else "done"
    with pytest.raises(JobNotDone) as caught:
        check_job(Decision(kind, "j1", state, code=code, detail="why"), {"reference": "ord-7"})
    text = str(caught.value)
    assert text.startswith(f"{state} {code}".strip()) and "job j1, reference ord-7" in text


def test_a_redelivered_copy_dropped_because_another_worker_holds_it_is_not_a_failure() -> None:
    assert check_job(Decision("ignored", "j1", "in_flight"), {})["outcome"] == "in_flight"


def test_a_job_parked_by_a_paused_campaign_is_not_a_failure_but_one_parked_by_the_breaker_is(
        ) -> None:
    paused = Decision("done", "j1", "parked", detail="campaign paused")
    assert check_job(paused, {})["outcome"] == "parked"
    with pytest.raises(JobNotDone, match="parked ILLEGAL_SIGN: circuit breaker open"):
        check_job(Decision("done", "j2", "parked", code="ILLEGAL_SIGN",
                           detail="circuit breaker open"), {})


def test_a_batch_names_its_counts_and_its_failed_jobs() -> None:
    decisions = [Decision("done", "a", "unsigned"), Decision("retry", "b", "retrying"),
                 Decision("done", "c", "dead_lettered", code="TOO_MUCH_TYPE_CODE")]
    messages = [{"reference": "ra"}, {"reference": "rb"}, {"reference": "rc"}]
    with pytest.raises(BatchNotDone) as caught:
        check_batch(decisions, messages)
    text = str(caught.value)
    assert text.startswith("1 of 3 jobs did not end unsigned")
    assert "'outcomes': {'unsigned': 1, 'retrying': 1, 'dead_lettered': 1}" in text
    assert "dead_lettered TOO_MUCH_TYPE_CODE [job c, reference rc]" in text
    assert "job a" not in text and "job b" not in text
    ok = check_batch(decisions[:2], messages[:2])
    assert ok == {"jobs": 2, "outcomes": {"unsigned": 1, "retrying": 1}}


def test_a_batch_names_at_most_twenty_failed_jobs() -> None:
    decisions = [Decision("done", f"j{i}", "rejected", code="X") for i in range(30)]
    with pytest.raises(BatchNotDone) as caught:
        check_batch(decisions, [{}] * 30)
    assert str(caught.value).count("rejected X [job") == MAX_NAMED
    assert str(caught.value).endswith("and 10 more")
