"""Plain HTTP, the sandbox exception: a worker in sandbox mode unsigns through an emulator on a
loopback address over plain HTTP, and the same worker without sandbox mode refuses to start.
Every other process-level test goes over TLS with production settings."""

from __future__ import annotations

import subprocess

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import BIN

pytestmark = pytest.mark.slow


def test_sandbox_mode_unsigns_through_a_plain_http_emulator_on_loopback(
        emulator_factory, worker_env_factory):
    gw = emulator_factory([cae("a1", 1), cae("a2", 2)], tls=False)
    assert gw.url.startswith("http://127.0.0.1:")
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    assert env.env["UNSIGN_SANDBOX"] == "1" and "ALIPAY_CA_BUNDLE" not in env.env
    env.start_worker("w1", pool="gevent")

    jobs = env.wait_terminal(env.enqueue_many([{"customer_code": "C00001"},
                                               {"customer_code": "C00002"}]), timeout=120)

    assert {j["state"] for j in jobs.values()} == {"unsigned"}, env.log_tail()
    assert gw.stats()["unsigns"] == 2


def test_without_sandbox_mode_a_plain_http_gateway_stops_the_worker_at_start(
        emulator_factory, worker_env_factory):
    gw = emulator_factory(tls=False)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_SANDBOX="0")

    done = subprocess.run([str(BIN / "unsign-worker"), "worker", "--pool", "solo"],
                          env=env.env, cwd=env.tmp, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert "ALIPAY_GATEWAY_URL: only https:// is allowed outside sandbox mode" in done.stderr
    assert gw.stats()["requests"] == 0
