"""``unsign-worker dlq`` end to end: jobs dead-lettered by a real worker against the emulator,
looked at, exported, resolved, and requeued once the emulator's fault is cleared."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from unsign_worker.emulator.agreements import Agreement
from unsign_worker.ops.status import outcomes

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]
pytestmark = pytest.mark.slow

STUCK = ("TOO_MUCH_TYPE_CODE",) * 5


def dead_lettered_env(ops_env: Callable[..., OpsEnv]) -> tuple[OpsEnv, dict[str, str]]:
    env = ops_env([
        Agreement(id="m1", customer_code="C00000000001", script=STUCK),
        Agreement(id="m2", customer_code="C00000000002", script=STUCK),
        Agreement(id="b1", customer_code="C00000000003",
                  script=("FAIL_UNFREEZE_STANDARD_BAIL",) * 5),
    ])
    env.workers.start_worker()
    ids = {}
    for name, ref, code in (("r1", "r1", "C00000000001"), ("r2", "r2", "C00000000002"),
                            ("r3", "=HYPERLINK(1)", "C00000000003")):
        result = env.cli("enqueue", "--customer-code", code, "--reference", ref, "--wait")
        assert result.exit_code == 3, result.output
        ids[name] = result.stdout.split()[0]
    return env, ids


def test_the_queue_lists_shows_exports_resolves_and_requeues_after_the_fault_is_cleared(
        ops_env: Callable[..., OpsEnv]) -> None:
    env, ids = dead_lettered_env(ops_env)
    # list and filter
    listed = json.loads(env.cli("dlq", "list", "--json").stdout)
    assert sorted(e["job_id"] for e in listed) == sorted(ids.values())
    only = json.loads(env.cli("dlq", "list", "--code", "TOO_MUCH_TYPE_CODE", "--json").stdout)
    assert sorted(e["reference"] for e in only) == ["r1", "r2"]
    assert "TOO_MUCH_TYPE_CODE" in env.cli("dlq", "list").stdout
    # show: the code, its meaning in both languages, the advice, the attempts, the masked job
    shown = env.cli("dlq", "show", ids["r1"])
    for text in ("商户存在多条签约信息", "several agreements", "unique", "customer_code"):
        assert text in shown.stdout
    data = json.loads(env.cli("dlq", "show", ids["r1"], "--json").stdout)
    assert data["open"] and data["attempts"] >= 1 and data["code"] == "TOO_MUCH_TYPE_CODE"
    # export as CSV
    exported = env.cli("dlq", "export", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 3 and {r["code"] for r in rows} == {"TOO_MUCH_TYPE_CODE",
                                                            "FAIL_UNFREEZE_STANDARD_BAIL"}
    assert "'=HYPERLINK(1)" in {r["reference"] for r in rows}
    # requeue and resolve need a note that says something; refused ones change nothing
    for args in (("requeue", ids["r2"]), ("requeue", ids["r2"], "--note", "  "),
                 ("requeue", "--all", "--note", ""), ("resolve", ids["r3"], "--note", " ")):
        refused = env.cli("dlq", *args)
        assert refused.exit_code == 2 and "--note" in refused.stderr, refused.output
    assert sorted(e["job_id"] for e in json.loads(env.cli("dlq", "list", "--json").stdout)) \
        == sorted(ids.values())
    # requeue while the fault is still there: dead-lettered again, still in the queue
    assert env.cli("dlq", "requeue", ids["r2"], "--note", "try once more").exit_code == 0
    again = env.workers.wait_terminal([ids["r2"]])
    assert again[ids["r2"]]["state"] == "dead_lettered" and again[ids["r2"]]["requeues"] == "1"
    # resolve one by hand: who, when and why are kept
    resolved = env.cli("dlq", "resolve", ids["r3"], "--note", "closed at the counter",
                       "--by", "ops@desk")
    assert resolved.exit_code == 0
    closed = json.loads(env.cli("dlq", "show", ids["r3"], "--json").stdout)
    assert (closed["open"], closed["resolved_by"], closed["resolution_note"]) == (
        False, "ops@desk", "closed at the counter")
    # the fault is fixed: requeue by code; both jobs end unsigned under their own ids
    env.clear_faults()
    requeued = json.loads(env.cli("dlq", "requeue", "--code", "TOO_MUCH_TYPE_CODE",
                                  "--note", "fault cleared", "--json").stdout)
    assert sorted(requeued["requeued"]) == sorted([ids["r1"], ids["r2"]])
    final = env.workers.wait_terminal([ids["r1"], ids["r2"]])
    assert {j["state"] for j in final.values()} == {"unsigned"}
    assert json.loads(env.cli("dlq", "list", "--json").stdout) == []
    assert env.stats()["unsigns"] == 2
    status = json.loads(env.cli("status", "--json").stdout)
    assert status["outcomes"]["unsigned"] == 2 and status["outcomes"]["dead_lettered"] == 1
    assert status["dlq"] == {"size": 0, "by_code": {}}
    # four dead letters this hour, three of them requeued: the hour counts one, as all time does
    seen = outcomes(env.workers.redis, env.workers.keys)
    assert seen["last_hour"]["dead_lettered"] == seen["all_time"]["dead_lettered"] == 1
    assert seen["last_hour"]["unsigned"] == seen["all_time"]["unsigned"] == 2


def test_requeue_needs_exactly_one_selection_and_reports_unknown_ids(
        ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([])
    assert env.cli("dlq", "requeue", "--note", "n").exit_code == 2
    assert env.cli("dlq", "requeue", "x", "--all", "--note", "n").exit_code == 2
    result = env.cli("dlq", "requeue", "f" * 32, "--note", "n")
    assert result.exit_code == 1 and "not in the dead-letter queue" in result.stderr
    assert env.cli("dlq", "resolve", "f" * 32, "--note", "n").exit_code == 1
    assert env.cli("dlq", "show", "f" * 32).exit_code == 1
