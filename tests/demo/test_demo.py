"""``unsign-worker demo`` end to end, and Ctrl-C in the middle of it.

The demo runs as a user would start it (its own process group, its own working folder) with a
smaller campaign and the test's key prefix; the test records every process the demo starts and
checks that none is left once it has ended. It serves the emulator over TLS and runs the workers
as production does (no sandbox mode); ``--plain-http`` is tested on its own.

Timing: a small demo takes 10-30 s on an idle 2-core machine and several times that on a loaded
one (each of its six processes imports its stack before it is ready). The tests poll for what
they wait for with deadlines far above that, and each test's own pytest timeout is the sum of
its deadlines plus a margin, so a slow run finishes and a stuck one fails with the wait's own
message rather than pytest's 300 s default cutting in between two waits.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import redis

from tests.plugins.command_run import CommandRun
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.store.keys import Keys

#: Seconds a small demo gets to start (every process ready) and run its campaign when loaded.
DEMO_SECONDS = 480
#: Seconds the demo gets to stop everything after Ctrl-C (5 s for the campaign run, 20 s of
#: grace, then the kills) on a loaded machine.
STOP_SECONDS = 180
#: Seconds a single HTTP call of the test gets (the console, the emulator's stats).
CALL_SECONDS = 60
#: What a test needs besides its waits (starting, cleaning up).
MARGIN_SECONDS = 60
TLS_LINE = (r"tls        (https://localhost:\d+/gateway\.do), certificate from a private CA "
            r"\((made now|kept from an earlier run)\): export ALIPAY_CA_BUNDLE=(\S+)")
TRAFFIC_LINE = r"gateway    the emulator answered (\d+) gateway requests on (\d+) connections, {}"


class DemoRun(CommandRun):
    """A running demo, and every process it was seen to start."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_"))}
        env.update(UNSIGN_REDIS_URL=redis_url, PYTHONUNBUFFERED="1", COLUMNS="120")
        super().__init__(
            [str(BIN / "unsign-worker"), "demo", "--workdir", str(tmp / "work"),
             "--flower-port", "0", "--console-port", "0", "--prefix", prefix, *args],
            cwd=tmp, env=env, out=tmp / "demo.out")

    def run_to_end(self) -> str:
        """Wait for the demo to finish (whatever is left is killed after); its output."""
        try:
            wait_for(self.watch, timeout=DEMO_SECONDS, interval=0.2, what="the demo to finish")
        finally:
            self.kill_all()
        return self.text()


def _campaign_progress(client: redis.Redis, keys: Keys) -> tuple[str, int]:
    """The state of the demo's campaign and how many of its jobs have ended ('' and 0 before)."""
    newest = client.zrevrange(keys.campaigns, 0, 0)
    if not newest:
        return "", 0
    campaign_id = newest[0].decode()
    state = (client.hget(keys.campaign(campaign_id), "state") or b"").decode()
    ended = sum(int(n) for n in client.hvals(keys.campaign_counts(campaign_id)))
    return state, ended


@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + MARGIN_SECONDS)
def test_the_demo_runs_a_whole_campaign_over_tls_and_leaves_nothing_running(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a fresh folder, when the demo runs a small campaign
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "300", "--rate", "0")
    out = demo.run_to_end()
    # Then it showed each step, the summary, the dead-letter queue with advice, and the report
    assert demo.proc.returncode == 0, out
    assert len(demo.seen) >= 4, "the demo should start an emulator, workers and Flower"
    for expected in ("emulator   https://localhost:", "workers    2 x 16 threads",
                     "user demo  password", "campaign   unsign-worker campaign run",
                     "unsigned", "Dead-letter queue:", "what to do: Contact Alipay",
                     "Report (one row per input row):", "stopped: "):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    assert re.search(r"flower     http://127\.0\.0\.1:\d+/", out)
    assert re.search(r"console    http://127\.0\.0\.1:\d+/  user demo  password", out)
    assert re.search(r"Console: http://127\.0\.0\.1:\d+/  user demo  password \S+", out)
    assert "make demo KEEP=1" in out
    # And its gateway was the emulator over TLS, trusted through its own CA, made in the workdir
    tls = re.search(TLS_LINE, out)
    assert tls, out
    ca_file = tmp_path / "work" / "tls" / "ca.pem"
    assert tls.group(2) == "made now" and tls.group(3) == str(ca_file) and ca_file.exists()
    # And the emulator's own counters say the jobs reached it over TLS
    traffic = re.search(TRAFFIC_LINE.format("over TLS"), out)
    assert traffic, out
    assert int(traffic.group(1)) >= 250 and int(traffic.group(2)) >= 1
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
@pytest.mark.timeout(DEMO_SECONDS + MARGIN_SECONDS)
def test_plain_http_runs_the_demo_in_sandbox_mode(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a fresh folder, when the demo runs with --plain-http
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "100", "--rate", "0",
                   "--plain-http")
    out = demo.run_to_end()
    # Then the emulator served plain HTTP on loopback, the workers in sandbox mode, and no PKI
    assert demo.proc.returncode == 0, out
    assert re.search(r"emulator   http://127\.0\.0\.1:\d+/gateway\.do ", out), out
    assert "tls        off (--plain-http): http://127.0.0.1:" in out
    assert "the workers in sandbox mode (UNSIGN_SANDBOX=1)" in out
    assert "ALIPAY_CA_BUNDLE" not in out and "https://" not in out
    assert not (tmp_path / "work" / "tls").exists()
    traffic = re.search(TRAFFIC_LINE.format("in plain HTTP"), out)
    assert traffic and int(traffic.group(1)) >= 80, out
    assert "Report (one row per input row):" in out
    assert demo.survivors() == []


@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + STOP_SECONDS + MARGIN_SECONDS)
def test_ctrl_c_during_the_campaign_stops_everything_the_demo_started(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis, key_prefix: str) -> None:
    # Given a demo whose campaign is running (rate-limited, so it runs for minutes) and has
    # ended some of its jobs
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "2000", "--rate", "20")
    keys = Keys(key_prefix)
    try:
        wait_for(lambda: demo.watch() or _campaign_progress(redis_client, keys)[1] > 0,
                 timeout=DEMO_SECONDS, interval=0.2, what="the campaign's first jobs to end")
        assert demo.proc.poll() is None, demo.text()
        assert _campaign_progress(redis_client, keys)[0] == "running"
        demo.watch()
        started = set(demo.seen)
        # When Ctrl-C reaches the demo's process group, as a terminal sends it
        os.killpg(demo.proc.pid, signal.SIGINT)
        wait_for(demo.watch, timeout=STOP_SECONDS, interval=0.2, what="the demo to stop")
    finally:
        demo.kill_all()
    # Then it says so, exits 130, and nothing it started survives
    out = demo.text()
    assert demo.proc.returncode == 130, out
    assert "interrupted: stopping what the demo started" in out
    assert len(started) >= 5, "emulator, two workers, Flower and the campaign run"
    assert demo.survivors() == [], out


def _worker_environments(demo: DemoRun) -> list[dict[str, str]]:
    """The environments of the demo's running workers."""
    found = []
    for pid in demo.seen:
        try:
            proc = psutil.Process(pid)
            if " worker " in f" {' '.join(proc.cmdline())} ":
                found.append(proc.environ())
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + 2 * CALL_SECONDS + STOP_SECONDS + MARGIN_SECONDS)
def test_demo_keep_leaves_everything_up_with_addresses_and_credentials_until_ctrl_c(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given a demo run with --keep
    demo = DemoRun(tmp_path, redis_url, key_prefix, "--count", "100", "--rate", "0", "--keep")
    try:
        wait_for(lambda: demo.watch() or "Press Ctrl-C to stop everything" in demo.text(),
                 timeout=DEMO_SECONDS, interval=0.2, what="the campaign to end")
        out = demo.text()
        assert demo.proc.poll() is None, out
        # Then the console and Flower stay up, reachable with the printed credentials
        found = re.search(r"Console: (http://\S+/)  user (\S+)  password (\S+)", out)
        assert found, out
        assert "Flower at http://" in out
        import base64
        import urllib.request

        token = base64.b64encode(f"{found.group(2)}:{found.group(3)}".encode()).decode()
        request = urllib.request.Request(found.group(1) + "escalations",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=CALL_SECONDS) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "Escalations" in page and "open" in page
        # And the emulator stays up over TLS, at the printed address, trusted by the printed CA,
        # with the campaign's requests in its counters
        kept = re.search(r"the emulator at (https://localhost:\d+/gateway\.do) \(trust it: "
                         r"export ALIPAY_CA_BUNDLE=(\S+)\)", out)
        assert kept, out
        admin = EmulatorAdmin(kept.group(1), ca_bundle=kept.group(2),
                              timeout_seconds=CALL_SECONDS)
        try:
            stats = admin.stats(per_agreement=False)
        finally:
            admin.close()
        assert stats["requests"] >= 80 and stats["connections_opened"] >= 2, stats
        # And its workers run as production does: the emulator's https URL, its CA, no sandbox
        demo.watch()
        workers = _worker_environments(demo)
        assert len(workers) >= 2
        for env in workers:
            assert env["ALIPAY_GATEWAY_URL"] == kept.group(1)
            assert env["ALIPAY_CA_BUNDLE"] == kept.group(2)
            assert env["ALIPAY_GATEWAY_ALLOWED_HOSTS"] == "localhost"
            assert env.get("UNSIGN_SANDBOX", "") == ""
        # And the printed command shows the status of the demo's jobs, run as written from a
        # shell that has none of the demo's settings
        hint = re.search(r"until the next run: (UNSIGN_REDIS_URL=.*status)$", out, re.MULTILINE)
        assert hint, out
        shell_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_"))}
        status = subprocess.run(hint.group(1), shell=True, cwd=tmp_path, capture_output=True,
                                text=True, timeout=CALL_SECONDS,
                                env={**shell_env, "COLUMNS": "120"})
        assert status.returncode == 0, status.stderr
        assert "demo-w1@" in status.stdout and "demo-w2@" in status.stdout, status.stdout
        unsigned = re.search(r"│ unsigned\s+│\s+(\d+) │", status.stdout)
        assert unsigned and int(unsigned.group(1)) >= 50, status.stdout
        assert demo.proc.poll() is None, "still up after the campaign"
        # When Ctrl-C reaches it, everything stops and it exits 0
        demo.watch()
        os.killpg(demo.proc.pid, signal.SIGINT)
        wait_for(demo.watch, timeout=STOP_SECONDS, interval=0.2, what="the demo to stop")
    finally:
        demo.kill_all()
    assert demo.proc.returncode == 0, demo.text()
    assert demo.survivors() == []
