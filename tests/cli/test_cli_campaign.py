"""``unsign-worker campaign`` end to end: real Redis, real worker processes, the emulator."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.plugins.emulator import cae
from tests.plugins.worker_fixtures import wait_for
from unsign_worker.emulator.faults import FaultSettings
from unsign_worker.emulator.seed import CAMPAIGN_COLUMNS, PRESETS, DataSet, generate
from unsign_worker.producers.campaign.ids import campaign_id_for

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]
pytestmark = pytest.mark.slow


def write_campaign(path: Path, data: DataSet) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CAMPAIGN_COLUMNS)
        writer.writeheader()
        writer.writerows(data.rows)
    return path


def campaign_env(ops_env: Callable[..., OpsEnv], tmp_path: Path, count: int,
                 mix: dict[str, float], seed: int = 1) -> tuple[OpsEnv, DataSet, Path]:
    data = generate(count, mix, seed=seed)
    env = ops_env(data.agreements)
    return env, data, write_campaign(tmp_path / "campaign.csv", data)


def last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def campaign_jobs(env: OpsEnv, campaign_id: str) -> list[dict[str, str]]:
    ids = [j.decode() for j in env.workers.redis.lrange(
        env.workers.keys.campaign_jobs(campaign_id), 0, -1)]
    return [env.workers.job(j) for j in ids]


def test_a_mixed_campaign_reports_bad_rows_and_every_outcome(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, data, path = campaign_env(ops_env, tmp_path, 39, PRESETS["mixed"])
    expected = Counter(data.outcomes.values())
    env.workers.start_worker()
    # When the file is run to its end
    result = env.cli("campaign", "run", str(path), "--name", "mixed", "--json")
    # Then bad rows are refused with line, field and rule, the rest all ends
    assert result.exit_code == 3, result.output
    summary = last_json(result.stdout)
    assert summary["rejected_rows"] == expected["bad_row"]
    assert summary["total"] == 39 - expected["bad_row"]
    assert summary["finished"] and summary["state"] == "done"
    assert summary["outcomes"]["unsigned"] == expected["success"] + expected["transient"]
    assert summary["outcomes"]["dead_lettered"] == sum(
        n for o, n in expected.items() if o.isupper())
    assert summary["outcomes"]["rejected"] == expected["not_found"] + expected["not_signed"]
    assert summary["enqueue"]["new"] == summary["total"]
    with open(f"{path}.rejects.csv", newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    bad_lines = {i + 2 for i, row in enumerate(data.rows)
                 if data.outcomes[row["reference"]] == "bad_row"}
    assert {int(r["line"]) for r in rejects} == bad_lines
    assert all(r["field"] and r["rule"] and r["message"] for r in rejects)
    assert not any("@" in r["user_email"] and "***@" not in r["user_email"] for r in rejects)
    assert env.stats()["duplicates"] == 0


def test_the_report_has_one_row_per_input_row_masked_unless_asked(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, data, path = campaign_env(ops_env, tmp_path, 12,
                                   {"success": 3, "bad_row": 1, "TOO_MUCH_TYPE_CODE": 1})
    env.workers.start_worker()
    run = env.cli("campaign", "run", str(path))
    assert run.exit_code == 3, run.output
    assert "done / total" in run.stdout and "refused" in run.stderr
    campaign_id = re.search(r"campaign (c-[0-9a-f]{12})", run.stdout).group(1)
    out = tmp_path / "report.csv"
    assert env.cli("campaign", "report", campaign_id, "--out", str(out)).exit_code == 0
    with open(out, newline="", encoding="utf-8") as handle:
        report = list(csv.DictReader(handle))
    assert [r["reference"] for r in report] == [r["reference"] for r in data.rows]
    by_ref = {r["reference"]: r for r in report}
    for row in data.rows:
        outcome = data.outcomes[row["reference"]]
        got = by_ref[row["reference"]]["outcome"]
        assert got == {"success": "unsigned", "bad_row": "invalid",
                       "TOO_MUCH_TYPE_CODE": "dead_lettered"}[outcome]
    # Without --out the same CSV goes to standard output, and nothing else does
    piped = env.cli("campaign", "report", campaign_id)
    assert piped.exit_code == 0, piped.output
    assert list(csv.DictReader(io.StringIO(piped.stdout))) == report
    emails = [r["identity"] for r in report if "@" in r["identity"]]
    assert all("***@" in e for e in emails)
    full = tmp_path / "full.csv"
    env.cli("campaign", "report", campaign_id, "--out", str(full), "--show-personal-data")
    text = full.read_text(encoding="utf-8")
    assert all(r["user_email"] in text for r in data.rows
               if r["user_email"] and data.outcomes[r["reference"]] != "bad_row")
    listed = env.cli("campaign", "list", "--json")
    assert [c["campaign"] for c in json.loads(listed.stdout)] == [campaign_id]
    status = json.loads(env.cli("campaign", "status", campaign_id, "--json").stdout)
    expected = Counter(data.outcomes.values())
    assert status["done"] == status["total"] == 12 - expected["bad_row"]
    assert status["failures"] == expected["TOO_MUCH_TYPE_CODE"]
    # A dead letter requeued after the run is counted apart; the run keeps its end and rate
    assert "over its run" in run.stdout
    dead = [e["job_id"] for e in json.loads(env.cli("dlq", "list", "--json").stdout)]
    assert len(dead) == expected["TOO_MUCH_TYPE_CODE"] >= 1
    assert env.cli("dlq", "requeue", *dead, "--note", "once more, after the run").exit_code == 0
    after = json.loads(env.cli("campaign", "status", campaign_id, "--json").stdout)
    assert after["requeued_after_run"] == len(dead)
    assert after["run_done"] == status["run_done"] == status["done"]
    assert after["run_finished_at"] == status["run_finished_at"] is not None
    assert "requeued after the run" in env.cli("campaign", "status", campaign_id).stdout


def test_a_dry_run_only_validates(ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, _data, path = campaign_env(ops_env, tmp_path, 8, {"success": 3, "bad_row": 1})
    result = env.cli("campaign", "run", str(path), "--dry-run", "--json")
    assert result.exit_code == 3
    assert last_json(result.stdout) == {"campaign": last_json(result.stdout)["campaign"],
                                        "rows": 8, "valid": 6, "rejected_rows": 2,
                                        "dry_run": True}
    assert env.workers.redis.llen(env.workers.keys.queue()) == 0


def test_an_interrupted_enqueue_resumes_without_duplicates(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, data, path = campaign_env(ops_env, tmp_path, 1500, PRESETS["clean"])
    # Given a `campaign run` killed in the middle of its enqueue (no worker yet)
    proc = env.cli_process("campaign", "run", str(path), "--detach", "--chunk-size", "5",
                           "--batch-size", "5")
    keys, r = env.workers.keys, env.workers.redis

    meta = keys.campaign(campaign_id_for(path.read_bytes()))

    def enqueued() -> int:
        return int(r.hget(meta, "enqueued") or 0)

    wait_for(lambda: proc.poll() is not None or enqueued() >= 20, timeout=60,
             interval=0.002, what="the enqueue to start")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = enqueued()
    assert 20 <= before < 1500, "the enqueue was not interrupted midway"
    # When the same file is run again with workers up
    env.workers.start_worker("w1")
    result = env.cli("campaign", "run", str(path), "--json")
    # Then the rest is enqueued, what was there is skipped, and each agreement unsigned once
    assert result.exit_code == 0, result.output
    summary = last_json(result.stdout)
    assert summary["enqueue"]["new"] + summary["enqueue"]["resent"] + summary["enqueue"][
        "skipped"] == 1500
    assert summary["enqueue"]["skipped"] + summary["enqueue"]["resent"] >= before - 5
    assert summary["outcomes"]["unsigned"] == summary["done"] == 1500
    stats = env.stats()
    assert (stats["unsigns"], stats["duplicates"], stats["after_success"]) == (1500, 0, 0)
    assert len(data.agreements) == 1500


def test_the_rate_limit_holds_across_two_workers(ops_env: Callable[..., OpsEnv],
                                                 tmp_path: Path) -> None:
    env, _data, path = campaign_env(ops_env, tmp_path, 30, PRESETS["clean"])
    env.workers.start_worker("w1", concurrency=2)
    env.workers.start_worker("w2", concurrency=2)
    result = env.cli("campaign", "run", str(path), "--rate", "5/s", "--batch-size", "1",
                     "--json")
    assert result.exit_code == 0, result.output
    summary = last_json(result.stdout)
    assert summary["rate"] == 5 and summary["outcomes"]["unsigned"] == 30
    starts = sorted(a["time"] for a in env.workers.audit() if a.get("attempt") == 1)
    assert len(starts) == 30
    # 30 jobs at 5 per second need 6 one-second windows: at least 4 s from first to last
    assert starts[-1] - starts[0] >= 3.5
    per_second = Counter(int(t) for t in starts)
    assert max(per_second.values()) <= 5 + 2  # a start may fall just after its window
    handled = [env.workers.log_tail(name, lines=100_000).count("succeeded")
               for name in ("w1", "w2")]
    assert all(n > 0 for n in handled), handled


def slow_campaign(ops_env: Callable[..., OpsEnv], tmp_path: Path, count: int = 20
                  ) -> tuple[OpsEnv, str]:
    env, _data, path = campaign_env(ops_env, tmp_path, count, PRESETS["clean"])
    env.workers.start_worker()
    result = env.cli("campaign", "run", str(path), "--rate", "2", "--detach", "--json")
    assert result.exit_code == 0, result.output
    return env, last_json(result.stdout)["campaign"]


def status_of(env: OpsEnv, campaign_id: str) -> dict[str, Any]:
    return json.loads(env.cli("campaign", "status", campaign_id, "--json").stdout)


def test_pause_parks_what_is_not_sent_and_resume_finishes_it(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, campaign_id = slow_campaign(ops_env, tmp_path)
    wait_for(lambda: status_of(env, campaign_id)["done"] >= 2, timeout=60,
             what="a few jobs to finish")
    assert env.cli("campaign", "pause", campaign_id).exit_code == 0
    # every job not finished is parked once in-flight requests end
    paused = wait_for(lambda: (s := status_of(env, campaign_id))["done"] + s["parked"] == 20
                      and s, timeout=60, what="the rest to be parked")
    assert paused["state"] == "paused" and paused["parked"] > 0
    assert env.stats()["unsigns"] == paused["done"]
    assert env.cli("campaign", "resume", campaign_id).exit_code == 0
    final = wait_for(lambda: (s := status_of(env, campaign_id))["finished"] and s,
                     timeout=120, what="the campaign to finish")
    assert final["outcomes"]["unsigned"] == 20 and final["parked"] == 0
    assert (env.stats()["unsigns"], env.stats()["duplicates"]) == (20, 0)


def test_cancel_stops_what_is_not_sent_and_lets_requests_in_flight_finish(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, campaign_id = slow_campaign(ops_env, tmp_path)
    env.emulator.call(lambda: setattr(env.emulator.state, "faults",
                                      FaultSettings(latency_ms=800)))
    wait_for(lambda: env.stats()["in_flight"] >= 1, timeout=60, what="a request in flight")
    assert env.cli("campaign", "cancel", campaign_id).exit_code == 0
    final = wait_for(lambda: (s := status_of(env, campaign_id))["finished"] and s,
                     timeout=120, what="the campaign to finish")
    outcomes = final["outcomes"]
    assert final["state"] == "cancelled"
    assert outcomes["unsigned"] >= 1 and outcomes["cancelled"] >= 1
    assert outcomes["unsigned"] + outcomes["cancelled"] == 20
    stats = env.stats()
    # a request that reached the gateway was never cut: each one unsigned its agreement, and a
    # cancelled job never sent one
    assert stats["unsign_requests"] == stats["unsigns"] == outcomes["unsigned"]
    jobs = campaign_jobs(env, campaign_id)
    reached = {a for a, c in stats["agreements"].items() if c["requests"]}
    assert len(reached) == outcomes["unsigned"]
    assert all(j["state"] in ("unsigned", "cancelled") for j in jobs)


def test_a_paused_campaign_cancelled_closes_its_parked_jobs(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env, campaign_id = slow_campaign(ops_env, tmp_path, count=10)
    env.cli("campaign", "pause", campaign_id)
    wait_for(lambda: (s := status_of(env, campaign_id))["done"] + s["parked"] == 10,
             timeout=60, what="the jobs to be parked")
    result = env.cli("campaign", "cancel", campaign_id)
    assert result.exit_code == 0 and "cancelled" in result.stdout
    final = wait_for(lambda: (s := status_of(env, campaign_id))["finished"] and s,
                     timeout=60, what="the parked jobs to be closed")
    assert final["outcomes"]["unsigned"] + final["outcomes"]["cancelled"] == 10
    assert env.stats()["unsigns"] == final["outcomes"]["unsigned"]
    again = env.cli("campaign", "resume", campaign_id)
    assert again.exit_code == 1 and "is cancelled" in again.stderr


def test_a_row_that_mixes_two_forms_is_refused_with_its_rule_and_the_others_unsign(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    # Given two CAE agreements and a file whose middle row gives customer_code with type_code
    env = ops_env([cae("a1", 1), cae("a2", 2)])
    path = tmp_path / "forms.csv"
    path.write_text("reference,customer_code,type_code,trans_account_out\n"
                    "r1,C00001,,\n"
                    "r2,C00002,BUSI0031,\n"
                    f"r3,,BUSI0031,2088{2:012d}0156\n", encoding="utf-8")
    env.workers.start_worker()
    # When it runs
    result = env.cli("campaign", "run", str(path), "--name", "forms", "--json")
    # Then line 3 is refused naming field and rule, and both agreements are unsigned by the
    # good rows (a2 by its pair, never by the refused row)
    assert result.exit_code == 3, result.output
    summary = last_json(result.stdout)
    assert (summary["rejected_rows"], summary["total"]) == (1, 2)
    assert summary["outcomes"]["unsigned"] == 2
    with open(f"{path}.rejects.csv", newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [(r["line"], r["field"], r["rule"]) for r in rejects] == [("3", "type_code",
                                                                      "one_form")]
    assert env.emulator.unsigns("a1") == env.emulator.unsigns("a2") == 1
    assert env.emulator.stats()["unsign_requests"] == 2


def test_a_gbk_json_lines_file_is_read_with_encoding_gbk(ops_env: Callable[..., OpsEnv],
                                                         tmp_path: Path) -> None:
    env = ops_env([])
    path = tmp_path / "rows.jsonl"
    lines = [{"biz_type": "10004", "user_email": "李雷@例子.公司", "reference": "r1"},
             {"customer_code": "C00000000002", "reference": "r2"}]
    path.write_bytes("\n".join(json.dumps(x, ensure_ascii=False) for x in lines).encode("gbk"))
    wrong = env.cli("campaign", "run", str(path), "--dry-run")
    assert wrong.exit_code == 1 and "try --encoding gbk" in wrong.stderr
    right = env.cli("campaign", "run", str(path), "--encoding", "gbk", "--dry-run", "--json")
    assert right.exit_code == 0 and last_json(right.stdout)["valid"] == 2


def test_unknown_campaigns_and_bad_options_fail_clearly(ops_env: Callable[..., OpsEnv],
                                                        tmp_path: Path) -> None:
    env = ops_env([])
    for command in (("status", "nope"), ("report", "nope", "--out", str(tmp_path / "r.csv")),
                    ("pause", "nope"), ("resume", "nope"), ("cancel", "nope")):
        result = env.cli("campaign", *command)
        assert result.exit_code == 1 and "no campaign nope" in result.stderr, command
    path = tmp_path / "c.csv"
    path.write_text("customer_code\nC00000000001\n", encoding="utf-8")
    assert env.cli("campaign", "run", str(path), "--rate", "fast").exit_code == 2
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("customer_code,phone\nC1,1\n", encoding="utf-8")
    result = env.cli("campaign", "run", str(bad_header))
    assert result.exit_code == 1 and "unknown column 'phone'" in result.stderr


def test_two_seeded_data_sets_run_through_one_emulator_and_one_redis_without_duplicates(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    # Given a first data set, its emulator and workers, and its campaign run to its end
    env, first, first_csv = campaign_env(ops_env, tmp_path, 8, PRESETS["clean"], seed=1)
    env.workers.start_worker()
    run = env.cli("campaign", "run", str(first_csv), "--name", "first", "--json")
    assert run.exit_code == 0, run.output
    # When a second data set is seeded, loaded into the running emulator, and run on the same
    # Redis
    second_agreements, second_csv = tmp_path / "second.json", tmp_path / "second.csv"
    seeded = env.cli("emulator", "seed", "--count", "8", "--mix", "clean", "--seed", "2",
                     "--partner", first.partner, "--agreements", str(second_agreements),
                     "--campaign", str(second_csv))
    assert seeded.exit_code == 0, seeded.output
    trust = ["--ca-bundle", env.emulator.ca_bundle] if env.emulator.ca_bundle else []
    loaded = env.cli("emulator", "load", str(second_agreements), "--url", env.emulator.url,
                     *trust)
    assert loaded.exit_code == 0, loaded.output
    run = env.cli("campaign", "run", str(second_csv), "--name", "second", "--json")
    # Then every row of the second set is unsigned: none is a duplicate of the first set
    assert run.exit_code == 0, run.output
    summary = last_json(run.stdout)
    assert summary["outcomes"].get("duplicate", 0) == 0
    assert summary["outcomes"]["unsigned"] == 8
    assert env.stats()["unsigns"] == 16 and env.stats()["duplicates"] == 0
