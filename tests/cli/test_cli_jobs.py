"""``unsign-worker enqueue`` and ``unsign-worker job show`` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from unsign_worker.emulator.agreements import Agreement

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

AGREEMENTS = [
    Agreement(id="a1", customer_code="C00000000001"),
    Agreement(id="a2", biz_type="10004", user_email="li.wei@example.com",
              user_id="2088002007018916"),
]


@pytest.fixture
def env(ops_env: Callable[..., OpsEnv]) -> OpsEnv:
    return ops_env(AGREEMENTS)


def test_an_invalid_job_is_refused_at_the_shell_naming_the_option_and_rule(env: OpsEnv) -> None:
    result = env.cli("enqueue", "--type-code", "BUSI01", "--trans-account-out", "123")
    assert result.exit_code == 1
    assert "--trans-account-out:" in result.stderr and "[format]" in result.stderr
    assert env.workers.redis.llen(env.workers.keys.queue()) == 0


def test_enqueue_prints_the_job_id_and_job_show_finds_it_by_reference(env: OpsEnv) -> None:
    result = env.cli("enqueue", "--customer-code", "C00000000001", "--reference", "order-1")
    assert result.exit_code == 0
    job_id = result.stdout.strip()
    assert len(job_id) == 32
    shown = json.loads(env.cli("job", "show", "--reference", "order-1", "--json").stdout)
    assert (shown["job_id"], shown["state"], shown["reference"]) == (job_id, "queued",
                                                                     "order-1")
    table = env.cli("job", "show", job_id)
    assert "queued" in table.stdout and "C00000000001" in table.stdout


def test_job_show_of_an_unknown_job_fails_clearly(env: OpsEnv) -> None:
    result = env.cli("job", "show", "f" * 32)
    assert result.exit_code == 1 and "no job" in result.stderr
    assert env.cli("job", "show").exit_code == 2


@pytest.mark.slow
def test_enqueue_wait_follows_the_job_to_its_end_with_the_matching_exit_code(
        env: OpsEnv) -> None:
    env.workers.start_worker()
    ok = env.cli("enqueue", "--biz-type", "10004", "--user-email", "li.wei@example.com",
                 "--wait", "--json")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["state"] == "unsigned" and data["terminal"]
    assert data["params"]["user_email"] == "l***@example.com"
    missing = env.cli("enqueue", "--customer-code", "C00000000404", "--wait")
    assert missing.exit_code == 3
    assert missing.stdout.split()[1:] == ["rejected", "NOT_EXIST_CUST_SIGN"]
    shown = env.cli("job", "show", ok.stdout and data["job_id"])
    assert "l***@example.com" in shown.stdout and "li.wei" not in shown.stdout
