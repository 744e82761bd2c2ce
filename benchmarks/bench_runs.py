"""Running the campaign benchmark: the shared set-up, the HTTP ceiling run, and the machinery
of a worker run (:class:`Plan`, :func:`run_workers`; the baseline and unsign-worker plans are in
bench_workers.py).

Each run starts from a reset emulator (every agreement signed again, counters zeroed), sends the
same jobs, and returns one dict of figures (see :func:`_figures`). Throughput is measured from
the first enqueue (the ceiling: the first request) to the last job's terminal state as recorded
by the processes themselves; latency is enqueue-to-done (the ceiling: one request). Worker runs
use their own Redis key prefix, deleted when the run ends, and their processes are stopped.
Over TLS (``Setup.transport``) every client trusts the sandbox CA (``Setup.ca_file``); the
connections the emulator accepted and its requests per job are in every run's figures.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from bench_profile import dump_stacks, start_py_spy, summarise
from bench_support import Monitor, Processes, child_env, delete_prefix, pct, redis_cpu
from bench_tls import gateway_counters, gateway_use

from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.store.states import TERMINAL_STATES

HERE = Path(__file__).resolve().parent
#: Seconds allowed for a worker to come up.
READY_TIMEOUT_SECONDS = 90.0
#: Job records read per pipeline when collecting results.
READ_CHUNK = 2000


@dataclass
class Setup:
    """What every run shares: the emulator, Redis, the jobs and the options."""

    client: redis.Redis
    redis_url: str
    run_id: str
    gateway_url: str
    admin: EmulatorAdmin
    emulator_pid: int
    partner: str
    key: str
    params: list[dict[str, str]]
    references: list[str]
    pool: str
    concurrency: int
    workers: int
    loglevel: str
    stall_seconds: float
    timeout_seconds: float
    procs: Processes
    tmp: Path
    results_dir: Path
    stamp: str
    profile: bool = False
    #: the ceiling's HTTP client: "worker" (GatewayClient) or "session" (requests.Session.post)
    ceiling_client: str = "worker"
    #: "tls" (HTTPS to the emulator, workers with the production settings) or "http" (sandbox)
    transport: str = "http"
    #: the CA file trusted over TLS (the sandbox PKI's ca.pem), "" over plain HTTP
    ca_file: str = ""

    @property
    def total(self) -> int:
        return len(self.params)


def _wait(setup: Setup, progress: Callable[[], int], names: list[str]) -> str:
    """Wait until every job is done; 'done', 'stalled', 'timeout' or '<name> exited'."""
    started = last_change = time.monotonic()
    last = -1
    while True:
        done = progress()
        if done >= setup.total:
            return "done"
        now = time.monotonic()
        if done != last:
            last, last_change = done, now
        for name in names:
            proc = setup.procs.procs.get(name)
            if proc is not None and proc.poll() is not None:
                return f"{name} exited"
        if now - last_change > setup.stall_seconds:
            return f"stalled at {done} of {setup.total}"
        if now - started > setup.timeout_seconds:
            return f"timeout at {done} of {setup.total}"
        time.sleep(0.2)


def _figures(setup: Setup, kind: str, label: str, *, status: str, t0: float, end: float,
             completed: int, latencies_ms: list[float], monitor: Monitor, names: list[str],
             redis_cpu_s: float, workers_cpu_s: float | None = None,
             producer_cpu_s: float = 0.0, **extra: Any) -> dict[str, Any]:
    """The figures of one run; CPU is per finished job, ``other_load_cores`` is what the rest
    of the (shared) machine kept busy meanwhile."""
    seconds = max(end - t0, 1e-9)
    emulator = gateway_counters(setup.gateway_url, setup.ca_file)
    per_job = 1000 / max(completed, 1)
    if workers_cpu_s is None:
        workers_cpu_s = sum(monitor.cpu[n] for n in names)
    ours = workers_cpu_s + producer_cpu_s + monitor.cpu["emulator"] + redis_cpu_s
    monitor_seconds = max(monitor.stopped_at - monitor.started_at, 1e-9)
    problems = [] if status == "done" else [status]
    if emulator["duplicates"]:
        problems.append(f"{emulator['duplicates']} duplicate unsigns at the gateway")
    if emulator["unsigns"] != setup.total:
        problems.append(f"{emulator['unsigns']} agreements unsigned, {setup.total} expected")
    if emulator["bad_signatures"]:
        problems.append(f"{emulator['bad_signatures']} requests with a bad signature")
    return {
        "kind": kind, "label": label, "transport": setup.transport, "pool": setup.pool,
        "concurrency": setup.concurrency,
        "processes": setup.workers, "jobs": setup.total, "completed": completed,
        "status": status, "seconds": round(seconds, 3),
        "jobs_per_s": round(completed / seconds, 1),
        "latency_ms": {"kind": "request" if kind == "ceiling" else "enqueue_to_done",
                       "p50": _r(pct(latencies_ms, 0.5)), "p99": _r(pct(latencies_ms, 0.99)),
                       "max": _r(max(latencies_ms, default=None))},
        "rss_mb": {name: {"peak": monitor.peak_mb(name),
                          "at_10pct": monitor.rss_at(name, 0.1, setup.total),
                          "at_100pct": monitor.rss_at(name, 1.0, setup.total),
                          "series": monitor.series(name)} for name in names},
        "cpu_ms_per_job": {name: round(seconds * per_job, 3) if completed else None
                           for name, seconds in (("workers", workers_cpu_s),
                                                 ("producer", producer_cpu_s),
                                                 ("emulator", monitor.cpu["emulator"]),
                                                 ("redis_server", redis_cpu_s),
                                                 ("machine", monitor.busy_seconds))},
        "machine_busy_cores": round(monitor.busy_cores, 2),
        "other_load_cores": round(max(0.0, monitor.busy_seconds - ours) / monitor_seconds, 2),
        "emulator": emulator, **gateway_use(emulator, completed),
        "problems": problems, "ok": not problems, **extra,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def run_ceiling(setup: Setup) -> dict[str, Any]:
    """Requests straight from ``workers`` client processes of ``concurrency`` each."""
    setup.admin.reset()
    names, outs = [], []
    for i in range(setup.workers):
        jobs_file = setup.tmp / f"ceiling-jobs-{i}.json"
        jobs_file.write_text(json.dumps(setup.params[i::setup.workers]))
        out = setup.tmp / f"ceiling-{setup.pool}-{setup.transport}-{i}.out.json"
        names.append(f"ceiling-{setup.pool}-{setup.transport}-{i}")
        outs.append(out)
        trust = ["--ca-file", setup.ca_file] if setup.ca_file else []
        setup.procs.start(names[-1], [
            sys.executable, str(HERE / "ceiling_client.py"), "--url", setup.gateway_url,
            "--partner", setup.partner, "--jobs-file", str(jobs_file), "--out", str(out),
            "--concurrency", str(setup.concurrency), "--pool", setup.pool,
            "--client", setup.ceiling_client, "--timeout-s", str(setup.timeout_seconds),
            *trust], env=child_env(ALIPAY_KEY=setup.key), cwd=setup.tmp)
    pids = {n: setup.procs.procs[n].pid for n in names} | {"emulator": setup.emulator_pid}
    monitor = Monitor(pids, lambda: 0).start()
    cpu0 = redis_cpu(setup.client)
    try:
        for name in names:
            setup.procs.procs[name].wait(timeout=setup.timeout_seconds + 60)
    finally:
        monitor.stop()
        for name in names:
            setup.procs.stop(name)
    results = [json.loads(out.read_text()) for out in outs if out.exists()]
    if len(results) != len(outs):
        raise RuntimeError(f"a ceiling client failed:\n{setup.procs.log_tail(names[0])}")
    latencies = [x for r in results for x in r["latencies_ms"]]
    ok, failed = sum(r["ok"] for r in results), sum(r["failed"] for r in results)
    status = "done" if ok == setup.total else f"{ok} of {setup.total} succeeded ({failed} failed)"
    return _figures(setup, "ceiling", f"ceiling {setup.pool} {setup.transport}", status=status,
                    t0=min(r["start"] for r in results), end=max(r["end"] for r in results),
                    completed=ok, latencies_ms=latencies, monitor=monitor, names=names,
                    redis_cpu_s=redis_cpu(setup.client) - cpu0,
                    workers_cpu_s=sum(r["cpu_s"] for r in results))


@dataclass
class Plan:
    """What differs between the baseline and the product."""

    kind: str
    label: str
    prefix: str
    argv: Callable[[str], list[str]]  # hostname -> command
    env: dict[str, str]
    ready: Callable[[str], bool]
    enqueue: Callable[[threading.Event], None]  # stops early once the event is set
    progress: Callable[[], int]
    collect: Callable[[], tuple[float, list[float], Counter[str]]]  # end, latencies, states
    is_terminal: Callable[[str], bool] = TERMINAL_STATES.__contains__
    extra: Callable[[], dict[str, Any]] = dict  # more figures, read before the keys go
    #: the first enqueue as recorded by the producer (a separate process), else None: the
    #: moment the enqueue thread started is used
    first_enqueue: Callable[[], float | None] = lambda: None


def run_workers(setup: Setup, plan: Plan) -> dict[str, Any]:
    setup.admin.reset()
    names = [f"{plan.label.replace(' ', '-')}-{i}" for i in range(setup.workers)]
    hosts = [f"{name}-{setup.run_id}@bench" for name in names]
    profile: dict[str, Any] = {}
    cancel = threading.Event()
    sender: threading.Thread | None = None
    monitor: Monitor | None = None
    try:
        for name, host in zip(names, hosts, strict=True):
            setup.procs.start(name, plan.argv(host), env=plan.env, cwd=setup.tmp)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(plan.ready(h) for h in hosts):
            for name in names:
                if setup.procs.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{setup.procs.log_tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready:\n{setup.procs.log_tail(names[0])}")
            time.sleep(0.2)
        pids = {n: setup.procs.procs[n].pid for n in names} | {"emulator": setup.emulator_pid}
        spy_out = setup.results_dir / f"pyspy-{plan.label.replace(' ', '-')}-{setup.stamp}.txt"
        spying = setup.profile and start_py_spy(setup.procs, "py-spy", pids[names[0]], spy_out)
        monitor = Monitor(pids, plan.progress).start()
        cpu0 = redis_cpu(setup.client)
        errors: list[BaseException] = []

        enqueued: list[float] = []

        def enqueue() -> None:
            try:
                plan.enqueue(cancel)
                enqueued.append(time.time())
            except BaseException as exc:  # reported by the waiting thread
                errors.append(exc)

        t0, own0 = time.time(), time.process_time()
        sender = threading.Thread(target=enqueue, name="bench-enqueue", daemon=True)
        sender.start()
        status = _wait(setup, plan.progress, names)
        stall_dump = dump_stacks(pids[names[0]]) if status != "done" else ""
        sender.join(timeout=setup.timeout_seconds)
        monitor.stop()
        redis_cpu_s = redis_cpu(setup.client) - cpu0
        producer_cpu_s = time.process_time() - own0
        if spying:
            setup.procs.stop("py-spy", sig=2)  # SIGINT: py-spy writes its file and exits
            if spy_out.exists():
                profile = {"py_spy_raw": str(spy_out), **summarise(spy_out)}
        if errors:
            raise RuntimeError(f"enqueue failed: {errors[0]!r}")
        end, latencies, states = plan.collect()
        t0 = plan.first_enqueue() or t0
        terminal = sum(n for s, n in states.items() if plan.is_terminal(s))
        figures = _figures(setup, plan.kind, plan.label, status=status, t0=t0, end=end,
                           completed=terminal, latencies_ms=latencies, monitor=monitor,
                           names=names, redis_cpu_s=redis_cpu_s,
                           producer_cpu_s=producer_cpu_s, states=dict(states),
                           all_terminal=terminal == setup.total, profile=profile,
                           enqueue_seconds=round(enqueued[0] - t0, 3) if enqueued else None,
                           logs=[str(setup.procs.log_dir / f"{n}.log") for n in names],
                           **plan.extra())
        if status != "done":
            figures["log_tail"] = setup.procs.log_tail(names[0])
            figures["stack_dump"] = stall_dump
            print(f"{plan.label}: {status}; stacks of the worker:\n{stall_dump}",
                  file=sys.stderr)
        return figures
    finally:
        cancel.set()  # no key may be written once they are deleted
        if sender is not None:
            sender.join(timeout=60)
        if monitor is not None and not monitor.stopped_at:
            monitor.stop()
        for name in [*names, "py-spy"]:
            setup.procs.stop(name)
        delete_prefix(setup.client, plan.prefix)
