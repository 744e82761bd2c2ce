"""``make bench``: the performance targets 1-5, measured with the product's DEFAULTS, in one table.

Every ratio is taken side by side in one invocation against its baseline, in interleaved
rounds (``--rounds``, median reported, each round's value listed): the machine is shared.

Over TLS by default (``--transport tls``): the emulator serves HTTPS with a sandbox PKI made
once per run, the workers run with the production settings (no sandbox mode, the CA trusted
through ``ALIPAY_CA_BUNDLE``), the ceiling and the baseline trust the same CA and reuse their
connections. ``--transport http`` measures plain HTTP (sandbox mode) instead; ``--transport
both`` runs every step over both, TLS beside plain HTTP in the same rounds (their order
alternating between rounds), and prints each target table and TLS / HTTP per step: jobs/s,
worker CPU per job, connections the emulator accepted per 1,000 jobs, requests per job.

1. ``unsign-worker worker`` (no options) + ``unsign-worker campaign run FILE`` of
   ``--campaign-jobs`` rows vs the ceiling: a plain ``requests.Session.post`` in a gevent pool
   of 200, one process, the same signed requests (benchmarks/ceiling_client.py
   ``--client session``);
2. ``--single-jobs`` jobs, each its own call, enqueued one by one by an application as a
   producer, through ``UnsignClient.enqueue`` and with a bare ``XADD`` to its stream
   ``P inbox:<name>``, vs one plain Celery task per job (benchmarks/baseline_app.py) with the
   worker's default pool and concurrency;
3. one job at a time into an idle worker: enqueue to terminal state, p50/p99, minus the
   gateway latency (and as the application's client sees it);
4. whole-product CPU per job (workers + producer + Redis server) vs the ceiling client's CPU
   per request; our own code's CPU per job (benchmarks/job_cpu.py); worker RSS growth (over
   ``--long-jobs`` jobs when given, e.g. 100000);
5. ``campaign run FILE --detach`` of ``--detach-rows`` rows while a default worker drains
   (over the first transport only).

    .venv/bin/python benchmarks/targets.py [--rounds 3] [--campaign-jobs 5000]
        [--single-jobs 5000] [--latency-jobs 100] [--detach-rows 100000] [--long-jobs 0]
        [--transport tls|http|both]

Redis: ``UNSIGN_REDIS_URL`` (``make bench`` gives db 14). Figures go to
``benchmarks/results/targets-<timestamp>.json``; the exit status is 1 if a run failed a check
(a job missing, a duplicate unsign, a bad signature), not if a target is missed: the targets
are reported against, never gates.
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
from collections.abc import Callable
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
)
from bench_tls import TRANSPORT_CHOICES, start_emulators, transports
from bench_workers import run_baseline
from job_cpu import REPEATS, WARMUP_JOBS, measure
from targets_table import print_targets
from tls_table import print_tls_vs_http

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
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="tls",
                        help="tls (default: HTTPS, the workers with the production settings), "
                        "http (plain HTTP, sandbox mode), or both in the same rounds")
    parser.add_argument("--stall-s", type=float, default=60.0)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args(argv)
    if min(args.rounds, args.campaign_jobs, args.single_jobs, args.latency_jobs) < 1:
        parser.error("--rounds and the job counts must be at least 1")
    return args


def round_steps(args: argparse.Namespace, skip: set[str], rows: list[dict[str, str]],
                camp: dict[str, Setup], single: dict[str, Setup]
                ) -> list[tuple[str, dict[str, Callable[[], dict[str, Any]]]]]:
    """The steps of one round, each a run per transport (labels end with the transport)."""
    jobs = rows[:args.campaign_jobs]
    steps: list[tuple[str, dict[str, Callable[[], dict[str, Any]]]]] = []
    if "1" not in skip:
        steps += [("ceiling", {t: partial(run_ceiling, s) for t, s in camp.items()}),
                  ("campaign", {t: partial(run_campaign_cli, s, jobs,
                                           f"defaults campaign run {t}")
                                for t, s in camp.items()})]
    if "2" not in skip:
        steps += [("baseline", {t: partial(run_baseline, s) for t, s in single.items()})]
        steps += [(via, {t: partial(run_single, s, via, f"defaults single {via} {t}")
                         for t, s in single.items()}) for via in ("client", "inbox")]
    for flags in args.compare:
        extra = tuple(flags.split())
        if "1" not in skip:
            steps.append((f"campaign {flags}", {t: partial(
                run_campaign_cli, s, jobs, f"campaign run {flags} {t}", extra)
                for t, s in camp.items()}))
        if "2" not in skip:
            steps.append((f"client {flags}", {t: partial(
                run_single, s, "client", f"single client {flags} {t}", extra)
                for t, s in single.items()}))
    return steps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = set(args.skip.split(","))
    wanted = transports(args.transport)
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
                              "transports": list(wanted), "idle_latency": {},
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
            gateways = start_emulators(procs, wanted, tmp=tmp,
                                       agreements=tmp / "agreements.json",
                                       scenario=tmp / "scenario.json", partner=PARTNER, key=key)
            params = [{k: v for k, v in row.items() if v and k != "reference"}
                      for row in data.rows]
            refs = [row["reference"] or f"bench-{i}" for i, row in enumerate(data.rows)]

            def setup(transport: str, jobs: int, pool: str, concurrency: int) -> Setup:
                gateway = gateways[transport]
                return Setup(client=client, redis_url=redis_url, run_id=run_id,
                             gateway_url=gateway.url, admin=gateway.admin,
                             emulator_pid=gateway.pid, partner=PARTNER, key=key,
                             params=params[:jobs], references=refs[:jobs], pool=pool,
                             concurrency=concurrency, workers=1, loglevel="INFO",
                             stall_seconds=args.stall_s, timeout_seconds=args.timeout_s,
                             procs=procs, tmp=tmp, results_dir=RESULTS, stamp=stamp,
                             ceiling_client="session", transport=transport,
                             ca_file=gateway.ca_file)

            camp = {t: setup(t, args.campaign_jobs, CEILING_POOL, CEILING_CONCURRENCY)
                    for t in wanted}
            single = {t: setup(t, args.single_jobs, DEFAULT_POOL, DEFAULT_CONCURRENCY)
                      for t in wanted}
            steps = round_steps(args, skip, data.rows, camp, single)
            for number in range(1, args.rounds + 1):
                order = wanted if number % 2 else wanted[::-1]  # neither always goes first
                for name, by_transport in steps:
                    for transport in order:
                        print(f"running {name} over {transport} (round {number}) ...",
                              file=sys.stderr)
                        report["runs"].append({**by_transport[transport](), "step": name,
                                               "round": number, "transport": transport})
                        save_report(out, report)
            if "3" not in skip:
                for transport in wanted:
                    print(f"running idle latency over {transport} ...", file=sys.stderr)
                    report["idle_latency"][transport] = run_idle_latency(single[transport],
                                                                         args.latency_jobs)
            first = wanted[0]
            if args.long_jobs:
                print(f"running the {args.long_jobs}-job campaign ...", file=sys.stderr)
                long = setup(first, args.long_jobs, CEILING_POOL, CEILING_CONCURRENCY)
                report["long"] = run_campaign_cli(long, data.rows[:args.long_jobs],
                                                  f"defaults long campaign {first}")
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
                report["detach"] = run_detach(single[first], rows)
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
    for transport in wanted:
        print_targets(report, latency_ms=args.latency_ms, transport=transport)
    print_tls_vs_http(report["runs"])
    print(f"\nfigures written to {out}")
    return exit_status(report)



if __name__ == "__main__":
    sys.exit(main())
