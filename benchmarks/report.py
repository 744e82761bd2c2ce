"""The campaign benchmark's readable table and its ratios (product / ceiling, product /
baseline, each against the run of the same pool, transport and round)."""

from __future__ import annotations

import statistics
from typing import Any


def ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per product run: its throughput over the ceiling's and the baseline's."""
    out = []
    for run in runs:
        if run["kind"] != "product":
            continue
        entry: dict[str, Any] = {"label": run["label"], "round": run.get("round", 1),
                                 "pool": run["pool"], "batch_size": run.get("batch_size")}
        for kind in ("ceiling", "baseline"):
            other = next((r for r in runs if r["kind"] == kind and r["pool"] == run["pool"]
                          and r.get("transport") == run.get("transport")
                          and r.get("round", 1) == entry["round"]), None)
            if other and other["jobs_per_s"]:
                entry[f"vs_{kind}"] = round(run["jobs_per_s"] / other["jobs_per_s"], 2)
        out.append(entry)
    return out


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run label over the rounds: median jobs/s and median ratios."""
    by_ratio = {(r["label"], r["round"]): r for r in ratios(runs)}
    out = []
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label]
        entry: dict[str, Any] = {"label": label, "rounds": len(mine),
                                 "jobs_per_s": [r["jobs_per_s"] for r in mine],
                                 "median_jobs_per_s": statistics.median(
                                     r["jobs_per_s"] for r in mine)}
        for key in ("vs_ceiling", "vs_baseline"):
            found = [by_ratio[(label, r.get("round", 1))].get(key) for r in mine
                     if (label, r.get("round", 1)) in by_ratio]
            values: list[float] = [float(v) for v in found if v is not None]
            if values:
                entry[key] = values
                entry[f"median_{key}"] = statistics.median(values)
        out.append(entry)
    return out


def _num(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _rss(run: dict[str, Any]) -> str:
    peaks = [v["peak"] for v in run["rss_mb"].values()]
    return "/".join(_num(p) for p in peaks)


def print_table(report: dict[str, Any]) -> None:
    runs = report.get("runs", [])
    by_run = {(r["label"], r["round"]): r for r in ratios(runs)}
    head = (f"{'run':<34}{'jobs/s':>8}{'/ceil':>7}{'/base':>7}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'RSS MB':>8}{'cpu ms/job':>11}{'enq s':>7}{'busy':>6}{'other':>6}{'inflt':>6}"
            f"{'conn/1k':>8}{'req/job':>8}  check")
    print()
    print(head)
    print("-" * len(head))
    several = any(r.get("round", 1) > 1 for r in runs)
    for run in runs:
        ratio = by_run.get((run["label"], run.get("round", 1)), {})
        cpu = run["cpu_ms_per_job"]
        name = f"{run['label']} #{run.get('round', 1)}" if several else run["label"]
        print(f"{name:<34}{_num(run['jobs_per_s']):>8}"
              f"{_num(ratio.get('vs_ceiling'), '.2f'):>7}{_num(ratio.get('vs_baseline'), '.2f'):>7}"
              f"{_num(run['latency_ms']['p50']):>9}{_num(run['latency_ms']['p99']):>9}"
              f"{_rss(run):>8}{_num(cpu['workers'], '.2f'):>11}"
              f"{_num(run.get('enqueue_seconds'), '.1f'):>7}"
              f"{_num(run['machine_busy_cores'], '.2f'):>6}"
              f"{_num(run['other_load_cores'], '.2f'):>6}"
              f"{_num(run['emulator']['max_in_flight']):>6}"
              f"{_num(run.get('connections_per_1000_jobs'), '.1f'):>8}"
              f"{_num(run.get('requests_per_job'), '.3f'):>8}  "
              f"{'ok' if run['ok'] else '; '.join(run['problems'])}")
    print("\njobs/s: first enqueue to last terminal state; p50/p99: enqueue to done (ceiling: "
          "one request); RSS: peak per process; cpu ms/job: worker (or client) processes; "
          "enq s: seconds to enqueue every job; busy: cores busy on the machine; other: cores "
          "taken by processes outside the benchmark; inflt: most requests the gateway held at "
          "once; conn/1k: connections the emulator accepted per 1,000 jobs; req/job: gateway "
          "requests per job. The JSON has the CPU of the producer, emulator and Redis too.")
    if several:
        print("\nmedians over the rounds (each ratio against the same round's runs):")
        for entry in medians(runs):
            line = f"  {entry['label']:<34}{entry['median_jobs_per_s']:>8,.0f} jobs/s"
            for key in ("vs_ceiling", "vs_baseline"):
                if f"median_{key}" in entry:
                    each = ", ".join(f"{v:.2f}" for v in entry[key])
                    line += f", {key} {entry[f'median_{key}']:.2f} ({each})"
            print(line)
    for run in runs:
        if run["kind"] != "product":
            continue
        for name, rss in run["rss_mb"].items():
            growth = None
            if rss["at_10pct"] and rss["at_100pct"]:
                growth = 100 * (rss["at_100pct"] / rss["at_10pct"] - 1)
            print(f"{run['label']}: {name} RSS {_num(rss['at_10pct'], '.1f')} MB at 10% -> "
                  f"{_num(rss['at_100pct'], '.1f')} MB at 100% (growth {_num(growth, '+.1f')}%)"
                  f"; states {run.get('states')}; all terminal: {run.get('all_terminal')}; "
                  f"gateway duplicates: {run['emulator']['duplicates']}")
        profile = run.get("profile") or {}
        if profile.get("samples"):
            areas = ", ".join(f"{name} {share}%" for name, share in profile["self_by_area_pct"])
            print(f"  py-spy ({profile['samples']} samples), self time by area: {areas}")
            for name, share in profile["self_pct"][:8]:
                print(f"    {share:5.1f}%  {name}")
    cpu = report.get("job_cpu")
    if cpu:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in cpu["breakdown_ms_per_job"].items())
        print(f"\nper-job CPU of our own code (in-process, stub gateway, {cpu['jobs']} jobs): "
              f"{cpu['cpu_ms_per_job']:.3f} ms/job (target < {cpu['target_ms']}); "
              f"Redis server {cpu['redis_server_cpu_ms_per_job']:.3f} ms/job")
        print(f"  by step (ms/job): {parts}")
