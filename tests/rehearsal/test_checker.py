"""The checker's invariants over hand-made histories: each one finds its violation, and a
clean history passes them all."""

from __future__ import annotations

from dataclasses import replace

from rehearsal.checker import (
    campaign_counters,
    check,
    hook_once,
    no_failure_after_our_unsign,
    no_success_while_signed,
    no_unsign_after_answer,
    terminal_in_time,
)
from rehearsal.records import FaultWindow, GatewayRequest, History, HookCall, JobRecord

T0 = 1_800_000_000.0


def unsign(agreement: str, at: float, *, peer: str = "worker1", code: str = "T",
           action: str = "answer", applied: bool | None = None) -> GatewayRequest:
    return GatewayRequest(received_at=T0 + at, answered_at=T0 + at + 0.1, peer=peer,
                          service="customer_unsign", agreement=agreement, code=code,
                          action=action, applied=code == "T" if applied is None else applied)


def job(job_id: str, agreement: str, state: str = "unsigned", *, finished: float = 5.0,
        campaign: str = "c1") -> JobRecord:
    return JobRecord(job_id=job_id, state=state, agreement=agreement, campaign=campaign,
                     created_at=T0, finished_at=T0 + finished)


def clean() -> History:
    """Two agreements unsigned once each, one not signed (rejected), one fault healed."""
    return History(
        requests=[unsign("ag-1", 1.0), unsign("ag-2", 2.0),
                  unsign("ag-3", 3.0, code="STATUS_CUSTOMER_SIGN")],
        hooks=[HookCall("unsign:c1", "j1", "ag-1", T0 + 1.5),
               HookCall("unsign:c2", "j2", "ag-2", T0 + 2.5)],
        jobs={"j1": job("j1", "ag-1"), "j2": job("j2", "ag-2"),
              "j3": job("j3", "ag-3", "rejected")},
        enqueued=["j1", "j2", "j3"],
        campaign_counts={"c1": {"unsigned": 2, "rejected": 1}},
        initially_signed=frozenset({"ag-1", "ag-2"}),
        faults=[FaultWindow("redis_cut", frozenset({"worker2"}), T0 + 1.0, T0 + 4.0)],
        bound=20.0, observed_at=T0 + 60.0)


def test_a_clean_history_passes_every_invariant():
    assert check(clean()) == []


def test_a_job_not_terminal_or_terminal_too_late_violates_a():
    history = clean()
    history.jobs["j1"] = job("j1", "ag-1", "in_flight")
    history.jobs["j2"] = job("j2", "ag-2", finished=4.0 + 25.0)
    history.enqueued.append("j-lost")
    found = terminal_in_time(history)
    assert [(v.invariant, v.subject) for v in found] == [("a", "j1"), ("a", "j2"),
                                                         ("a", "j-lost")]
    assert "25.0s after the last heal (bound 20s)" in found[1].detail
    # attributed to when its agreement was last sent, or for a job never sent to the first fault
    assert found[0].at == T0 + 1.0
    assert found[2].at == history.observed_at
    assert terminal_in_time(clean()) == []


def test_an_unsign_after_a_read_answer_violates_b():
    history = clean()
    # worker2 re-sends ag-1 five seconds after worker1 read its T
    history.requests.append(unsign("ag-1", 6.0, peer="worker2", code="STATUS_CUSTOMER_SIGN"))
    found = no_unsign_after_answer(history)
    assert [(v.invariant, v.subject) for v in found] == [("b", "ag-1")]
    assert "after worker1 read T" in found[0].detail


def test_a_second_unsign_after_an_answer_that_may_not_have_been_read_is_no_violation_of_b():
    history = clean()
    # the answer of ag-2 was written while worker1 was cut from the gateway, a system error
    # asks for a re-send, and a lost answer was never read
    history.requests += [unsign("ag-2", 9.0, code="STATUS_CUSTOMER_SIGN")]
    history.faults.append(FaultWindow("gateway_cut", frozenset({"worker1"}), T0 + 1.5, T0 + 8))
    history.requests += [unsign("ag-5", 10.0, code="SYSTEM_ERROR", applied=False),
                         unsign("ag-5", 11.0),
                         unsign("ag-6", 10.0, action="LOST_ANSWER", code=""),
                         unsign("ag-6", 11.0, code="STATUS_CUSTOMER_SIGN")]
    assert no_unsign_after_answer(history) == []


def test_a_rejection_of_an_agreement_we_unsigned_violates_c():
    history = clean()
    # ag-2 was unsigned by our first request; the job reports the second answer, a refusal
    history.jobs["j2"] = job("j2", "ag-2", "rejected")
    found = no_failure_after_our_unsign(history)
    assert [(v.invariant, v.subject) for v in found] == [("c", "j2")]
    assert no_failure_after_our_unsign(clean()) == []


def test_a_hook_run_twice_or_never_violates_d():
    history = clean()
    history.hooks.append(HookCall("unsign:c1", "j1", "ag-1", T0 + 30))
    history.hooks = [h for h in history.hooks if h.agreement != "ag-2"]
    found = hook_once(history)
    assert [(v.invariant, v.subject) for v in found] == [("d", "unsign:c1"), ("d", "j2")]
    assert "called 2 times" in found[0].detail
    assert "never ran" in found[1].detail
    assert hook_once(clean()) == []


def test_a_success_for_an_agreement_still_signed_violates_e():
    history = clean()
    history.requests = [r for r in history.requests if r.agreement != "ag-2"]
    found = no_success_while_signed(history)
    assert [(v.invariant, v.subject) for v in found] == [("e", "j2")]
    assert no_success_while_signed(clean()) == []


def test_campaign_counters_that_differ_from_the_records_violate_f():
    history = clean()
    history.campaign_counts["c1"] = {"unsigned": 3, "rejected": 1}
    history.jobs["j4"] = replace(job("j4", "ag-4", "dead_lettered"), campaign="c1")
    found = campaign_counters(history)
    assert [(v.invariant, v.subject, v.detail) for v in found] == [
        ("f", "c1", "dead_lettered: counter 0, records 1"),
        ("f", "c1", "unsigned: counter 3, records 2")]
    assert campaign_counters(clean()) == []
