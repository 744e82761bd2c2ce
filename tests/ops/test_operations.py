"""The operators' journal: CLI actions are recorded with who, what and the note, append-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from tests.plugins.worker_fixtures import WorkerEnv
from unsign_worker.cli.main import cli
from unsign_worker.ops.actions import ActionLog
from unsign_worker.store.breaker import Breaker

pytest_plugins = ["tests.plugins.worker_fixtures"]


def test_cli_campaign_and_breaker_actions_land_in_the_journal(
        worker_env_factory: Callable[..., WorkerEnv], tmp_path: Path) -> None:
    env = worker_env_factory(gateway_url="http://127.0.0.1:9/gateway.do",
                             partner="2088101568338364", key="0123456789abcdef0123456789abcdef")
    rows = tmp_path / "rows.csv"
    rows.write_text("customer_code\nC00000000001\nC00000000002\n", encoding="utf-8")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    campaign = json.loads(run("campaign", "run", str(rows), "--detach", "--json"))["campaign"]
    run("campaign", "pause", campaign)
    run("campaign", "resume", campaign)
    Breaker(env.redis, env.keys, threshold=1, window_seconds=60).record_halt("ILLEGAL_SIGN", "x")
    run("breaker", "reset")
    journal = ActionLog(env.redis, env.keys)
    assert [a.action for a in journal.for_target(f"campaign:{campaign}")] == ["pause", "resume"]
    [reset] = journal.for_target("breaker")
    assert reset.detail == "was open ILLEGAL_SIGN" and "@" in reset.by
    assert [a.action for a in journal.recent()] == ["breaker_reset", "resume", "pause"]
