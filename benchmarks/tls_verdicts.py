"""The criteria of benchmarks/tls_check.py, judged from its runs' figures, and their table: one
row per criterion, one column per run, the goal and a yes/no. The correctness criteria are
gates (the check's exit status); throughput TLS / HTTP is reported against its goal only."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

#: What gevent prints when it patches ``ssl`` after ``ssl`` was imported (TLS may then break).
WARNING = "MonkeyPatchWarning"
#: At most this many gateway requests per job (a retried request is allowed, a habit is not).
MAX_REQUESTS_PER_JOB = 1.02
#: Throughput over TLS against plain HTTP, the same round (reported, never a gate).
THROUGHPUT_GOAL = 0.7


def _name(run: dict[str, Any]) -> str:
    return f"{'TLS' if run['transport'] == 'tls' else 'HTTP'} #{run['round']}"


def _per_run(report: dict[str, Any]) -> list[tuple[str, str, Callable[[dict[str, Any]], Any],
                                                   Callable[[dict[str, Any]], bool]]]:
    """(criterion, goal, value of a run, is the run's value good) for each gate."""
    bound = report["worker"]["connection_bound"]
    worker = report["worker"]
    return [
        ("every job's terminal state", "all unsigned",
         lambda r: ", ".join(f"{k} {v}" for k, v in sorted((r.get("states") or {}).items())),
         lambda r: r.get("states") == {"unsigned": r["jobs"]}),
        ("gateway requests per job", f"<= {MAX_REQUESTS_PER_JOB}",
         lambda r: _fmt(r.get("requests_per_job"), ".3f"),
         lambda r: r.get("requests_per_job") is not None
         and r["requests_per_job"] <= MAX_REQUESTS_PER_JOB),
        (f"new connections at the emulator (bound {worker['processes']} processes x "
         f"pool {worker['http_pool_size']})", f"<= {bound}",
         lambda r: str(r["emulator"].get("connections_opened")),
         lambda r: r["emulator"].get("connections_opened") is not None
         and r["emulator"]["connections_opened"] <= bound),
        (f"{WARNING} in the worker's output", "none",
         lambda r: "found" if r.get("monkey_patch_warning") else "none",
         lambda r: not r.get("monkey_patch_warning")),
        ("the run's own checks (all terminal, one unsign each, no duplicate)", "ok",
         lambda r: "ok" if r["ok"] else "; ".join(r["problems"]), lambda r: bool(r["ok"])),
    ]


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratios(runs: list[dict[str, Any]], read: Callable[[dict[str, Any]], float | None]
            ) -> list[float]:
    """TLS / HTTP of ``read`` per round where both ran."""
    by = {(r["round"], r["transport"]): r for r in runs}
    out = []
    for number in sorted({n for n, _ in by}):
        if (number, "tls") in by and (number, "http") in by:
            x, y = read(by[(number, "tls")]), read(by[(number, "http")])
            if x is not None and y:
                out.append(x / y)
    return out


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each criterion: its value per run, the goal, ok, and whether it is a gate."""
    runs = report.get("runs", [])
    out = [{"criterion": name, "values": {_name(r): value(r) for r in runs}, "goal": goal,
            "ok": bool(runs) and all(good(r) for r in runs), "gate": True}
           for name, goal, value, good in _per_run(report)]
    for name, read, fmt in (("jobs/s", lambda r: r["jobs_per_s"], ",.0f"),
                            ("worker CPU ms/job", lambda r: r["cpu_ms_per_job"]["workers"],
                             ".2f"),
                            ("connections per 1,000 jobs",
                             lambda r: r.get("connections_per_1000_jobs"), ".1f")):
        out.append({"criterion": name, "values": {_name(r): _fmt(read(r), fmt) for r in runs},
                    "goal": "", "ok": None, "gate": False})
    cpu = _ratios(runs, lambda r: r["cpu_ms_per_job"]["workers"])
    out.append({"criterion": "worker CPU per job TLS / HTTP, per round", "values": {
        "TLS / HTTP": _each(cpu)}, "goal": "", "ok": None, "gate": False})
    speed = _ratios(runs, lambda r: r["jobs_per_s"])
    out.append({"criterion": "throughput TLS / HTTP, per round", "values": {
        "TLS / HTTP": _each(speed)}, "goal": f">= {THROUGHPUT_GOAL}",
        "ok": bool(speed) and statistics.median(speed) >= THROUGHPUT_GOAL, "gate": False})
    return out


def _each(values: list[float]) -> str:
    if not values:
        return "-"
    median = f"{statistics.median(values):.2f}"
    return median if len(values) == 1 else f"{median} ({', '.join(f'{v:.2f}' for v in values)})"


def print_verdicts(report: dict[str, Any]) -> None:
    runs = report.get("runs", [])
    columns = [_name(r) for r in runs]
    heads = ("criterion", *columns, "goal", "met")
    rows = []
    for v in report["verdicts"]:
        values = [v["values"].get(c, "") for c in columns]
        if "TLS / HTTP" in v["values"]:  # one figure across the runs, in the first column
            values = [v["values"]["TLS / HTTP"], *[""] * (len(columns) - 1)]
        met = "-" if v["ok"] is None else ("yes" if v["ok"] else "NO")
        rows.append((v["criterion"], *values, v["goal"],
                     met if v["gate"] or v["ok"] is None else f"{met} (reported)"))
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(heads)]
    worker = report["worker"]
    print()
    print(f"{worker['command']} (no option: --pool {worker['pool']} --concurrency "
          f"{worker['concurrency']}, {worker['processes']} process(es)); "
          f"{report['options']['jobs']} campaign jobs per run, emulator at "
          f"{report['options']['latency_ms']:g} ms; load average "
          f"{_load(report.get('load_avg_start'))} -> {_load(report.get('load_avg_end'))}")
    for transport, env in report.get("settings", {}).items():
        shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
        sandbox = "" if "UNSIGN_SANDBOX" in env else " (UNSIGN_SANDBOX unset)"
        print(f"  {transport}: {shown}{sandbox}")
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    gates = [v for v in report["verdicts"] if v["gate"]]
    failed = [v["criterion"] for v in gates if not v["ok"]]
    print(f"\ncorrectness: {'all criteria met' if not failed else 'FAILED: ' + '; '.join(failed)}"
          + (f"; error: {report['error']}" if report.get("error") else ""))


def _load(values: Any) -> str:
    return "-" if not values else "/".join(f"{v:.2f}" for v in values)
