"""The TLS issue's "done when" check: a campaign through the default worker over TLS with the
production settings, then the same over plain HTTP (sandbox mode), and a yes/no per criterion.

``unsign-worker emulator seed --mix clean`` writes ``--jobs`` agreements (every one unsignable)
and their campaign file; the emulator serves them at ``--latency-ms`` over HTTPS (a sandbox PKI
made once in the run's temporary directory) and, as a second process, over plain HTTP. Each
run starts ``unsign-worker worker`` with NO option (gevent, one process per core,
``UNSIGN_HTTP_POOL_SIZE`` its concurrency) and runs ``unsign-worker campaign run FILE`` to the
end (benchmarks/bench_defaults.py). Over TLS the worker has the production settings: no
``UNSIGN_SANDBOX``, ``ALIPAY_GATEWAY_URL=https://localhost:PORT/gateway.do``,
``ALIPAY_GATEWAY_ALLOWED_HOSTS=localhost``, ``ALIPAY_CA_BUNDLE=<the sandbox ca.pem>``. With
``--rounds N`` > 1 the transports alternate, TLS first in odd rounds.

Printed per run, each criterion with yes or no:

- every job's terminal state (all must be ``unsigned``);
- gateway requests per job (at most 1.02);
- TCP connections the emulator accepted during the run (its ``connections_opened``; the
  check's own stats call taken off) against ``processes x UNSIGN_HTTP_POOL_SIZE``;
- whether the worker's output (its log, stdout and stderr) has a ``MonkeyPatchWarning``;

and the throughput TLS / HTTP per round (goal >= 0.7, reported). A benchmark, not a test: no
timed assertion; the exit status is 1 when a correctness criterion fails (a job not
``unsigned``, more than 1.02 requests per job, a warning, connections beyond the bound) or a
run fails, else 0. Figures go to ``benchmarks/results/tls-check-<timestamp>.json``, the
workers' logs to ``benchmarks/results/logs-<timestamp>/``.

    scripts/with_redis.py --db 14 -- .venv/bin/python benchmarks/tls_check.py \
        [--jobs 2000] [--rounds 1] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import redis
from bench_defaults import run_campaign_cli
from bench_runs import Setup
from bench_support import (
    BIN,
    Processes,
    delete_prefix,
    machine,
    raise_interrupt,
    save_report,
)
from bench_tls import gateway_env, start_emulators
from tls_verdicts import WARNING, print_verdicts, verdicts

from unsign_worker.cli.worker_cmds import DEFAULT_CONCURRENCY, DEFAULT_POOL
from unsign_worker.worker.processes import default_processes

PARTNER = "2088101568338364"
RESULTS = Path(__file__).resolve().parent / "results"
TRANSPORTS = ("tls", "http")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1,
                        help="TLS and HTTP runs each, interleaved")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--stall-s", type=float, default=60.0)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args(argv)
    if min(args.jobs, args.rounds) < 1:
        parser.error("--jobs and --rounds must be at least 1")
    return args


def seed(tmp: Path, jobs: int) -> list[dict[str, str]]:
    """``unsign-worker emulator seed --mix clean``: the agreements file, and the campaign's
    rows (read back from the CSV it wrote)."""
    campaign = tmp / "campaign.csv"
    subprocess.run([str(BIN / "unsign-worker"), "emulator", "seed", "--count", str(jobs),
                    "--mix", "clean", "--partner", PARTNER, "--seed", "1",
                    "--agreements", str(tmp / "agreements.json"), "--campaign", str(campaign)],
                   check=True, cwd=tmp, stdout=subprocess.DEVNULL, timeout=300)
    with open(campaign, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"tls-check-{stamp}.json"
    redis_url = os.environ.get("UNSIGN_REDIS_URL") or "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(redis_url)
    client.ping()
    run_id, key = secrets.token_hex(4), secrets.token_hex(16)
    processes = default_processes()
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
        "load_avg_start": os.getloadavg(), "options": vars(args),
        "worker": {"command": "unsign-worker worker", "pool": DEFAULT_POOL,
                   "concurrency": DEFAULT_CONCURRENCY, "processes": processes,
                   "http_pool_size": DEFAULT_CONCURRENCY,
                   "connection_bound": processes * DEFAULT_CONCURRENCY},
        "settings": {}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="unsign-tls-check-") as tmp_dir:
        tmp = Path(tmp_dir)
        logs = RESULTS / f"logs-{stamp}"
        logs.mkdir(parents=True, exist_ok=True)
        procs = Processes(logs)
        try:
            rows = seed(tmp, args.jobs)
            params = [{k: v for k, v in row.items() if v and k != "reference"} for row in rows]
            (tmp / "scenario.json").write_text(json.dumps(
                {"faults": {"latency_ms": args.latency_ms}}))
            gateways = start_emulators(procs, TRANSPORTS, tmp=tmp,
                                       agreements=tmp / "agreements.json",
                                       scenario=tmp / "scenario.json", partner=PARTNER, key=key)
            setups = {t: Setup(client=client, redis_url=redis_url, run_id=run_id,
                               gateway_url=g.url, admin=g.admin, emulator_pid=g.pid,
                               partner=PARTNER, key=key, params=params,
                               references=[r["reference"] for r in rows], pool=DEFAULT_POOL,
                               concurrency=DEFAULT_CONCURRENCY, workers=1, loglevel="INFO",
                               stall_seconds=args.stall_s, timeout_seconds=args.timeout_s,
                               procs=procs, tmp=tmp, results_dir=RESULTS, stamp=stamp,
                               transport=t, ca_file=g.ca_file)
                      for t, g in gateways.items()}
            report["settings"] = {t: gateway_env(t, g.url, g.ca_file)
                                  for t, g in gateways.items()}
            for number in range(1, args.rounds + 1):
                for transport in TRANSPORTS if number % 2 else TRANSPORTS[::-1]:
                    print(f"round {number}: {args.jobs} campaign jobs over {transport} ...",
                          file=sys.stderr)
                    figures = run_campaign_cli(setups[transport], rows,
                                               f"tls check {transport} r{number}")
                    figures["monkey_patch_warning"] = any(
                        WARNING in Path(log).read_text(errors="replace")
                        for log in figures["logs"])
                    report["runs"].append({**figures, "round": number})
                    save_report(out, report)
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
    report["verdicts"] = verdicts(report)
    save_report(out, report)
    print_verdicts(report)
    print(f"\nfigures written to {out}; worker logs in {RESULTS / f'logs-{stamp}'}")
    failed = (report.get("error") or report.get("interrupted") or not report["runs"]
              or not all(v["ok"] for v in report["verdicts"] if v["gate"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
