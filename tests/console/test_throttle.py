"""Sign-in throttling, on a fake clock (no test sleeps): five failures of one (user, address)
pair within a minute lock that pair out with a growing, capped penalty; other addresses and
other users are not affected; a success after the penalty forgets the pair; the table stays
bounded under a flood of made-up names or addresses."""

from __future__ import annotations

import tracemalloc

from unsign_worker.console.throttle import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, **kwargs: int) -> LoginThrottle:
    return LoginThrottle(clock=clock, **kwargs)


def fail(throttle: LoginThrottle, times: int, user: str = "ops", address: str = "10.0.0.1"
         ) -> list[float]:
    return [throttle.failed(user, address) for _ in range(times)]


def test_five_failures_within_a_minute_lock_the_pair_out_and_retry_after_counts_down() -> None:
    clock = FakeClock()
    throttle = make(clock)
    # Given four failures, the pair may still try
    assert fail(throttle, 4) == [0, 0, 0, 0]
    assert throttle.retry_after("ops", "10.0.0.1") == 0
    # When the fifth comes within the minute
    clock.advance(59)
    assert throttle.failed("ops", "10.0.0.1") == 60
    # Then the pair waits a minute, counted down by the clock
    assert throttle.retry_after("ops", "10.0.0.1") == 60
    clock.advance(59.5)
    assert throttle.retry_after("ops", "10.0.0.1") == 1
    clock.advance(0.5)
    assert throttle.retry_after("ops", "10.0.0.1") == 0


def test_other_addresses_and_other_users_are_not_affected() -> None:
    clock = FakeClock()
    throttle = make(clock)
    fail(throttle, 5)
    assert throttle.retry_after("ops", "10.0.0.1") == 60
    # the real user from their own address, another user from the attacker's
    assert throttle.retry_after("ops", "10.0.0.2") == 0
    assert throttle.retry_after("lead", "10.0.0.1") == 0
    assert throttle.failed("ops", "10.0.0.2") == 0


def test_failures_spread_over_more_than_a_minute_do_not_lock() -> None:
    clock = FakeClock()
    throttle = make(clock)
    for _ in range(20):
        assert throttle.failed("ops", "10.0.0.1") == 0
        clock.advance(15.1)  # four within any minute
    assert throttle.retry_after("ops", "10.0.0.1") == 0


def test_each_further_lock_out_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    throttle = make(clock)
    penalties = [fail(throttle, 5)[-1]]
    for _ in range(6):
        clock.advance(penalties[-1])  # the lock-out is over: one more failure locks again
        assert throttle.retry_after("ops", "10.0.0.1") == 0
        penalties.append(throttle.failed("ops", "10.0.0.1"))
    assert penalties == [60, 120, 240, 480, 900, 900, 900]
    assert throttle.retry_after("ops", "10.0.0.1") == 900


def test_attempts_during_a_lock_out_neither_extend_nor_count() -> None:
    clock = FakeClock()
    throttle = make(clock)
    fail(throttle, 5)
    clock.advance(30)
    assert fail(throttle, 100) == [0] * 100
    assert throttle.retry_after("ops", "10.0.0.1") == 30


def test_a_success_after_the_penalty_forgets_the_pair() -> None:
    clock = FakeClock()
    throttle = make(clock)
    fail(throttle, 5)
    clock.advance(60)
    throttle.succeeded("ops", "10.0.0.1")
    assert len(throttle) == 0
    # five failures again, not one, and the first penalty again
    assert fail(throttle, 5) == [0, 0, 0, 0, 60]


def test_a_pair_is_forgotten_once_quiet() -> None:
    clock = FakeClock()
    throttle = make(clock)
    fail(throttle, 4)
    fail(throttle, 5, user="lead")
    clock.advance(60)
    throttle.failed("someone", "10.0.0.1")  # touching the address drops what expired
    assert len(throttle) == 2  # the locked-out pair is remembered 15 minutes after its lock
    clock.advance(900)
    throttle.failed("someone", "10.0.0.1")
    assert len(throttle) == 1
    assert fail(throttle, 5, user="lead")[-1] == 60  # its strikes are forgotten too


def test_a_flood_of_made_up_names_from_one_address_is_bounded_and_throttled_together() -> None:
    clock = FakeClock()
    throttle = make(clock, users_per_address=8)
    # Given the real user's name locked out at the attacker's address
    fail(throttle, 5)
    # When the attacker sends a hundred thousand made-up names from that address
    for number in range(100_000):
        throttle.failed(f"fake-{number}", "10.0.0.1")
    # Then the table holds at most 8 names and the shared pair, the lock-out is still there
    assert len(throttle) <= 9
    assert throttle.retry_after("ops", "10.0.0.1") == 60
    # and any further name from there is locked out with the others (a made-up name is
    # answered like a real one), while another address is not
    assert throttle.retry_after("never-seen", "10.0.0.1") > 0
    assert throttle.retry_after("never-seen", "10.0.0.2") == 0
    assert throttle.retry_after("ops", "10.0.0.2") == 0


def test_a_flood_of_addresses_is_bounded() -> None:
    clock = FakeClock()
    throttle = make(clock, max_addresses=1000)
    tracemalloc.start()
    try:
        for number in range(50_000):
            throttle.failed(f"fake-{number % 50}", f"10.{number >> 16}.{number >> 8 & 255}."
                                                   f"{number & 255}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(throttle) <= 1000
    assert peak < 8 * 1024 * 1024, peak
    # the latest addresses are remembered, the oldest were dropped first
    assert len(throttle._table) == 1000
    assert "10.0.0.0" not in throttle._table


def test_long_made_up_names_take_no_more_room_than_short_ones() -> None:
    clock = FakeClock()
    throttle = make(clock, max_addresses=200)
    tracemalloc.start()
    try:
        for number in range(5_000):  # 8 KB names, the most a header line holds
            throttle.failed(f"{number:08d}" + "x" * 8_000, f"10.0.{number >> 8 & 255}."
                                                           f"{number & 255}")
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(throttle) <= 200
    assert current < 1024 * 1024, current
