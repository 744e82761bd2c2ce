"""The same campaign benchmark run from two checkouts, in interleaved rounds.

For a change that must not slow the product down (a restructure, a dependency bump): each round
runs ``benchmarks/campaign.py --runs ceiling,product`` once in the BEFORE checkout, then once in
the AFTER checkout (the order alternates between rounds), each with its own virtualenv and the
same options. Every run measures its own HTTP ceiling next to the product, so the figure compared
is the product's share of its ceiling, which the machine's other load moves less than jobs/s.

    .venv/bin/python benchmarks/before_after.py BEFORE_DIR AFTER_DIR [--rounds 3]
        [-- OPTIONS OF campaign.py]

Each checkout needs ``.venv`` (``make .venv/.installed-bench`` in it). Redis:
``UNSIGN_REDIS_URL`` (default redis://127.0.0.1:6379/14), given to both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_OPTIONS = ["--jobs", "3000", "--pool", "gevent", "--concurrency", "100",
                   "--batch-size", "50", "--workers", "1"]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="checkout of the code before the change")
    parser.add_argument("after", type=Path, help="checkout of the code after the change")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for checkout in (args.before, args.after):
        if not (checkout / ".venv" / "bin" / "python").exists():
            parser.error(f"{checkout}: no .venv (run: make .venv/.installed-bench there)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args, extra or DEFAULT_OPTIONS


def run_once(checkout: Path, options: list[str], out: Path) -> dict[str, Any]:
    """One ceiling + product run of ``checkout``'s benchmark; its product figures."""
    command = [str(checkout / ".venv" / "bin" / "python"), "benchmarks/campaign.py",
               "--runs", "ceiling,product", "--rounds", "1", "--out", str(out), *options]
    done = subprocess.run(command, cwd=checkout, stdout=subprocess.DEVNULL, check=False)
    report = json.loads(out.read_text()) if out.exists() else {}
    runs = report.get("runs", [])
    product = next((r for r in runs if r["kind"] == "product"), None)
    ceiling = next((r for r in runs if r["kind"] == "ceiling"), None)
    if done.returncode or product is None or ceiling is None or not product.get("ok"):
        problems = product.get("problems") if product else report.get("error", "no product run")
        return {"ok": False, "problems": problems}
    return {"ok": True, "jobs_per_s": product["jobs_per_s"],
            "vs_ceiling": round(product["jobs_per_s"] / ceiling["jobs_per_s"], 3),
            "cpu_ms_per_job": product["cpu_ms_per_job"]["workers"],
            "p50_ms": product["latency_ms"]["p50"], "p99_ms": product["latency_ms"]["p99"]}


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="unsign-before-after-") as tmp:
        for number in range(1, args.rounds + 1):
            order = ["before", "after"] if number % 2 else ["after", "before"]
            for name in order:
                checkout = args.before if name == "before" else args.after
                print(f"round {number}: {name} ({checkout}) ...", file=sys.stderr)
                figures = run_once(checkout, options, Path(tmp) / f"{name}-{number}.json")
                results[name].append(figures)
                print(f"  {json.dumps(figures)}", file=sys.stderr)
    print(f"campaign.py {' '.join(options)}; {args.rounds} interleaved rounds")
    print(f"{'checkout':<10}{'product/ceiling (each round)':<36}{'jobs/s':>8}  "
          "worker CPU ms/job (each round)")
    failed = False
    for name in ("before", "after"):
        good = [r for r in results[name] if r["ok"]]
        failed = failed or len(good) < len(results[name])
        if not good:
            print(f"{name:<8}  no run finished: {results[name]}")
            continue
        ratio = f"{statistics.median(r['vs_ceiling'] for r in good):.2f} (" + ", ".join(
            f"{r['vs_ceiling']:.2f}" for r in good) + ")"
        cpu = f"{statistics.median(r['cpu_ms_per_job'] for r in good):.2f} (" + ", ".join(
            f"{r['cpu_ms_per_job']:.2f}" for r in good) + ")"
        jobs = statistics.median(r["jobs_per_s"] for r in good)
        print(f"{name:<10}{ratio:<36}{jobs:>8,.0f}  {cpu}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
