"""Outages are waited out and said once: the shared loop of the worker's threads, ride_out."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from unsign_worker.store.outage import Outage, ride_out
from unsign_worker.worker.background import LoopThread


class FlakyStep:
    """Fails with ``error`` ``failures`` times, then succeeds; records the calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.succeeded = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        if self.calls >= self.failures + 2:
            self.succeeded.set()


def run_loop(step: FlakyStep) -> None:
    loop = LoopThread("test-loop", step, pause=0.01, retry=0.01, what="sweep")
    loop.outage = Outage("Redis", loop.outage._say, first=0.01, cap=0.02)
    loop.start()
    try:
        assert step.succeeded.wait(30), "the loop did not carry on after the outage"
    finally:
        loop.stop()
        loop.join(5)


def test_the_loop_says_an_outage_once_without_tracebacks_and_carries_on(caplog):
    step = FlakyStep(6, redis.ConnectionError("Error 111 connecting to 127.0.0.1:6399."))
    with caplog.at_level(logging.INFO):
        run_loop(step)
    texts = [r.getMessage() for r in caplog.records]
    assert sum("Redis unavailable since" in t for t in texts) == 1, texts
    assert sum("Redis available again" in t for t in texts) == 1, texts
    assert not any(r.exc_info for r in caplog.records), "a traceback per attempt"
    assert next(t for t in texts if "unavailable" in t).startswith("sweep: ")


@pytest.mark.parametrize("error", [redis.TimeoutError("timed out"),
                                   redis.ReadOnlyError("READONLY You can't write against a "
                                                       "read only replica."),
                                   redis.BusyLoadingError("LOADING")])
def test_a_failover_or_a_loading_replica_is_an_outage_too(caplog, error):
    step = FlakyStep(2, error)
    with caplog.at_level(logging.INFO):
        run_loop(step)
    assert not any(r.exc_info for r in caplog.records)


def test_a_bug_in_a_step_keeps_its_traceback(caplog):
    step = FlakyStep(1, KeyError("bug"))
    with caplog.at_level(logging.INFO):
        run_loop(step)
    assert any(r.exc_info for r in caplog.records)


def test_ride_out_backs_off_and_gives_up_at_the_deadline():
    said: list[str] = []
    slept: list[float] = []

    def down() -> None:
        raise redis.ConnectionError("refused")

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    outage = Outage("Redis", said.append, first=0.05, cap=0.2)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        ride_out(down, outage, deadline=started + 1.5, sleep=sleep)
    assert time.monotonic() - started <= 1.5
    assert len(said) == 1
    assert slept[:3] == pytest.approx([0.05, 0.1, 0.2], rel=0.25)
    assert max(slept) <= 0.2 * 1.2


def test_a_long_outage_keeps_the_capped_delay():
    outage = Outage("Redis", lambda _: None, first=0.5, cap=5)
    delays = [outage.failed(redis.ConnectionError("refused")) for _ in range(5000)]
    assert max(delays) <= 6 and min(delays[10:]) >= 4
