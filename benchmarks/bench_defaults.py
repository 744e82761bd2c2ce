"""The product as a user gets it: ``unsign-worker worker`` with no pool or concurrency option,
fed the ways applications feed it (the performance targets; driven by benchmarks/targets.py).

- :func:`run_campaign_cli`: ``unsign-worker campaign run FILE`` (the whole command, following
  the campaign to its end) while default workers drain it;
- :func:`run_single`: one job per call, enqueued one by one by an application, as producer
  :data:`PRODUCER`: through ``UnsignClient.enqueue`` (its checks, then one ``XADD`` to its stream
  ``P inbox:<name>``) or with a bare ``XADD`` to that stream, as any language does;
- :func:`run_idle_latency`: one job at a time into an idle worker, enqueue to terminal state
  (as the producer's client follows it);
- :func:`run_detach`: ``campaign run FILE --detach`` of many rows while a worker drains them.

Each worker run reuses :func:`bench_runs.run_workers` (same progress, CPU, RSS and emulator
checks as benchmarks/campaign.py).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_runs import READ_CHUNK, Plan, Setup, run_workers
from bench_support import BIN, child_env, delete_prefix, pct
from bench_tls import gateway_env

from unsign_worker.emulator.seed import CAMPAIGN_COLUMNS
from unsign_worker.producers.client import UnsignClient
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import DEFAULT_MAX_PENDING, ProducerRegistry
from unsign_worker.store.states import TERMINAL_STATES
from unsign_worker.worker.processes import default_processes

#: A worker flag of this benchmark only (never passed on): run the worker as if hiredis were
#: not installed, to measure redis-py's own parser side by side with hiredis's.
NO_HIREDIS = "no-hiredis"
#: The application the single jobs come from: a producer of its own, as in production.
PRODUCER = "bench"


def product_env(setup: Setup, prefix: str, flags: tuple[str, ...] = ()) -> dict[str, str]:
    """The worker's environment: the gateway (over TLS the production settings, see
    :func:`bench_tls.gateway_env`) and the store, nothing about pools or slots."""
    env = child_env(**gateway_env(setup.transport, setup.gateway_url, setup.ca_file),
                    ALIPAY_PARTNER=setup.partner, ALIPAY_KEY=setup.key,
                    UNSIGN_REDIS_URL=setup.redis_url, UNSIGN_KEY_PREFIX=prefix)
    if NO_HIREDIS in flags:  # a module named hiredis that fails to import, first on the path
        blocker = setup.tmp / "no-hiredis"
        blocker.mkdir(exist_ok=True)
        (blocker / "hiredis.py").write_text('raise ImportError("hidden by the benchmark")\n')
        env["PYTHONPATH"] = f"{blocker}{os.pathsep}{env['PYTHONPATH']}"
    return env


def default_worker(host: str, flags: tuple[str, ...] = ()) -> list[str]:
    """``unsign-worker worker`` with no option (its processes are found in Redis by count), or
    with ``flags`` (to compare other choices side by side)."""
    return [str(BIN / "unsign-worker"), "worker", *(f for f in flags if f != NO_HIREDIS)]


def expected_nodes(setup: Setup, flags: tuple[str, ...] = ()) -> int:
    """Celery nodes the run's ``unsign-worker worker`` commands start."""
    per_command = default_processes()
    if "--processes" in flags:
        per_command = int(flags[flags.index("--processes") + 1])
    elif "--hostname" in flags or "-n" in flags:
        per_command = 1
    return per_command * setup.workers


def nodes_ready(setup: Setup, keys: Keys, flags: tuple[str, ...] = ()) -> Callable[[str], bool]:
    return lambda _host: setup.client.zcard(keys.workers) >= expected_nodes(setup, flags)


def write_campaign(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CAMPAIGN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


class Records:
    """The job records under one prefix: progress, first enqueue, end, latencies, states."""

    def __init__(self, setup: Setup, prefix: str) -> None:
        self.client, self.keys, self.prefix = setup.client, Keys(prefix), prefix
        self.first: float | None = None

    def progress(self) -> int:
        return sum(int(v) for v in self.client.hvals(self.keys.counts))

    def collect(self) -> tuple[float, list[float], Counter[str]]:
        names = list(self.client.scan_iter(match=f"{self.prefix}job:*", count=5000))
        end, latencies, states, firsts = 0.0, [], Counter[str](), []
        for start in range(0, len(names), READ_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for name in names[start:start + READ_CHUNK]:
                pipe.hmget(name, "state", "created_at", "finished_at")
            for state, created, finished in pipe.execute():
                states[state.decode() if state else "missing"] += 1
                if created:
                    firsts.append(float(created))
                if created and finished:
                    end = max(end, float(finished))
                    latencies.append((float(finished) - float(created)) * 1000)
        self.first = min(firsts, default=None)
        return end, latencies, states


def _cli(setup: Setup, prefix: str, args: list[str]) -> tuple[int, float, float]:
    """Run ``unsign-worker ARGS``; (exit code, wall seconds, CPU seconds of the command)."""
    began = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "unsign-worker"), *args], env=product_env(setup, prefix),
                            cwd=setup.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - began, usage.ru_utime + usage.ru_stime


def _run_defaults(setup: Setup, label: str, prefix: str, flags: tuple[str, ...],
                  records: Records, enqueue: Callable[[threading.Event], None], *,
                  extra: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Default workers under ``prefix``, the jobs enqueued by ``enqueue``, watched through
    ``records``: one run's figures."""
    plan = Plan(kind="product", label=label, prefix=prefix,
                argv=lambda host: default_worker(host, flags),
                env=product_env(setup, prefix, flags),
                ready=nodes_ready(setup, records.keys, flags),
                enqueue=enqueue, progress=records.progress, collect=records.collect,
                first_enqueue=lambda: records.first, extra=extra or dict)
    return run_workers(setup, plan)


def run_campaign_cli(setup: Setup, rows: list[dict[str, str]], label: str,
                     flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Default workers + ``campaign run FILE`` (following to the end), as a user runs them."""
    prefix = f"bench:{setup.run_id}:{label.replace(' ', '-')}:"
    path = setup.tmp / f"{label.replace(' ', '-')}.csv"
    write_campaign(path, rows)
    records = Records(setup, prefix)
    command: dict[str, Any] = {}

    def enqueue(cancel: threading.Event) -> None:
        code, wall, cpu = _cli(setup, prefix, ["campaign", "run", str(path), "--json"])
        command.update(exit_code=code, seconds=round(wall, 3), cpu_s=round(cpu, 3))
        if code != 0:
            raise RuntimeError(f"campaign run exited {code}")

    figures = _run_defaults(setup, label, prefix, flags, records, enqueue,
                            extra=lambda: {"command": command})
    return _with_product_cpu(figures, command.get("cpu_s", 0.0))


def add_producer(setup: Setup, prefix: str, jobs: int) -> UnsignClient:
    """Producer :data:`PRODUCER` under ``prefix``, its cap holding ``jobs`` entries (none is
    refused for the backlog: the run measures the way in, not the cap), and its client."""
    ProducerRegistry(setup.client, Keys(prefix)).add(
        PRODUCER, max_pending=max(jobs, DEFAULT_MAX_PENDING))
    return UnsignClient(setup.redis_url, producer=PRODUCER, key_prefix=prefix)


def run_single(setup: Setup, via: str, label: str, flags: tuple[str, ...] = ()
               ) -> dict[str, Any]:
    """Default workers; every job enqueued on its own by this process, as producer
    :data:`PRODUCER` (the workers take them from its stream in bulk)."""
    prefix = f"bench:{setup.run_id}:{label.replace(' ', '-')}:"
    records = Records(setup, prefix)
    client = add_producer(setup, prefix, len(setup.params))
    stream = records.keys.inbox(PRODUCER)

    def enqueue(cancel: threading.Event) -> None:
        for i, params in enumerate(setup.params):
            if cancel.is_set():
                return
            if via == "inbox":  # what an application in any language does
                job = {**params, "reference": setup.references[i]}
                setup.client.xadd(stream, {"job": json.dumps(job)})
            else:
                client.enqueue(**params, reference=setup.references[i])

    try:
        figures = _run_defaults(setup, label, prefix, flags, records, enqueue)
    finally:
        client.close()
    return _with_product_cpu(figures, 0.0)


def _with_product_cpu(figures: dict[str, Any], command_cpu_s: float) -> dict[str, Any]:
    """Whole-product CPU per job: workers + producer (this process and any command) + Redis."""
    cpu = figures["cpu_ms_per_job"]
    done = max(figures["completed"], 1)
    parts = [cpu["workers"], cpu["producer"], cpu["redis_server"]]
    if None not in parts:
        figures["product_cpu_ms_per_job"] = round(sum(parts) + 1000 * command_cpu_s / done, 3)
    return figures


def run_idle_latency(setup: Setup, jobs: int, gap_s: float = 0.1) -> dict[str, Any]:
    """One job at a time into an idle default worker: recorded to terminal (the job's own
    times: from the inbox recording it), and as the application sees it (before ``enqueue``
    to its client reading the terminal state, polling every millisecond)."""
    prefix = f"bench:{setup.run_id}:idle-latency-{setup.transport}:"
    keys = Keys(prefix)
    host = f"idle-{setup.transport}-{setup.run_id}@bench"
    setup.admin.reset()
    client = add_producer(setup, prefix, jobs)
    proc_name = f"idle-latency-worker-{setup.transport}"
    setup.procs.start(proc_name, default_worker(host), env=product_env(setup, prefix),
                      cwd=setup.tmp)
    recorded, seen, states = [], [], Counter[str]()
    try:
        deadline = time.monotonic() + 90
        while setup.client.zcard(keys.workers) < expected_nodes(setup):
            if time.monotonic() > deadline or setup.procs.procs[proc_name].poll() is not None:
                raise RuntimeError(f"worker not ready:\n{setup.procs.log_tail(proc_name)}")
            time.sleep(0.2)
        time.sleep(1.0)  # start-up work (sweeps, inbox group) out of the way: idle
        for i in range(min(jobs, setup.total)):
            began = time.time()
            # the request id until a worker took the entry, then its job's id
            asked = client.enqueue(**setup.params[i], reference=setup.references[i])
            until = time.monotonic() + 30
            status = None
            while time.monotonic() < until:
                status = client.status(asked)
                if status is not None and status.job_id:
                    asked = status.job_id
                if status is not None and status.state in TERMINAL_STATES:
                    break
                time.sleep(0.001)
            done_at = time.time()
            states[status.state if status is not None else "missing"] += 1
            if status is not None and status.created_at and status.finished_at:
                recorded.append((status.finished_at - status.created_at) * 1000)
            seen.append((done_at - began) * 1000)
            time.sleep(gap_s)
    finally:
        client.close()
        setup.procs.stop(proc_name)
        delete_prefix(setup.client, prefix)

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {"transport": setup.transport, "jobs": len(seen), "states": dict(states),
            "recorded_ms": {"p50": r(pct(recorded, 0.5)), "p99": r(pct(recorded, 0.99))},
            "caller_ms": {"p50": r(pct(seen, 0.5)), "p99": r(pct(seen, 0.99))}}


def run_detach(setup: Setup, rows: list[dict[str, str]]) -> dict[str, Any]:
    """``campaign run FILE --detach`` of ``rows`` while a default worker drains them."""
    prefix = f"bench:{setup.run_id}:detach-{setup.transport}:"
    keys = Keys(prefix)
    path = setup.tmp / "detach.csv"
    write_campaign(path, rows)
    host = f"detach-{setup.run_id}@bench"
    setup.admin.reset()
    proc_name = "detach-worker"
    setup.procs.start(proc_name, default_worker(host), env=product_env(setup, prefix),
                      cwd=setup.tmp)
    try:
        deadline = time.monotonic() + 90
        while setup.client.zcard(keys.workers) < expected_nodes(setup):
            if time.monotonic() > deadline or setup.procs.procs[proc_name].poll() is not None:
                raise RuntimeError(f"worker not ready:\n{setup.procs.log_tail(proc_name)}")
            time.sleep(0.2)
        load = os.getloadavg()[0]
        code, wall, cpu = _cli(setup, prefix, ["campaign", "run", str(path), "--detach",
                                               "--id", f"detach-{uuid.uuid4().hex[:6]}"])
        drained = sum(int(v) for v in setup.client.hvals(keys.counts))
    finally:
        setup.procs.stop(proc_name)
        delete_prefix(setup.client, prefix)
    return {"transport": setup.transport, "rows": len(rows), "exit_code": code,
            "seconds": round(wall, 2), "cpu_s": round(cpu, 2), "drained_meanwhile": drained,
            "load_avg_1m": load}
