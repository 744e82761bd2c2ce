"""What a worker process does with its jobs once the gateway is unreachable from it: without
Celery, real Redis, the emulator over TLS behind a TCP proxy the test blackholes."""

from __future__ import annotations

import uuid

from tests.plugins.emulator import cae
from unsign_worker.store.states import JobState
from unsign_worker.worker.processor import GATEWAY_UNREACHABLE, HANDED_BACK, process_batch
from unsign_worker.worker.reachability import Reachability


class _Via:
    """The emulator's URL through the proxy."""

    def __init__(self, url: str) -> None:
        self.url = url


def _jobs(count: int) -> list[dict[str, object]]:
    return [{"job_id": uuid.uuid4().hex, "params": {"customer_code": f"C{i:05d}"}}
            for i in range(1, count + 1)]


def _write_queued(ctx, messages) -> None:
    for message in messages:
        ctx.redis.hset(ctx.keys.job(str(message["job_id"])), mapping={"state": "queued"})


def test_while_unreachable_every_job_goes_back_unclaimed_and_unsent(emulator_factory, make_ctx):
    # Given a process that already knows the gateway is unreachable from it
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 4)])
    ctx = make_ctx(gw)
    ctx.reachability = Reachability("localhost", threshold=1)
    ctx.reachability.failed("connect timeout", 1.0)
    messages = _jobs(3)
    _write_queued(ctx, messages)
    # When a batch arrives
    decisions = process_batch(ctx, messages)
    # Then each job is handed back at once, its record untouched, nothing sent
    assert [(d.kind, d.state, d.code, d.countdown) for d in decisions] == [
        ("retry", HANDED_BACK, GATEWAY_UNREACHABLE, 0.0)] * 3
    assert all("gateway localhost unreachable" in d.detail for d in decisions)
    assert {ctx.redis.hget(ctx.keys.job(str(m["job_id"])), "state") for m in messages} == {
        b"queued"}
    assert gw.state is not None and gw.state.stats.requests == 0


def test_network_faults_trip_it_mid_batch_and_the_claimed_rest_goes_back_unsent(
        emulator_factory, make_ctx, tcp_proxy_factory):
    # Given a process whose path to the gateway is blackholed, tripping on the first fault
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 4)])
    proxy = tcp_proxy_factory(("127.0.0.1", gw.port))
    proxy.blackhole()
    ctx = make_ctx(_Via(gw.url.replace(f":{gw.port}/", f":{proxy.port}/")),
                   intask_retry_budget_seconds=30)
    ctx.reachability = Reachability("localhost", threshold=1)
    # When a batch of three is processed (claimed together)
    decisions = process_batch(ctx, _jobs(3))
    # Then the first job fails once and goes back at once, naming its cause, instead of
    # waiting in the task; the other two go back unsent
    first, *rest = decisions
    assert (first.kind, first.state, first.countdown) == ("retry", JobState.RETRYING, 1.0)
    assert first.detail.startswith("TransportError: ")
    assert [(d.kind, d.state, d.code) for d in rest] == [
        ("retry", JobState.RETRYING, GATEWAY_UNREACHABLE)] * 2
    assert not ctx.reachability.reachable
    assert gw.state is not None and gw.state.stats.requests == 0
