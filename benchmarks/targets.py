"""``make bench``: the performance targets 1-5, measured with the product's DEFAULTS, in one table.

Every ratio is taken side by side in one invocation against its baseline, in interleaved
rounds (``--rounds``, median reported, each round's value listed): the machine is shared.

1. ``unsign-worker worker`` (no options) + ``unsign-worker campaign run FILE`` of
   ``--campaign-jobs`` rows vs the ceiling: a plain ``requests.Session.post`` in a gevent pool
   of 200, one process, the same signed requests (benchmarks/ceiling_client.py
   ``--client session``);
2. ``--single-jobs`` jobs, each its own call, enqueued one by one through
   ``UnsignClient.enqueue`` and through the inbox stream, vs one plain Celery task per job
   (benchmarks/baseline_app.py) with the worker's default pool and concurrency;
3. one job at a time into an idle worker: enqueue to terminal state, p50/p99, minus the
   gateway latency;
4. whole-product CPU per job (workers + producer + Redis server) vs the ceiling client's CPU
   per request; our own code's CPU per job (benchmarks/job_cpu.py); worker RSS growth (over
   ``--long-jobs`` jobs when given, e.g. 100000);
5. ``campaign run FILE --detach`` of ``--detach-rows`` rows while a default worker drains.

    .venv/bin/python benchmarks/targets.py [--rounds 3] [--campaign-jobs 5000]
        [--single-jobs 5000] [--latency-jobs 100] [--detach-rows 100000] [--long-jobs 0]

Redis: ``UNSIGN_REDIS_URL`` (``make bench`` gives db 14). Figures go to
``benchmarks/results/targets-<timestamp>.json``; the exit status is 1 if a run failed a check
(a job missing, a duplicate unsign, a bad signature), not if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import redis
from bench_defaults import run_campaign_cli, run_detach, run_idle_latency, run_single
from bench_runs import Setup, run_ceiling
from bench_support import (
    Processes,
    delete_prefix,
    exit_status,
    machine,
    raise_interrupt,
    save_report,
    start_emulator,
)
from bench_workers import run_baseline
from job_cpu import REPEATS, WARMUP_JOBS, measure
from targets_table import print_targets

from unsign_worker.cli.emulator_cmds import write_agreements
from unsign_worker.cli.worker_cmds import DEFAULT_CONCURRENCY, DEFAULT_POOL
from unsign_worker.emulator.seed import generate
from unsign_worker.worker.inbox import BATCH_SIZE as INBOX_BATCH_SIZE
from unsign_worker.worker.processes import default_processes

PARTNER = "2088101568338364"
RESULTS = Path(__file__).resolve().parent / "results"
#: The ceiling of target 1: a gevent pool of 200 in one process.
CEILING_POOL, CEILING_CONCURRENCY = "gevent", 200


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--campaign-jobs", type=int, default=5000)
    parser.add_argument("--single-jobs", type=int, default=5000)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--detach-rows", type=int, default=100_000, help="0 skips target 5")
    parser.add_argument("--long-jobs", type=int, default=0,
                        help="jobs of an extra campaign run for the RSS growth (e.g. 100000)")
    parser.add_argument("--cpu-jobs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip", default="", help="comma list of 1,2,3,4,5 to leave out")
    parser.add_argument("--compare", action="append", default=[], metavar="FLAGS",
                        help="also run targets 1 and 2 with these worker flags, in the same "
                        "rounds (e.g. --compare='--pool threads --concurrency 32'; the word "
                        "no-hiredis runs the worker as if hiredis were not installed)")
    parser.add_argument("--stall-s", type=float, default=60.0)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args(argv)
    if min(args.rounds, args.campaign_jobs, args.single_jobs, args.latency_jobs) < 1:
        parser.error("--rounds and the job counts must be at least 1")
    return args



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = set(args.skip.split(","))
    signal.signal(signal.SIGTERM, raise_interrupt)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"targets-{stamp}.json"
    redis_url = os.environ.get("UNSIGN_REDIS_URL") or "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(redis_url)
    client.ping()
    run_id, key = secrets.token_hex(4), secrets.token_hex(16)
    report: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": machine(), "load_avg_start": os.getloadavg(),
                              "options": vars(args), "defaults": {
                                  "pool": DEFAULT_POOL, "concurrency": DEFAULT_CONCURRENCY,
                                  "processes": default_processes()},
                              "runs": []}
    size = max(args.campaign_jobs, args.single_jobs, args.long_jobs, args.latency_jobs)
    with tempfile.TemporaryDirectory(prefix="unsign-targets-") as tmp_dir:
        tmp = Path(tmp_dir)
        logs = RESULTS / f"logs-{stamp}"
        logs.mkdir(parents=True, exist_ok=True)
        procs = Processes(logs)
        try:
            data = generate(size, {"success": 1.0}, partner=PARTNER, seed=1)
            write_agreements(str(tmp / "agreements.json"), data)
            (tmp / "scenario.json").write_text(json.dumps(
                {"faults": {"latency_ms": args.latency_ms}}))
            gateway_url, admin, emulator_pid = start_emulator(
                procs, agreements=tmp / "agreements.json", scenario=tmp / "scenario.json",
                partner=PARTNER, key=key, cwd=tmp)
            params = [{k: v for k, v in row.items() if v and k != "reference"}
                      for row in data.rows]
            refs = [row["reference"] or f"bench-{i}" for i, row in enumerate(data.rows)]

            def setup(jobs: int, pool: str, concurrency: int) -> Setup:
                return Setup(client=client, redis_url=redis_url, run_id=run_id,
                             gateway_url=gateway_url, admin=admin, emulator_pid=emulator_pid,
                             partner=PARTNER, key=key, params=params[:jobs],
                             references=refs[:jobs], pool=pool, concurrency=concurrency,
                             workers=1, loglevel="INFO", stall_seconds=args.stall_s,
                             timeout_seconds=args.timeout_s, procs=procs, tmp=tmp,
                             results_dir=RESULTS, stamp=stamp, ceiling_client="session")

            camp = setup(args.campaign_jobs, CEILING_POOL, CEILING_CONCURRENCY)
            single = setup(args.single_jobs, DEFAULT_POOL, DEFAULT_CONCURRENCY)
            steps = []
            if "1" not in skip:
                steps += [("ceiling", lambda: run_ceiling(camp)),
                          ("campaign", partial(run_campaign_cli, camp,
                                               data.rows[:args.campaign_jobs],
                                               "defaults campaign run"))]
            if "2" not in skip:
                steps += [("baseline", lambda: run_baseline(single)),
                          ("client", lambda: run_single(single, "client",
                                                        "defaults single client")),
                          ("inbox", lambda: run_single(single, "inbox",
                                                       "defaults single inbox"))]
            for flags in args.compare:
                extra = tuple(flags.split())
                if "1" not in skip:
                    steps.append((f"campaign {flags}", partial(
                        run_campaign_cli, camp, data.rows[:args.campaign_jobs],
                        f"campaign run {flags}", extra)))
                if "2" not in skip:
                    steps.append((f"client {flags}", partial(
                        run_single, single, "client", f"single client {flags}", extra)))
            for number in range(1, args.rounds + 1):
                for name, step in steps:
                    print(f"running {name} (round {number}) ...", file=sys.stderr)
                    report["runs"].append({**step(), "step": name, "round": number})
                    save_report(out, report)
            if "3" not in skip:
                print("running idle latency ...", file=sys.stderr)
                report["idle_latency"] = run_idle_latency(single, args.latency_jobs)
            if args.long_jobs:
                print(f"running the {args.long_jobs}-job campaign ...", file=sys.stderr)
                long = setup(args.long_jobs, CEILING_POOL, CEILING_CONCURRENCY)
                report["long"] = run_campaign_cli(long, data.rows[:args.long_jobs],
                                                  "defaults long campaign")
            if "4" not in skip:
                print("measuring our own code's CPU per job in-process ...", file=sys.stderr)
                rows = generate((REPEATS + 2) * args.cpu_jobs + WARMUP_JOBS, {"success": 1.0},
                                partner=PARTNER, seed=2).rows
                cpu_params = [{k: v for k, v in r.items() if v and k != "reference"}
                              for r in rows]
                # the path every job takes by default (batches), then one job per call
                report["job_cpu"] = measure(
                    redis_url=redis_url, prefix=f"bench:{run_id}:cpu:", partner=PARTNER,
                    key=key, params=cpu_params, jobs=args.cpu_jobs, results_dir=RESULTS,
                    stamp=stamp, batch_size=INBOX_BATCH_SIZE)
                report["job_cpu_single"] = measure(
                    redis_url=redis_url, prefix=f"bench:{run_id}:cpu1:", partner=PARTNER,
                    key=key, params=cpu_params, jobs=args.cpu_jobs, results_dir=RESULTS,
                    stamp=stamp, batch_size=1)
            if "5" not in skip and args.detach_rows:
                print(f"running campaign run --detach of {args.detach_rows} rows ...",
                      file=sys.stderr)
                rows = generate(args.detach_rows, {"success": 1.0}, partner=PARTNER,
                                seed=3).rows
                report["detach"] = run_detach(single, rows)
        except KeyboardInterrupt:
            print("interrupted: stopping the processes and deleting the keys", file=sys.stderr)
            report["interrupted"] = True
        except Exception as exc:  # reported with the figures gathered so far
            traceback.print_exc()
            report["error"] = repr(exc)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            procs.stop_all()
            delete_prefix(client, f"bench:{run_id}:")
            signal.signal(signal.SIGINT, signal.default_int_handler)
    report["load_avg_end"] = os.getloadavg()
    save_report(out, report)
    print_targets(report, latency_ms=args.latency_ms)
    print(f"\nfigures written to {out}")
    return exit_status(report)



if __name__ == "__main__":
    sys.exit(main())
