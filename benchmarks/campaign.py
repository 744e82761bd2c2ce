"""Campaign benchmark: unsign-worker against the HTTP ceiling and the plain Celery way.

One invocation, on this machine, against the emulator started as its own process on 127.0.0.1
at ``--latency-ms`` (default 50). For each pool in ``--pool``, with the same jobs (every one
unsigns a different signed agreement; the emulator is reset between runs):

1. **ceiling**: the signed requests sent straight to the emulator from ``--workers`` client
   processes of ``--concurrency`` threads (or greenlets), no queue;
2. **baseline**: one plain Celery task per job (benchmarks/baseline_app.py), acks_late, default
   prefetch, same pool, concurrency and number of worker processes;
3. **unsign-worker**: ``unsign-worker worker`` processes, jobs enqueued with the product's
   Producer (``--batch-size``, 0 = one message per job; a comma list runs each).

Over TLS by default (``--transport tls``: the emulator serves HTTPS with a sandbox PKI made once
per run; the ceiling and the baseline trust its CA and keep their connections; the workers run
with the production settings, no sandbox mode, the CA in ``ALIPAY_CA_BUNDLE``); ``--transport
http`` measures plain HTTP (sandbox mode); ``--transport both`` runs every run over both in the
same rounds and prints TLS / HTTP per run (jobs/s, CPU per job, connections per 1,000 jobs).

Then the CPU cost per job of our own code, in-process against a stub gateway (see
benchmarks/job_cpu.py). Prints a table and writes every figure as JSON (``--out``). Bounded:
each run stops when done, stalled (``--stall-s``) or timed out (``--timeout-s``); every child
process group is stopped and every Redis key of the benchmark deleted, on Ctrl-C too.

    .venv/bin/python benchmarks/campaign.py [--jobs 5000] [--concurrency 100] [--latency-ms 50]
        [--pool threads,gevent] [--batch-size 0,50] [--workers 1] [--rounds 3] [--profile]
        [--transport tls|http|both]

Redis: ``UNSIGN_REDIS_URL`` (``make bench`` gives db 14), default redis://127.0.0.1:6379/14.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis
from bench_runs import Setup, run_ceiling
from bench_support import (
    Processes,
    delete_prefix,
    exit_status,
    machine,
    raise_interrupt,
    save_report,
)
from bench_tls import TRANSPORT_CHOICES, start_emulators, transports
from bench_workers import run_baseline, run_product
from job_cpu import REPEATS, WARMUP_JOBS, measure
from recovery_cost import describe as describe_recovery
from recovery_cost import measure as measure_recovery
from report import medians, print_table, ratios
from tls_table import print_tls_vs_http

from unsign_worker.cli.emulator_cmds import write_agreements
from unsign_worker.emulator.seed import generate

PARTNER = "2088101568338364"
RESULTS = Path(__file__).resolve().parent / "results"


def _list(kind: type, text: str) -> list[Any]:
    return [kind(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per run")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="pool size of each worker (and ceiling client) process")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per run")
    parser.add_argument("--pool", type=lambda t: _list(str, t), default=["threads"],
                        help="threads, gevent, or both: threads,gevent")
    parser.add_argument("--batch-size", type=lambda t: _list(int, t), default=[50],
                        help="jobs per product message, 0 = one per job; a list runs each")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every run this many times, interleaved, and report "
                        "medians (the machine is shared and noisy)")
    parser.add_argument("--runs", type=lambda t: _list(str, t),
                        default=["ceiling", "baseline", "product", "cpu"],
                        help="which of ceiling,baseline,product,cpu to run")
    parser.add_argument("--cpu-jobs", type=int, default=2000,
                        help="jobs of the in-process per-job CPU measurement")
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="tls",
                        help="tls (default: HTTPS, the workers with the production settings), "
                        "http (plain HTTP, sandbox mode), or both in the same rounds")
    parser.add_argument("--loglevel", default="INFO", help="worker log level (both workers)")
    parser.add_argument("--stall-s", type=float, default=60.0,
                        help="abandon a run after this long without progress")
    parser.add_argument("--timeout-s", type=float, default=1800.0,
                        help="abandon a run after this long")
    parser.add_argument("--profile", action="store_true",
                        help="record the product worker with py-spy (costs it some CPU)")
    parser.add_argument("--out", default="", help="JSON file (default: benchmarks/results/"
                        "campaign-<timestamp>.json)")
    args = parser.parse_args(argv)
    for pool in args.pool:
        if pool not in ("threads", "gevent"):
            parser.error(f"--pool: {pool!r} is not threads or gevent")
    if min(args.jobs, args.concurrency, args.workers, args.cpu_jobs, args.rounds) < 1:
        parser.error("--jobs, --concurrency, --workers, --cpu-jobs and --rounds must be at "
                     "least 1")
    if any(b < 0 for b in args.batch_size):
        parser.error("--batch-size: must not be negative")
    return args



def _steps(args: argparse.Namespace, pool: str
           ) -> list[tuple[str, Callable[[Setup], dict[str, Any]]]]:
    """The runs of one round for ``pool`` (those named in ``--runs``), each given its Setup."""
    steps: list[tuple[str, Callable[[Setup], dict[str, Any]]]] = [
        ("ceiling", run_ceiling), ("baseline", run_baseline)]
    steps += [(f"product b{b}", partial(run_product, batch_size=b)) for b in args.batch_size]
    return [(name, step) for name, step in steps if name.split()[0] in args.runs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = transports(args.transport)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"campaign-{stamp}.json"
    redis_url = os.environ.get("UNSIGN_REDIS_URL") or "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(redis_url)
    client.ping()
    run_id = secrets.token_hex(4)
    key = secrets.token_hex(16)
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "options": {k: v for k, v in vars(args).items() if k != "out"}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="unsign-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        logs = RESULTS / f"logs-{stamp}"
        logs.mkdir(parents=True, exist_ok=True)
        procs = Processes(logs)
        try:
            print(f"data set: {args.jobs} agreements, emulator at {args.latency_ms:g} ms, "
                  f"logs in {logs}", file=sys.stderr)
            data = generate(args.jobs, {"success": 1.0}, partner=PARTNER, seed=1)
            write_agreements(str(tmp / "agreements.json"), data)
            (tmp / "scenario.json").write_text(json.dumps(
                {"faults": {"latency_ms": args.latency_ms}}))
            gateways = start_emulators(procs, wanted, tmp=tmp,
                                       agreements=tmp / "agreements.json",
                                       scenario=tmp / "scenario.json", partner=PARTNER, key=key)
            params = [{k: v for k, v in row.items() if v and k != "reference"}
                      for row in data.rows]
            for pool in args.pool:
                setups = {t: Setup(client=client, redis_url=redis_url, run_id=run_id,
                                   gateway_url=g.url, admin=g.admin, emulator_pid=g.pid,
                                   partner=PARTNER, key=key, params=params,
                                   references=[row["reference"] for row in data.rows],
                                   pool=pool, concurrency=args.concurrency,
                                   workers=args.workers, loglevel=args.loglevel,
                                   stall_seconds=args.stall_s, timeout_seconds=args.timeout_s,
                                   procs=procs, tmp=tmp, results_dir=RESULTS, stamp=stamp,
                                   profile=args.profile, transport=t, ca_file=g.ca_file)
                          for t, g in gateways.items()}
                for number in range(1, args.rounds + 1):
                    order = wanted if number % 2 else wanted[::-1]  # neither always first
                    for name, step in _steps(args, pool):
                        for transport in order:
                            print(f"running {name} over {transport} ({pool}, round "
                                  f"{number}) ...", file=sys.stderr)
                            report["runs"].append({**step(setups[transport]), "round": number,
                                                   "step": f"{name} {pool}"})
                            save_report(out, report)
            if "cpu" in args.runs:
                print("measuring the per-job CPU cost in-process ...", file=sys.stderr)
                rows = generate((REPEATS + 2) * args.cpu_jobs + WARMUP_JOBS, {"success": 1.0},
                                partner=PARTNER, seed=2).rows
                report["job_cpu"] = measure(
                    redis_url=redis_url, prefix=f"bench:{run_id}:cpu:", partner=PARTNER,
                    key=key, params=[{k: v for k, v in r.items() if v and k != "reference"}
                                     for r in rows],
                    jobs=args.cpu_jobs, results_dir=RESULTS, stamp=stamp)
            report["recovery_cost"] = measure_recovery(
                client, f"bench:{run_id}:recovery:", jobs=args.jobs,
                batch_size=max([b for b in args.batch_size if b > 1] or [1]))
        except KeyboardInterrupt:
            print("interrupted: stopping the processes and deleting the keys", file=sys.stderr)
            report["interrupted"] = True
        except Exception as exc:  # reported with the figures gathered so far
            traceback.print_exc()
            report["error"] = repr(exc)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
            procs.stop_all()
            delete_prefix(client, f"bench:{run_id}:")  # every run's prefix is under it
            signal.signal(signal.SIGINT, signal.default_int_handler)
    report["ratios"] = ratios(report["runs"])
    report["medians"] = medians(report["runs"])
    save_report(out, report)
    print_table(report)
    print_tls_vs_http(report["runs"])
    if "recovery_cost" in report:
        print(describe_recovery(report["recovery_cost"]))
    print(f"\nfigures written to {out}")
    return exit_status(report)



if __name__ == "__main__":
    sys.exit(main())
