"""The watch that stops taking jobs while the gateway is unreachable, probes, and resumes."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.plugins.worker_fixtures import wait_for
from unsign_worker.worker.gateway_watch import GatewayWatch
from unsign_worker.worker.reachability import Reachability


class _Probe:
    """Fails while ``down`` is set; counts its calls."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.down.set()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.down.is_set():
            raise TimeoutError("timed out")


@pytest.fixture
def watch_parts():
    reach = Reachability("mapi.alipay.com", threshold=2)
    probe = _Probe()
    actions: list[str] = []
    watch = GatewayWatch(reach, probe=probe, pause=lambda: actions.append("pause"),
                         resume=lambda: actions.append("resume"), base_seconds=0.01,
                         cap_seconds=0.05)
    watch.start()
    yield reach, probe, actions
    watch.stop()
    watch.join(timeout=5)


def test_an_unreachable_gateway_pauses_the_consumer_probes_and_resumes_once(watch_parts, caplog):
    reach, probe, actions = watch_parts
    caplog.set_level(logging.DEBUG, logger="unsign_worker.worker.gateway_watch")
    # When requests fail in a row
    reach.failed("connect timeout", 1_700_000_000.0)
    reach.failed("connect timeout", 1_700_000_001.0)
    # Then the consumer is paused, with one warning naming the host, the time and the cause
    wait_for(lambda: actions == ["pause"] and probe.calls >= 3, timeout=10,
             what="the pause and a few failed probes")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["gateway mapi.alipay.com unreachable from this worker since 22:13:20 UTC "
                        "(connect timeout), not taking jobs until it answers"]
    # When a probe gets through, the consumer resumes and the end is said once
    probe.down.clear()
    wait_for(lambda: actions == ["pause", "resume"], timeout=10, what="the resume")
    assert reach.reachable
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "gateway mapi.alipay.com reachable again after" in warnings[1]


def test_nothing_happens_while_the_gateway_answers(watch_parts):
    reach, probe, actions = watch_parts
    reach.failed("read timeout", 1.0)
    reach.answered(1.5)
    reach.failed("read timeout", 2.0)
    assert not reach.tripped.wait(0.2)
    assert actions == [] and probe.calls == 0


def test_probes_back_off_up_to_the_cap():
    reach = Reachability("gw", threshold=1)
    waits: list[float] = []

    class _Watch(GatewayWatch):
        def __init__(self) -> None:
            super().__init__(reach, probe=self._fail, pause=lambda: None, resume=lambda: None,
                             base_seconds=1.0, cap_seconds=4.0)
            self._stop_event = _Recorder(waits)

        @staticmethod
        def _fail() -> None:
            raise ConnectionRefusedError("refused")

    reach.failed("refused", 1.0)
    _Watch()._ride_out()
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]


class _Recorder:
    """Stands for the stop event: records each wait, stops after five."""

    def __init__(self, waits: list[float]) -> None:
        self.waits = waits

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return len(self.waits) >= 5

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        pass


def test_a_stall_with_a_failed_handshake_declares_the_gateway_unreachable_and_aborts():
    # Given a request waiting for 5 s with no answer, and a gateway that does not shake hands
    reach = Reachability("gw")
    reach.sending(100.0)
    probe = _Probe()
    aborted: list[bool] = []
    watch = GatewayWatch(reach, probe=probe, pause=lambda: None, resume=lambda: None,
                         abort=lambda: aborted.append(True), stall_seconds=3, clock=lambda: 105.0)
    # When the watch looks
    watch.check_stall()
    # Then it probed once and declared the outage from when the wait began
    assert probe.calls == 1
    assert reach.outage is not None and reach.outage.since == 100.0
    assert reach.outage.cause.startswith("no answer for 5s and no handshake: ")
    # and riding it out gives up on the requests in flight
    watch._stop_event.set()
    watch._ride_out()
    assert aborted == [True]


def test_a_slow_gateway_that_shakes_hands_is_left_alone():
    reach = Reachability("gw")
    reach.sending(100.0)
    probe = _Probe()
    probe.down.clear()
    now = [105.0]
    watch = GatewayWatch(reach, probe=probe, pause=lambda: None, resume=lambda: None,
                         stall_seconds=3, clock=lambda: now[0])
    watch.check_stall()
    now[0] = 106.0
    watch.check_stall()  # not probed again within a stall's length
    assert probe.calls == 1 and reach.reachable
