"""A worker host cut from the gateway steps aside: real worker processes, real Redis, the
emulator over TLS; one worker reaches the gateway directly, the other through a TCP proxy the
test blackholes (connections accepted, nothing answered, as a blackholed route looks)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.pki import GATEWAY_HOST
from tests.plugins.tcp_proxy import TcpProxy
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from unsign_worker.store.gateway_reach import UnreachableWorkers

pytestmark = pytest.mark.slow
#: Jobs per campaign; agreements 1..3*JOBS are signed at the gateway.
JOBS = 120
SLOTS = 8
#: Failed attempts the cut-off worker may make: its slots' requests in flight when the path
#: was cut, and those of its prefetched messages started before the third fault.
MAX_CUT_ATTEMPTS = 3 * SLOTS
UNREACHABLE = re.compile(r"gateway localhost unreachable from this worker since "
                         r"\d\d:\d\d:\d\d UTC \((?P<cause>[^)]+)\), not taking jobs")


def _campaign(env: WorkerEnv, first: int) -> list[str]:
    return env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(first, first + JOBS)],
                            batch_size=10)


def _run(env: WorkerEnv, first: int, *, timeout: float = 120) -> float:
    started = time.monotonic()
    jobs = env.wait_terminal(_campaign(env, first), timeout=timeout)
    took = time.monotonic() - started
    assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}, jobs
    return took


def _network_failures(env: WorkerEnv) -> int:
    return sum(1 for entry in env.audit() if entry.get("code") == "NETWORK_ERROR")


def test_a_worker_cut_from_the_gateway_stops_taking_jobs_and_resumes_after_the_heal(
        emulator_factory, worker_env_factory, tcp_proxy_factory: Callable[..., TcpProxy]):
    # Given two workers, one reaching the gateway directly, the other through a proxy
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 3 * JOBS + 1)])
    proxy = tcp_proxy_factory(("127.0.0.1", gw.port))
    direct = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    via_proxy = worker_env_factory(  # with the default timeouts: 5 s connect, 15 s read
        gateway_url=gw.url.replace(f":{gw.port}/", f":{proxy.port}/"), partner=PARTNER, key=KEY,
        UNSIGN_CONNECT_TIMEOUT="5", UNSIGN_READ_TIMEOUT="15", UNSIGN_LEASE="30",
        UNSIGN_VISIBILITY_TIMEOUT="60")
    assert GATEWAY_HOST == "localhost"
    direct.start_worker("direct", concurrency=SLOTS, pool="gevent")
    cut = via_proxy.start_worker("cut", concurrency=SLOTS, pool="gevent")
    whole = _run(direct, 1)
    # When the proxied worker's path to the gateway is blackholed during a campaign
    proxy.blackhole()
    with_cut = _run(direct, JOBS + 1)
    # Then it says so once, with the cause, and the other worker does the campaign
    warned = wait_for(lambda: UNREACHABLE.search(via_proxy.log_tail("cut", 400)),
                      timeout=60, what="the unreachable warning")
    failures = _network_failures(direct)
    status = UnreachableWorkers(direct.redis, direct.keys)
    assert status.read()[cut.hostname]["cause"] == warned["cause"]  # status, exporter
    assert 0 < failures <= MAX_CUT_ATTEMPTS, (failures, via_proxy.log_tail("cut"))
    assert re.search(r"timeout|timed out|connection", warned["cause"]), warned["cause"]
    assert "Substantial drift" not in direct.log_tail("direct", 400)
    assert not re.search(r"retry: Retry in \d+s$", via_proxy.log_tail("cut", 2000), re.M)
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 2 * JOBS + 1))
    # and when the path heals, it takes jobs again (the direct worker stopped: only it remains)
    proxy.forward()
    healed_at = time.monotonic()
    wait_for(lambda: "reachable again" in via_proxy.log_tail("cut", 400), timeout=60,
             what="the worker to find the gateway again")
    back_in = time.monotonic() - healed_at
    wait_for(lambda: cut.hostname not in status.read(), timeout=10, what="the record cleared")
    direct.stop_all()
    assert cut.poll() is None
    alone = _run(via_proxy, 2 * JOBS + 1)
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 3 * JOBS + 1))
    assert gw.state is not None and gw.state.stats.duplicates == 0
    assert _network_failures(direct) == failures  # nothing failed after the heal
    print(f"\ngateway cut: {JOBS} jobs on two workers {whole:.1f}s; with one worker cut "
          f"{with_cut:.1f}s ({failures} failed attempts on the cut worker); "
          f"taking jobs again {back_in:.1f}s after the heal; "
          f"{JOBS} jobs on that worker alone {alone:.1f}s")
