"""The report's rows: violations attributed to the fault they began under, jobs in flight at
each fault, seconds to terminal after each heal; printed and written as JSON."""

from __future__ import annotations

import json

from rich.console import Console

from rehearsal.checker import Violation, check
from rehearsal.records import FaultWindow, JobRecord
from rehearsal.report import NO_FAULT, RoundReport, rows
from tests.rehearsal.test_checker import T0, clean, unsign


def test_rows_attribute_violations_count_jobs_in_flight_and_time_to_terminal(tmp_path):
    history = clean()
    history.faults.append(FaultWindow("gateway_cut", frozenset({"worker3"}), T0 + 10, T0 + 12))
    history.jobs["j9"] = JobRecord("j9", "unsigned", "ag-9", "c1", created_at=T0 + 9,
                                   finished_at=T0 + 15.5)
    history.requests.append(unsign("ag-9", 9.5))
    violations = [Violation("b", "ag-1", "x", T0 + 3), Violation("f", "c1", "y", T0 + 20),
                  Violation("d", "k", "z", T0 - 5)]
    found = rows(history, violations, began=T0)
    assert [r.fault for r in found] == [NO_FAULT, "redis_cut", "gateway_cut"]
    assert [r.violations["d"] for r in found] == [1, 0, 0]
    assert [r.violations["b"] for r in found] == [0, 1, 0]
    assert [r.violations["f"] for r in found] == [0, 0, 1]
    redis_cut, gateway_cut = found[1:]
    # j1, j2, j3 are sent at T0 + 1, 2, 3 and end at T0 + 5: j1 was in flight when the first
    # fault began, all three when it healed
    assert (redis_cut.at, redis_cut.duration, redis_cut.jobs_in_flight) == (1.0, 3.0, 1)
    assert redis_cut.terminal_after_heal == 1.0
    assert gateway_cut.jobs_in_flight == 1 and gateway_cut.terminal_after_heal == 3.5


def test_the_report_prints_a_table_and_writes_json(tmp_path):
    history = clean()
    report = RoundReport(round=0, seed=4, jobs=3, outcomes={"unsigned": 2, "rejected": 1},
                         rows=rows(history, check(history), began=T0), violations=[],
                         bound=20.0)
    console = Console(record=True, width=200)
    report.print(console)
    text = console.export_text()
    assert "round 0 (seed 4): 3 jobs, PASSED" in text
    assert "not implemented: slow_redis" in text
    report.write(tmp_path / "report.json")
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["passed"] is True and written["rows"][0]["fault"] == "redis_cut"
    assert written["totals"] == dict.fromkeys("abcdef", 0)
    assert "redis_cut" in written["faults_implemented"]
