"""The gateway's reachability from one worker process: a pure state machine."""

from __future__ import annotations

import pytest

from unsign_worker.worker.reachability import Outage, Reachability


def test_faults_in_a_row_make_the_gateway_unreachable_since_the_first():
    # Given a reachability that trips on the third fault
    r = Reachability("mapi.alipay.com", threshold=3, window_seconds=60)
    # When three requests in a row get no answer
    assert r.failed("read timeout", 100.0) is None
    assert r.failed("read timeout", 101.0) is None
    outage = r.failed("connect timeout", 102.0)
    # Then the third declares the outage, dated from the first, with the last cause
    assert outage == Outage(since=100.0, cause="connect timeout")
    assert not r.reachable and r.tripped.is_set()
    assert r.outage == outage


def test_a_single_slow_answer_never_trips_it():
    r = Reachability("gw", threshold=3)
    for now in range(10):
        assert r.failed("read timeout", float(now)) is None
        r.answered(now + 0.5)  # the other requests are answered
    assert r.reachable and not r.tripped.is_set()


def test_faults_older_than_the_window_are_forgotten():
    r = Reachability("gw", threshold=3, window_seconds=10)
    r.failed("read timeout", 0.0)
    r.failed("read timeout", 5.0)
    assert r.failed("read timeout", 12.0) is None  # the first one left the window
    assert r.reachable
    assert r.failed("read timeout", 13.0) == Outage(5.0, "read timeout")


def test_only_the_fault_that_trips_reports_the_outage():
    r = Reachability("gw", threshold=1)
    assert r.failed("reset", 1.0) is not None
    assert r.failed("reset", 2.0) is None  # already unreachable
    assert r.outage == Outage(1.0, "reset")


def test_an_answer_while_unreachable_does_not_end_the_outage_a_probe_does():
    r = Reachability("gw", threshold=1)
    r.failed("connect timeout", 10.0)
    r.answered(11.0)
    assert not r.reachable
    assert r.probe_succeeded(55.0) == 45.0
    assert r.reachable and not r.tripped.is_set() and r.outage is None
    assert r.probe_succeeded(60.0) == 0.0  # nothing to end


def test_after_a_probe_it_takes_a_new_run_of_faults_to_trip_again():
    r = Reachability("gw", threshold=2)
    r.failed("a", 1.0)
    r.failed("b", 2.0)
    r.probe_succeeded(3.0)
    assert r.failed("c", 4.0) is None
    assert r.failed("d", 5.0) == Outage(4.0, "d")


@pytest.mark.parametrize(("options", "message"), [
    ({"threshold": 0}, "threshold must be at least 1"),
    ({"window_seconds": 0}, "window_seconds must be positive"),
])
def test_bad_values_are_refused_when_built(options, message):
    with pytest.raises(ValueError, match=message):
        Reachability("gw", **options)


def test_repr_names_the_host_and_the_outage():
    r = Reachability("mapi.alipay.com", threshold=1)
    r.failed("connect timeout", 1.0)
    assert "mapi.alipay.com" in repr(r) and "connect timeout" in repr(r)


def test_requests_waiting_with_no_answer_make_a_stall_once_long_enough():
    r = Reachability("gw")
    assert r.stalled(100.0, 3) is None  # nothing waits
    first = r.sending(10.0)
    r.sending(11.0)
    assert r.stalled(12.0, 3) is None  # not long enough
    assert r.stalled(13.5, 3) == 3.5  # the oldest has waited 3.5 s, nothing answered
    r.answered(13.0)  # another request was answered meanwhile: the gateway is there
    assert r.stalled(14.0, 3) is None
    assert r.stalled(16.0, 3) == 3.0
    r.done(first)
    r.done(first)  # twice is harmless


def test_a_declared_outage_trips_it_and_ends_the_stall():
    r = Reachability("gw")
    r.sending(0.0)
    assert r.declare("no answer for 5s and no handshake: timed out", 2.0) == Outage(
        2.0, "no answer for 5s and no handshake: timed out")
    assert r.tripped.is_set() and r.stalled(10.0, 3) is None
    assert r.declare("again", 3.0) is None
