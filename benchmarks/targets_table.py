"""The table of ``make bench`` (benchmarks/targets.py), one per transport (TLS first): each
performance target, the product's figure, its baseline's (over the same transport), the ratio
(median over the rounds, each round in brackets) and whether the goal is met (reported, never
a gate); then a line per run with its connections per 1,000 jobs and requests per job."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

#: How each transport is named above its table.
TRANSPORT_NAMES = {"tls": "TLS (HTTPS, the workers with the production settings)",
                   "http": "plain HTTP (sandbox mode)"}


def _by_round(runs: list[dict[str, Any]], step: str) -> dict[int, dict[str, Any]]:
    return {r["round"]: r for r in runs if r["step"] == step}


def _ratio(runs: list[dict[str, Any]], mine: str, base: str,
           figure: Callable[[dict[str, Any]], float | None]) -> tuple[list[float], list[float],
                                                                      list[float]]:
    """Per round: my figure, the baseline's, and their ratio (rounds where both ran)."""
    a, b = _by_round(runs, mine), _by_round(runs, base)
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for rnd in sorted(set(a) & set(b)):
        x, y = figure(a[rnd]), figure(b[rnd])
        if x is None or not y:
            continue
        out[0].append(x)
        out[1].append(y)
        out[2].append(x / y)
    return out


def median_text(values: list[float], fmt: str) -> str:
    """The median of ``values`` in ``fmt``, each value in brackets when there are several."""
    if not values:
        return "-"
    each = ", ".join(format(v, fmt) for v in values)
    med = format(statistics.median(values), fmt)
    return med if len(values) == 1 else f"{med} ({each})"


def _row(rows: list[tuple[str, ...]], target: str, figure: str, mine: str, base: str,
         ratio: str, goal: str, met: bool | None) -> None:
    rows.append((target, figure, mine, base, ratio, goal,
                 "-" if met is None else ("yes" if met else "NO")))


def _growth(run: dict[str, Any] | None) -> tuple[float | None, str]:
    if not run:
        return None, "-"
    for rss in run["rss_mb"].values():
        if rss["at_10pct"] and rss["at_100pct"]:
            growth = 100 * (rss["at_100pct"] / rss["at_10pct"] - 1)
            return growth, (f"{rss['at_10pct']:.0f} -> {rss['at_100pct']:.0f} MB over "
                            f"{run['completed']:,} jobs")
    return None, "-"


def jobs_per_s(run: dict[str, Any]) -> float | None:
    return run["jobs_per_s"]


def product_cpu(run: dict[str, Any]) -> float | None:
    return run.get("product_cpu_ms_per_job")


def client_cpu(run: dict[str, Any]) -> float | None:
    return run["cpu_ms_per_job"]["workers"]


def print_targets(report: dict[str, Any], *, latency_ms: float, transport: str) -> None:
    """The targets over ``transport``; the figures measured once (own code, RSS over a long
    run, the detached enqueue) in the table of the first transport only."""
    runs = [r for r in report.get("runs", []) if r.get("transport", "http") == transport]
    first = transport == (report.get("transports") or [transport])[0]
    rows: list[tuple[str, ...]] = []
    mine, base, ratio = _ratio(runs, "campaign", "ceiling", jobs_per_s)
    median = statistics.median(ratio) if ratio else None
    _row(rows, "1 defaults", "campaign run, jobs/s vs Session.post gevent 200",
         median_text(mine, ",.0f"), median_text(base, ",.0f"), median_text(ratio, ".2f"), ">= 0.80",
         None if median is None else median >= 0.8)
    for step, name in (("client", "UnsignClient.enqueue"), ("inbox", "XADD to P inbox:<name>")):
        mine, base, ratio = _ratio(runs, step, "baseline", jobs_per_s)
        median = statistics.median(ratio) if ratio else None
        _row(rows, "2 single jobs", f"{name}, jobs/s vs plain Celery task",
             median_text(mine, ",.0f"), median_text(base, ",.0f"), median_text(ratio, ".2f"),
             ">= 1.50",
             None if median is None else median >= 1.5)
    for step in dict.fromkeys(r["step"] for r in runs if " " in r["step"]):
        kind, flags = step.split(" ", 1)
        base_step = "ceiling" if kind == "campaign" else "baseline"
        mine, base, ratio = _ratio(runs, step, base_step, jobs_per_s)
        _row(rows, "  compare", f"{kind} with worker flags {flags}", median_text(mine, ",.0f"),
             median_text(base, ",.0f"), median_text(ratio, ".2f"), "", None)
    idle = (report.get("idle_latency") or {}).get(transport)
    if idle:
        for q, goal in (("p50", 15.0), ("p99", 50.0)):
            rec, seen = idle["recorded_ms"][q], idle["caller_ms"][q]
            over = None if rec is None else rec - latency_ms
            _row(rows, "3 latency", f"{q} enqueue->terminal minus gateway {latency_ms:g} ms "
                 f"({idle['jobs']} jobs; caller sees {seen} ms)",
                 "-" if over is None else f"{over:+.1f} ms", "", "", f"<= {goal:g} ms",
                 None if over is None else over <= goal)
    for step, name in (("campaign", "campaign run"), ("client", "single jobs (client)")):
        a, b = _by_round(runs, step), _by_round(runs, "ceiling")
        pairs = [(product_cpu(a[n]), client_cpu(b[n])) for n in sorted(set(a) & set(b))]
        pairs = [(x, y) for x, y in pairs if x is not None and y]
        ratio = [x / y for x, y in pairs]
        median = statistics.median(ratio) if ratio else None
        _row(rows, "4 cost", f"{name}: CPU ms/job worker+producer+Redis vs client ms/request",
             median_text([x for x, _ in pairs], ".2f"), median_text([y for _, y in pairs], ".2f"),
             median_text(ratio, ".2f"), "<= 1.30", None if median is None else median <= 1.3)
    cpu = report.get("job_cpu") if first else None
    if cpu:
        _row(rows, "4 cost", f"own code CPU ms/job (in-process, stub gateway, "
             f"{cpu.get('batch_size', 1)} jobs per call as the worker runs them)",
             f"{cpu['cpu_ms_per_job']:.3f}", "", "", f"< {cpu['target_ms']}",
             cpu["cpu_ms_per_job"] < cpu["target_ms"])
    single = report.get("job_cpu_single") if first else None
    if single:
        _row(rows, "  compare", "own code CPU ms/job, one job per call (a job retried later)",
             f"{single['cpu_ms_per_job']:.3f}", "", "", "-", None)
    long = (report.get("long") if first else None) or max(
        (r for r in runs if r["step"] == "campaign"), key=lambda r: r["completed"], default=None)
    growth, text = _growth(long)
    _row(rows, "4 cost", f"worker RSS growth, 10% -> 100% ({text})",
         "-" if growth is None else f"{growth:+.1f}%", "", "", "< 20%",
         None if growth is None else growth < 20)
    detach = report.get("detach") if first else None
    if detach:
        _row(rows, "5 enqueue", f"campaign run --detach, {detach['rows']:,} rows, worker "
             f"draining ({detach['drained_meanwhile']:,} done meanwhile; command CPU "
             f"{detach['cpu_s']:.1f} s)",
             f"{detach['seconds']:.1f} s", "", "", "< 10 s",
             detach["exit_code"] == 0 and detach["seconds"] < 10)
    heads = ("target", "figure", "unsign-worker", "baseline", "ratio", "goal", "met")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print()
    print(f"over {TRANSPORT_NAMES.get(transport, transport)}; "
          f"defaults: --pool {report['defaults']['pool']} --concurrency "
          f"{report['defaults']['concurrency']}, {report['defaults'].get('processes')} "
          "process(es); load average "
          f"{_load(report.get('load_avg_start'))} at the start, "
          f"{_load(report.get('load_avg_end'))} at the end; "
          f"{len({r['round'] for r in runs})} interleaved rounds, median (each round)")
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    problems = [f"{r['label']} #{r['round']}: {'; '.join(r['problems'])}" for r in runs
                if not r["ok"]]
    for line in problems:
        print(f"CHECK FAILED {line}")
    for r in runs:
        print(f"  {r['label']} #{r['round']}: {r['jobs_per_s']:,.0f} jobs/s, "
              f"states {r.get('states')}, gateway in flight max "
              f"{r['emulator']['max_in_flight']}, connections opened "
              f"{r['emulator'].get('connections_opened')} "
              f"({_num(r.get('connections_per_1000_jobs'), '.1f')} per 1,000 jobs), requests "
              f"per job {_num(r.get('requests_per_job'), '.3f')}, worker CPU "
              f"{_num(r['cpu_ms_per_job']['workers'], '.2f')} ms/job, other load "
              f"{r['other_load_cores']} cores")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _load(values: Any) -> str:
    return "-" if not values else "/".join(f"{v:.2f}" for v in values)
