"""The demo's parts that need no process of the project: its supervisor's ready lines, and how
it links its processes to the emulator (TLS by default, sandbox mode for plain HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unsign_worker.demo.processes import DemoError, Supervisor, wait_for_line


def _start_printing(sup: Supervisor, log: Path, text: str):
    code = f"import sys, time; print({text!r}); sys.stdout.flush(); time.sleep(30)"
    return sup.start("printer", [sys.executable, "-c", code], {}, log=log)


def test_a_ready_line_is_looked_for_only_in_what_this_run_wrote(tmp_path: Path) -> None:
    # Given a log an earlier run left with its own ready line (logs are appended to)
    log = tmp_path / "emulator.log"
    log.write_text("emulator: serving http://127.0.0.1:1111/gateway.do\n", encoding="utf-8")
    sup = Supervisor(tmp_path / "pids.json")
    try:
        # When a new child writes its ready line after it
        child = _start_printing(sup, log, "emulator: serving https://localhost:2222/gateway.do")
        found = wait_for_line(child, r"serving (\S+)", timeout=120)
    finally:
        sup.stop(grace=5)
    # Then the new child's line is the one found, not the earlier run's
    assert found.group(1) == "https://localhost:2222/gateway.do"
    assert log.read_text(encoding="utf-8").startswith("emulator: serving http://127.0.0.1:1111")


def test_a_child_that_exits_before_its_ready_line_shows_only_its_own_output(
        tmp_path: Path) -> None:
    # Given a log with an earlier run's output, and a child that fails at once
    log = tmp_path / "flower.log"
    log.write_text("flower: http://127.0.0.1:1111/ (earlier run)\n", encoding="utf-8")
    sup = Supervisor(tmp_path / "pids.json")
    try:
        child = sup.start("flower", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                          {}, log=log)
        # When the demo waits for its ready line, then it fails, showing this run's output
        with pytest.raises(DemoError, match="exited \\(code 3\\) before it was ready") as info:
            wait_for_line(child, r"flower: (http://\S+/) \(", timeout=120)
    finally:
        sup.stop(grace=5)
    assert "boom" in str(info.value) and "earlier run" not in str(info.value)
