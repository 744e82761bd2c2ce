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
    "found by the rehearsal on this code: jobs of the application stay queued long after a "
    "worker host is cut from Redis (a), an agreement is sent again after a worker read its "
    "answer when the old primary's writes are lost in a split brain (b), and its hook runs "
    "twice (d)"))
def test_a_fixed_seed_round_shows_no_violation(fixed_round):
    _, report, code = fixed_round
    assert report["totals"] == dict.fromkeys("abcdef", 0), report["violations"][:10]
    assert code == 0


def test_a_round_interrupted_with_sigint_leaves_nothing_behind(tmp_path):
    proc = start(tmp_path, "--seed", "1", "--jobs", "100", "--app-jobs", "10")
    # Given a round whose workers are running
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
    # When it is interrupted (Ctrl-C)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    # Then it says so and nothing of it is left
    assert proc.returncode == 130, "".join(lines) + output
    assert "interrupted" in output
    assert leftovers(prefix) == {"namespaces": [], "links": [], "etc": [], "processes": []}
