"""TLS beside plain HTTP, per step of ``make bench --transport both`` (benchmarks/targets.py):
throughput, worker (or client) CPU per job, connections the emulator accepted per 1,000 jobs
and gateway requests per job, each ratio TLS / HTTP taken within one round (median over the
rounds, each round in brackets)."""

from __future__ import annotations

from typing import Any

from targets_table import median_text


def _pairs(runs: list[dict[str, Any]], step: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(TLS run, HTTP run) of ``step`` per round where both ran."""
    by = {(r["round"], r.get("transport")): r for r in runs if r["step"] == step}
    rounds = sorted({n for n, _ in by})
    return [(by[(n, "tls")], by[(n, "http")]) for n in rounds
            if (n, "tls") in by and (n, "http") in by]


def _figure(pairs: list[tuple[dict[str, Any], dict[str, Any]]], read: Any, fmt: str,
            ratio: bool = True) -> tuple[str, str, str]:
    tls, http, ratios = [], [], []
    for a, b in pairs:
        x, y = read(a), read(b)
        if x is None or y is None:
            continue
        tls.append(x)
        http.append(y)
        if y:
            ratios.append(x / y)
    return (median_text(tls, fmt), median_text(http, fmt),
            median_text(ratios, ".2f") if ratio else "")


def comparison_rows(runs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per step and figure: step, figure, TLS, HTTP, TLS / HTTP."""
    rows: list[tuple[str, ...]] = []
    for step in dict.fromkeys(r["step"] for r in runs):
        pairs = _pairs(runs, step)
        if not pairs:
            continue
        who = "client" if pairs[0][0]["kind"] == "ceiling" else "worker"
        for name, read, fmt, ratio in (
                ("jobs/s", lambda r: r["jobs_per_s"], ",.0f", True),
                (f"{who} CPU ms/job", lambda r: r["cpu_ms_per_job"]["workers"], ".2f", True),
                ("connections per 1,000 jobs", lambda r: r.get("connections_per_1000_jobs"),
                 ".1f", False),
                ("gateway requests per job", lambda r: r.get("requests_per_job"), ".3f",
                 False)):
            rows.append((step, name, *_figure(pairs, read, fmt, ratio)))
    return rows


def print_tls_vs_http(runs: list[dict[str, Any]]) -> None:
    """The comparison table, when both transports ran (else nothing)."""
    rows = comparison_rows(runs)
    if not rows:
        return
    heads = ("step", "figure", "TLS", "plain HTTP", "TLS / HTTP")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print()
    print("TLS beside plain HTTP, the same rounds (each ratio within its round; median "
          "(each round)):")
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
