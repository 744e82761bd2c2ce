"""``unsign-worker demo`` end to end, and Ctrl-C in the middle of it.

The demo runs as a user would start it (its own process group, its own working folder) with a
smaller campaign and the test's key prefix; the test records every process the demo starts and
checks that none is left once it has ended.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.plugins.worker_fixtures import BIN, wait_for


class DemoRun:
    """A running demo, and every process it was seen to start."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str, *args: str) -> None:
        self.out = tmp / "demo.out"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_"))}
        env.update(UNSIGN_REDIS_URL=redis_url, PYTHONUNBUFFERED="1", COLUMNS="120")
        self.proc = subprocess.Popen(
            [str(BIN / "unsign-worker"), "demo", "--workdir", str(tmp / "work"),
             "--flower-port", "0", "--console-port", "0", "--prefix", prefix, *args],
            cwd=tmp, env=env, stdout=open(self.out, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.seen: set[int] = set()

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def watch(self) -> bool:
        """Record the demo's descendants; True once the demo has exited."""
        try:
            self.seen.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        return self.proc.poll() is not None

    def survivors(self) -> list[str]:
        alive = []
        for pid in self.seen:
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid}: {' '.join(proc.cmdline())}")
            except psutil.NoSuchProcess:
                continue
        return alive

    def kill_all(self) -> None:
        for pid in [self.proc.pid, *self.seen]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.slow
def test_the_demo_runs_a_whole_campaign_and_leaves_nothing_running(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a fresh folder, when the demo runs a small campaign
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "300", "--rate", "0")
    try:
        wait_for(demo.watch, timeout=240, interval=0.2, what="the demo to finish")
    finally:
        demo.kill_all()
    out = demo.text()
    # Then it showed each step, the summary, the dead-letter queue with advice, and the report
    assert demo.proc.returncode == 0, out
    assert len(demo.seen) >= 4, "the demo should start an emulator, workers and Flower"
    for expected in ("emulator   http://127.0.0.1:", "workers    2 x 16 threads",
                     "user demo  password", "campaign   unsign-worker campaign run",
                     "unsigned", "Dead-letter queue:", "what to do: Contact Alipay",
                     "Report (one row per input row):", "stopped: "):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    assert re.search(r"flower     http://127\.0\.0\.1:\d+/", out)
    assert re.search(r"console    http://127\.0\.0\.1:\d+/  user demo  password", out)
    assert re.search(r"Console: http://127\.0\.0\.1:\d+/  user demo  password \S+", out)
    assert "make demo KEEP=1" in out
    report = list(csv.DictReader(open(tmp_path / "work" / "report.csv", encoding="utf-8")))
    assert len(report) >= 250
    assert {"unsigned", "dead_lettered", "rejected"} <= {row["outcome"] for row in report}
    # And it never printed a customer's email or account, nor the demo key
    rows = list(csv.DictReader(open(tmp_path / "work" / "campaign.csv", encoding="utf-8")))
    for row in rows:
        for name in ("user_email", "trans_account_out"):
            assert not row[name] or row[name] not in out
    assert (tmp_path / "work" / "demo.key").read_text() not in out
    # And nothing it started is still running
    assert demo.survivors() == []


@pytest.mark.slow
def test_ctrl_c_during_the_campaign_stops_everything_the_demo_started(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a demo whose campaign is running (rate-limited, so it runs for a while)
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "2000", "--rate", "20")
    try:
        wait_for(lambda: demo.watch() or "enqueued" in demo.text(), timeout=180, interval=0.2,
                 what="the campaign to start")
        assert demo.proc.poll() is None, demo.text()
        time.sleep(0.5)  # let the progress bar draw once; the point is to interrupt mid-run
        demo.watch()
        started = set(demo.seen)
        # When Ctrl-C reaches the demo's process group, as a terminal sends it
        os.killpg(demo.proc.pid, signal.SIGINT)
        wait_for(demo.watch, timeout=90, interval=0.2, what="the demo to stop")
    finally:
        demo.kill_all()
    # Then it says so, exits 130, and nothing it started survives
    out = demo.text()
    assert demo.proc.returncode == 130, out
    assert "interrupted: stopping what the demo started" in out
    assert len(started) >= 5, "emulator, two workers, Flower and the campaign run"
    assert demo.survivors() == [], out


@pytest.mark.slow
def test_demo_keep_leaves_everything_up_with_addresses_and_credentials_until_ctrl_c(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a demo run with --keep
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "100", "--rate", "0", "--keep")
    try:
        wait_for(lambda: demo.watch() or "Press Ctrl-C to stop everything" in demo.text(),
                 timeout=240, interval=0.2, what="the campaign to end")
        out = demo.text()
        assert demo.proc.poll() is None, out
        # Then the console and Flower stay up, reachable with the printed credentials
        found = re.search(r"Console: (http://\S+/)  user (\S+)  password (\S+)", out)
        assert found, out
        assert "the emulator at http://127.0.0.1:" in out and "Flower at http://" in out
        import base64
        import urllib.request

        token = base64.b64encode(f"{found.group(2)}:{found.group(3)}".encode()).decode()
        request = urllib.request.Request(found.group(1) + "escalations",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "Escalations" in page and "open" in page
        time.sleep(1.5)  # still up after the campaign: the supervisor keeps checking
        assert demo.proc.poll() is None
        # When Ctrl-C reaches it, everything stops and it exits 0
        demo.watch()
        os.killpg(demo.proc.pid, signal.SIGINT)
        wait_for(demo.watch, timeout=90, interval=0.2, what="the demo to stop")
    finally:
        demo.kill_all()
    assert demo.proc.returncode == 0, demo.text()
    assert demo.survivors() == []
