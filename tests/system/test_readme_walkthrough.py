"""README.md's "One job, start to finish", run as written, on a machine where ``redis-server`` is
installed but no Redis runs.

The commands are read from README.md's two code blocks that begin ``# shell 1`` and
``# shell 2``, never copied here. This machine may have a Redis on 127.0.0.1:6379 (the tests'
own), so the walkthrough runs in a network namespace the test creates: its loopback is private,
nothing answers on 6379 there, and ``unsign-worker dev`` must start a Redis of its own. Shell 1
runs in the background in the namespace, in a folder laid out as the project's root (its
Makefile, pyproject.toml, requirements.lock and .venv linked there, so ``make dev`` finds the
installed .venv and ``.dev/`` is the test's own); shell 2 runs with ``bash -e`` once shell 1
says it is ready. Then Ctrl-C reaches shell 1's process group, and every process in the
namespace must end. The namespace is deleted in the fixture's teardown, whatever happened.

Needs root and ``ip netns`` (both in CI), and ``redis-server``; skipped otherwise, saying which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.plugins.command_run import READY_SECONDS, STOP_SECONDS, CommandRun, clean_env
from tests.plugins.worker_fixtures import wait_for

#: Seconds shell 2's commands get on a loaded machine (a 100-row campaign, a job, status).
SHELL2_SECONDS = 600
#: What the test needs besides its waits (the namespace, the folder, cleaning up).
MARGIN_SECONDS = 120
#: The files of the project's root that ``make dev`` reads.
ROOT_FILES = ("Makefile", "pyproject.toml", "requirements.lock")


def readme_shell(label: str) -> str:
    """The README code block whose first line starts with ``# <label>``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
              if b.startswith(f"# {label}")]
    assert len(blocks) == 1, f"README.md should have one ```sh block starting '# {label}'"
    return blocks[0]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)


def namespace_pids(name: str) -> list[int]:
    return [int(p) for p in _ip("netns", "pids", name).stdout.split()]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with its loopback up; every process in it is killed and the
    namespace deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("ip (iproute2) is not installed: no 'ip netns'")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (the walkthrough's premise)")
    name = f"unsign-walk-{uuid.uuid4().hex[:8]}"
    added = _ip("netns", "add", name)
    if added.returncode != 0:
        pytest.skip(f"ip netns is unavailable here: {added.stderr.strip()}")
    try:
        up = _ip("-n", name, "link", "set", "lo", "up")
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        for pid in namespace_pids(name):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        _ip("netns", "delete", name)


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """A folder that ``make dev`` takes for the project's root, with this test run's .venv."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ROOT_FILES:
        (root / name).symlink_to(ROOT / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    fresh = subprocess.run(["make", "-q", ".venv/.installed"], cwd=root, capture_output=True)
    if fresh.returncode != 0:
        pytest.fail(f"{root / '.venv'} is older than pyproject.toml or requirements.lock (or not "
                    "made by make): run 'make .venv/.installed' first")
    return root


@pytest.mark.slow
@pytest.mark.timeout(READY_SECONDS + SHELL2_SECONDS + STOP_SECONDS + MARGIN_SECONDS)
def test_the_readme_walkthrough_works_as_written_where_no_redis_runs(
        netns: str, project_root: Path) -> None:
    shell1, shell2 = readme_shell("shell 1"), readme_shell("shell 2")
    env = clean_env()
    # Given shell 1 running in the namespace, where nothing answers on 127.0.0.1:6379
    dev = CommandRun(["ip", "netns", "exec", netns, "bash", "-c", shell1], cwd=project_root,
                     env=env, out=project_root.parent / "shell1.out")
    try:
        seconds = dev.wait_ready()
        print(f"unsign-worker dev ready in {seconds:.1f} s (its own measure)")
        out = dev.text()
        assert "redis      redis://127.0.0.1:6379/0 (started here" in out, out
        assert (project_root / ".dev" / "env").exists()
        # When shell 2's commands run there, in the project's root
        ran = subprocess.run(["ip", "netns", "exec", netns, "bash", "-e", "-c", shell2],
                             cwd=project_root, env=env, capture_output=True, text=True,
                             timeout=SHELL2_SECONDS)
        # Then each succeeded: the job was unsigned, the campaign finished, status answered
        said = ran.stdout + ran.stderr
        assert ran.returncode == 0, said
        assert re.search(r"^[0-9a-f]{32} unsigned$", ran.stdout, re.MULTILINE), said
        assert re.search(r"^state done · name first", ran.stdout, re.MULTILINE), said
        assert "configuration OK: 0 error(s)" in said and "dev-w1@" in ran.stdout, said
        # When Ctrl-C reaches shell 1
        dev.interrupt()
        wait_for(lambda: not namespace_pids(netns), timeout=STOP_SECONDS, interval=0.2,
                 what="every process in the namespace to end")
        dev.wait_end()
    finally:
        dev.kill_all()
    # Then it stopped everything it started, its Redis last, and kept the logs
    out = dev.text()
    assert "stopped: console, flower, worker 1, emulator, redis; logs stay in .dev/logs/" in out, \
        out
    assert dev.survivors() == [], out
    assert (project_root / ".dev" / "logs" / "redis.log").stat().st_size > 0
