"""One fixed-seed round of the rehearsal (``python -m rehearsal run``), real namespaces and
processes: it leaves nothing behind, and its report (what the checker found on this code) is
read. A round interrupted with SIGINT leaves nothing behind either.

Needs root and ``ip netns`` (skipped, saying so, elsewhere).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rehearsal.topology import leftovers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None
                       or shutil.which("redis-server") is None,
                       reason="the rehearsal needs root, ip netns and redis-server"),
]
PROJECT = Path(__file__).resolve().parents[2]
SEED = 4
ROUND_SECONDS = 300


def start(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rehearsal", "run", "--out", str(out),
                             *args], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def prefix_of(output: str) -> str:
    found = re.search(r"hosts (rh[0-9a-f]+)-\*", output)
    assert found, output
    return found.group(1)


@pytest.fixture(scope="module")
def fixed_round(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, int]:
    out = tmp_path_factory.mktemp("rehearsal")
    proc = start(out, "--seed", str(SEED), "--jobs", "200", "--app-jobs", "20")
    output, _ = proc.communicate(timeout=ROUND_SECONDS)
    print(output)
    reports = list(out.glob("*/round-0/report.json"))
    assert reports, output
    return prefix_of(output), json.loads(reports[0].read_text()), proc.returncode


def test_a_round_leaves_no_namespace_link_folder_or_process(fixed_round):
    prefix, report, code = fixed_round
    assert code in (0, 1)  # 1: violations found, 2 would be a round that could not run
    assert leftovers(prefix) == {"namespaces": [], "links": [], "etc": [], "processes": []}
    assert report["rows"] and report["jobs"] >= 200


@pytest.mark.xfail(strict=False, reason=(
    "found by the rehearsal on this code under deployment.md's recommended configuration (seed "
    "4: gateway cut, split brain, Redis cut): (b) only, 2-4 agreements sent again after a "
    "worker read their answer, because that worker could not get the outcome onto a primary "
    "that keeps it (cut from the old primary, or left with it: WAIT short, the held outcome "
    "given up); the jobs are redone by sending again and settle already_unsigned, hook once, "
    "(a), (c)-(f) 0"))
def test_a_fixed_seed_round_shows_no_violation(fixed_round):
    _, report, code = fixed_round
    assert report["totals"] == dict.fromkeys("abcdef", 0), report["violations"][:10]
    assert code == 0


def running_round(out: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    """A round started, returned once its first fault began (its workers running)."""
    proc = start(out, "--seed", "1", "--jobs", "100", "--app-jobs", "10")
    lines: list[str] = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if re.search(r"^\s+\d+\.\d+s \w+ on ", line) or not line:
            break
    prefix = prefix_of("".join(lines))
    assert leftovers(prefix)["processes"], "".join(lines)
    return proc, prefix, lines


def test_a_round_interrupted_with_sigint_leaves_nothing_behind(tmp_path):
    # Given a round whose workers are running
    proc, prefix, lines = running_round(tmp_path)
    # When it is interrupted (Ctrl-C)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    # Then it says so and nothing of it is left
    assert proc.returncode == 130, "".join(lines) + output
    assert "interrupted" in output
    assert leftovers(prefix) == {"namespaces": [], "links": [], "etc": [], "processes": []}


def test_cleanup_removes_what_a_round_killed_outright_left(tmp_path):
    # Given a round killed outright (no teardown could run)
    proc, prefix, _ = running_round(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert leftovers(prefix)["namespaces"]
    # When the cleanup command runs
    done = subprocess.run([sys.executable, "-m", "rehearsal", "cleanup", "--prefix", prefix],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)
    # Then nothing of the round is left
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{prefix}-worker1" in done.stdout
    assert leftovers(prefix) == {"namespaces": [], "links": [], "etc": [], "processes": []}
