"""``unsign-worker status`` end to end, with a real worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from unsign_worker.emulator.agreements import Agreement

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]


@pytest.mark.slow
def test_status_shows_the_workers_outcomes_and_rate_after_a_few_jobs(
        ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([Agreement(id="a1", customer_code="C00000000001"),
                   Agreement(id="a2", customer_code="C00000000002")])
    worker = env.workers.start_worker()
    for code in ("C00000000001", "C00000000002", "C00000000404"):
        env.cli("enqueue", "--customer-code", code, "--wait")
    data = json.loads(env.cli("status", "--json").stdout)
    assert data["outcomes"]["unsigned"] == 2 and data["outcomes"]["rejected"] == 1
    assert data["rate"]["this_minute"] + data["rate"]["last_5_minutes"] >= 3
    assert data["queues"] == {"unsign": 0, "unsign.hooks": 0} and data["in_flight"] == 0
    assert [w["hostname"] for w in data["workers"]] == [worker.hostname]  # type: ignore[attr-defined]
    assert data["workers"][0]["alive"] and data["breaker"]["state"] == "closed"
    table = env.cli("status")
    assert table.exit_code == 0
    for text in ("circuit breaker: closed", "queue unsign", "dead-letter queue: 0 open",
                 worker.hostname):  # type: ignore[attr-defined]
        assert text in table.stdout


def test_status_of_an_unreachable_redis_fails_with_a_clear_message(
        ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([])
    env.workers.extra["UNSIGN_REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = env.cli("status")
    assert result.exit_code == 1 and "not reachable" in result.stderr
