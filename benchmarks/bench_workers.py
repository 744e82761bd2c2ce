"""The worker runs of the campaign benchmark: the plain Celery baseline and unsign-worker,
over ``setup.transport`` (TLS: the production settings of :func:`bench_tls.gateway_env`).

Each builds a :class:`bench_runs.Plan` (how to start a worker, enqueue, follow progress and
collect the results) and hands it to :func:`bench_runs.run_workers`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

from bench_runs import READ_CHUNK, Plan, Setup, run_workers
from bench_support import BIN, child_env
from bench_tls import gateway_env
from celery import Celery

from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys


def _chunks(setup: Setup, size: int) -> list[range]:
    return [range(i, min(i + size, setup.total)) for i in range(0, setup.total, size)]


def run_baseline(setup: Setup) -> dict[str, Any]:
    prefix = f"bench:{setup.run_id}:baseline-{setup.pool}-{setup.transport}:"
    client = setup.client
    app = Celery("baseline-producer", broker=setup.redis_url, set_as_current=False)
    app.conf.update(broker_transport_options={"global_keyprefix": prefix,
                                              "visibility_timeout": 3600},
                    task_serializer="json", accept_content=["json"])

    def enqueue(cancel: threading.Event) -> None:
        for i in range(setup.total):  # the plain way: one send per job
            if cancel.is_set():
                return
            job = {"job_id": uuid.uuid4().hex, "params": setup.params[i],
                   "reference": setup.references[i], "enqueued_at": time.time()}
            app.send_task("baseline.unsign", kwargs={"job": job}, queue="baseline")

    def collect() -> tuple[float, list[float], Counter[str]]:
        end, latencies, outcomes = 0.0, [], Counter[str]()
        for line in client.hvals(f"{prefix}times"):
            text = line.decode() if isinstance(line, bytes) else str(line)
            enq, fin, outcome = text.split(" ", 2)
            end = max(end, float(fin))
            latencies.append((float(fin) - float(enq)) * 1000)
            outcomes["unsigned" if outcome == "T" else outcome] += 1
        return end, latencies, outcomes

    env = child_env(BENCH_BROKER_URL=setup.redis_url, BENCH_PREFIX=prefix,
                    BENCH_HTTP_POOL=str(setup.concurrency), BENCH_CA_BUNDLE=setup.ca_file,
                    ALIPAY_GATEWAY_URL=setup.gateway_url,
                    ALIPAY_PARTNER=setup.partner, ALIPAY_KEY=setup.key)
    try:
        return run_workers(setup, Plan(
            kind="baseline", label=f"baseline {setup.pool} {setup.transport}", prefix=prefix,
            argv=lambda host: [str(BIN / "celery"), "-A", "benchmarks.baseline_app", "worker",
                               "--hostname", host, "--pool", setup.pool, "--concurrency",
                               str(setup.concurrency), "--loglevel", setup.loglevel,
                               "--queues", "baseline"],
            env=env, ready=lambda host: bool(client.exists(f"{prefix}ready:{host}")),
            enqueue=enqueue, progress=lambda: int(client.hlen(f"{prefix}times")),
            collect=collect, is_terminal=lambda outcome: True,
            extra=lambda: {"task_runs": int(client.get(f"{prefix}runs") or 0)}))
    finally:
        app.close()


def run_product(setup: Setup, batch_size: int) -> dict[str, Any]:
    prefix = f"bench:{setup.run_id}:product-{setup.pool}-b{batch_size}-{setup.transport}:"
    client, keys = setup.client, Keys(prefix)
    app = producer_app(setup.redis_url, prefix)
    producer = Producer(app, client, keys)
    job_ids: list[str] = []

    def enqueue(cancel: threading.Event) -> None:
        step = max(1, batch_size) * max(1, 1000 // max(1, batch_size))
        for chunk in _chunks(setup, step):
            if cancel.is_set():
                return
            jobs = [Job(job_id=uuid.uuid4().hex, params=setup.params[i],
                        reference=setup.references[i]) for i in chunk]
            job_ids.extend(j.job_id for j in jobs)
            producer.enqueue(jobs, batch_size=batch_size)

    def progress() -> int:
        return sum(int(v) for v in client.hvals(keys.counts))

    def collect() -> tuple[float, list[float], Counter[str]]:
        end, latencies, states = 0.0, [], Counter[str]()
        for start in range(0, len(job_ids), READ_CHUNK):
            pipe = client.pipeline(transaction=False)
            for job_id in job_ids[start:start + READ_CHUNK]:
                pipe.hmget(keys.job(job_id), "state", "created_at", "finished_at")
            for state, created, finished in pipe.execute():
                states[state.decode() if state else "missing"] += 1
                if created and finished:
                    end = max(end, float(finished))
                    latencies.append((float(finished) - float(created)) * 1000)
        return end, latencies, states

    env = child_env(**gateway_env(setup.transport, setup.gateway_url, setup.ca_file),
                    ALIPAY_PARTNER=setup.partner, ALIPAY_KEY=setup.key,
                    UNSIGN_REDIS_URL=setup.redis_url, UNSIGN_KEY_PREFIX=prefix,
                    UNSIGN_HTTP_POOL_SIZE=str(setup.concurrency))
    try:
        figures = run_workers(setup, Plan(
            kind="product", label=f"unsign-worker {setup.pool} b{batch_size} {setup.transport}",
            prefix=prefix,
            argv=lambda host: [str(BIN / "unsign-worker"), "worker", "--hostname", host,
                               "--pool", setup.pool, "--concurrency", str(setup.concurrency),
                               "--loglevel", setup.loglevel],
            env=env, ready=lambda host: client.zscore(keys.workers, host) is not None,
            enqueue=enqueue, progress=progress, collect=collect))
        figures["batch_size"] = batch_size
        return figures
    finally:
        app.close()
