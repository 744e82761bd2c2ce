"""Profiles of a running worker with py-spy, and a summary the table can print.

``py-spy record --format raw`` writes one collapsed stack per line,
``frame;frame;...;frame <samples>`` with frames ``function (path:line)``. Only the thread that
holds the GIL is sampled (``--gil``), so the samples show where the Python CPU goes (threads
waiting on a socket or a queue are left out). The
summary gives the functions with the most samples on top of the stack (self), the functions
present in the most stacks (inclusive; also for our own functions alone), and the self samples
by area (our code, Celery, kombu, redis-py, the HTTP client, logging, ...).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench_support import Processes, child_env

#: Samples per second taken by py-spy.
RATE_HZ = 100
#: Path fragments that name an area, first match wins.
AREAS = (
    ("unsign_worker/", "unsign_worker"), ("/celery/", "celery"), ("/kombu/", "kombu"),
    ("/billiard/", "celery"), ("/redis/", "redis-py"), ("/requests/", "http client"),
    ("/urllib3/", "http client"), ("http/client.py", "http client"), ("/logging/", "logging"),
    ("/gevent/", "gevent"), ("/json/", "json"), ("socket.py", "sockets"), ("ssl.py", "sockets"),
    ("selectors.py", "sockets"), ("/tenacity/", "tenacity"), ("/defusedxml/", "xml"),
    ("/xml/", "xml"), ("threading.py", "threads"), ("queue.py", "threads"),
    ("concurrent/futures", "threads"),
)


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def start_py_spy(procs: Processes, name: str, pid: int, out: Path) -> bool:
    """Start recording ``pid`` into ``out`` (raw collapsed stacks); False without py-spy."""
    binary = py_spy()
    if binary is None:
        return False
    procs.start(name, [binary, "record", "--pid", str(pid), "--rate", str(RATE_HZ),
                       "--format", "raw", "--full-filenames", "--nonblocking", "--gil",
                       "--output", str(out)], env=child_env(), cwd=out.parent)
    return True


def dump_stacks(pid: int) -> str:
    """``py-spy dump`` of every thread of ``pid`` (why a worker is stuck), or a reason."""
    binary = py_spy()
    if binary is None:
        return "py-spy is not installed"
    try:
        done = subprocess.run([binary, "dump", "--pid", str(pid)], capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "py-spy dump timed out"
    return (done.stdout + done.stderr)[-20_000:]


def _frame(frame: str) -> tuple[str, str]:
    """``function (path:line)`` -> (``function (file)``, path)."""
    func, _, rest = frame.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:])
    return f"{func} ({short})", path


def area_of(path: str) -> str:
    for fragment, area in AREAS:
        if fragment in path:
            return area
    return "other (stdlib)"


def summarise(raw: Path, *, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive samples, and self samples by area (percentages)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(f) for f in stack.split(";")]
        leaf, leaf_path = frames[-1]
        own[leaf] += samples
        areas[area_of(leaf_path)] += samples
        for name in {name for name, _ in frames}:
            inclusive[name] += samples
        for name in {name for name, path in frames if "unsign_worker/" in path}:
            ours[name] += samples

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    if not total:
        return {"samples": 0}
    return {"samples": total, "self_by_area_pct": share(areas), "self_pct": share(own),
            "ours_inclusive_pct": share(ours), "inclusive_pct": share(inclusive)}
