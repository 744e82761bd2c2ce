"""CPU cost of our own per-job code: decode, validate, claim, sign, parse, settle.

Runs the jobs in this process as a worker does: with ``batch_size`` > 1 through
:func:`unsign_worker.worker.processor.process_batch`, that many jobs per call (the path of
every job by default: campaign batches, and single jobs taken in bulk as ``unsign_jobs``
messages of up to :data:`unsign_worker.worker.inbox.BATCH_SIZE`); with 1 through
:func:`~unsign_worker.worker.processor.process_job`, one job after the other (a job handed back
to the broker for a later retry). Against real Redis (its own key prefix, deleted afterwards)
and a stub gateway that answers at once with a pre-rendered, correctly signed success, so
neither HTTP nor Celery is counted. ``time.process_time()`` around the loop gives the CPU per
job of this process, the median of three passes (the Redis server's own work is reported
apart, and is shared with any other Redis user). A second pass under cProfile (CPU-time clock)
splits the cost between the steps; a third under pyinstrument, when it is installed, leaves an
HTML profile in the results directory.
"""

from __future__ import annotations

import cProfile
import pstats
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from bench_support import delete_prefix, redis_cpu

from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.protocol.gateway import RawAnswer
from unsign_worker.protocol.response import render_response
from unsign_worker.protocol.signing import make_signer
from unsign_worker.settings import Secret, Settings
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.worker.context import build_context
from unsign_worker.worker.processor import process_batch, process_job

#: Steps of the per-job path: name -> (file, function) pairs whose cumulative CPU time is
#: summed (none of them calls another of the list).
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "decode + validate": (("store/job.py", "from_message"), ("protocol/params.py", "from_mapping"),
                          ("protocol/params.py", "validate"), ("protocol/params.py", "identity")),
    "claim (Redis)": (("store/claims.py", "claim"),),
    "build + sign": (("protocol/params.py", "request_params"),
                     ("protocol/signing.py", "sign_params")),
    "parse + verify answer": (("protocol/response.py", "parse_response"),),
    "settle (Redis)": (("store/claims.py", "settle"),),
}
#: Jobs run before measuring (imports, script loading, connection set-up).
WARMUP_JOBS = 200
#: Timed passes of ``jobs`` jobs each; the median is reported (the machine is shared).
REPEATS = 3


class StubGateway:
    """Answers every post at once with the same signed success."""

    #: as for the emulator the other runs use (plain HTTP to a loopback host)
    trusted_channel = True

    def __init__(self, body: bytes) -> None:
        self.body = body

    def post(self, params: Mapping[str, str], *, charset: str) -> RawAnswer:
        return RawAnswer(200, self.body, 0.0)

    def close(self) -> None:
        pass


def _success_body(key: str, partner: str) -> bytes:
    echo = {"_input_charset": "utf-8", "service": "customer_unsign", "partner": partner,
            "customer_code": "C00000000001"}
    return render_response(is_success=True, request=echo,
                           customer={"customer_code": "C00000000001",
                                     "type_code": "BUSI003100021000301"},
                           signer=make_signer("MD5", key=key))


def _step_seconds(stats: pstats.Stats) -> dict[str, float]:
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    out = dict.fromkeys(STEPS, 0.0)
    for (filename, _, func), (_, _, _, cumulative, _) in table.items():
        for step, members in STEPS.items():
            if any(filename.endswith("unsign_worker/" + f) and func == fn for f, fn in members):
                out[step] += cumulative
    return out


def measure(*, redis_url: str, prefix: str, partner: str, key: str,
            params: list[dict[str, str]], jobs: int, results_dir: Path, stamp: str,
            batch_size: int = 1) -> dict[str, Any]:
    """Figures of the in-process per-job path; ``params`` needs ``(REPEATS + 2) * jobs +
    WARMUP_JOBS`` rows (every job unsigns another agreement)."""
    settings = Settings(partner=partner, key=Secret(key), sandbox=True,
                        gateway_url="http://127.0.0.1:9/gateway.do", redis_url=redis_url,
                        broker_url=redis_url, key_prefix=prefix)
    ctx = build_context(settings)
    ctx.gateway.close()
    ctx.gateway = StubGateway(_success_body(key, partner))  # type: ignore[assignment]
    client = redis.Redis.from_url(redis_url)
    producer = Producer(producer_app(redis_url, prefix), client, Keys(prefix))
    rows = iter(params)

    def batch(n: int) -> list[dict[str, Any]]:
        made = [Job(job_id=uuid.uuid4().hex, params=next(rows)) for _ in range(n)]
        producer.write_records(made)  # as the producer does; not measured
        return [j.to_message() for j in made]

    def run(messages: list[dict[str, Any]]) -> None:
        if batch_size > 1:
            decisions = [d for start in range(0, len(messages), batch_size)
                         for d in process_batch(ctx, messages[start:start + batch_size])]
        else:
            decisions = [process_job(ctx, message) for message in messages]
        for decision in decisions:
            if decision.state != "unsigned":
                raise RuntimeError(f"a benchmark job ended as {decision.state}: "
                                   f"{decision.detail}")

    try:
        run(batch(WARMUP_JOBS))
        passes = []  # (cpu, wall, Redis server cpu) seconds of each timed pass
        for _ in range(REPEATS):
            messages = batch(jobs)
            cpu0, wall0, server0 = time.process_time(), time.perf_counter(), redis_cpu(client)
            run(messages)
            passes.append((time.process_time() - cpu0, time.perf_counter() - wall0,
                           redis_cpu(client) - server0))
        cpu, wall, server = sorted(passes)[len(passes) // 2]  # the median pass by CPU

        messages = batch(jobs)
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(run, messages)
        pstats_path = results_dir / f"job-cpu-{stamp}-b{batch_size}.pstats"
        profiler.dump_stats(str(pstats_path))
        stats = pstats.Stats(profiler)
        profiled_total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
        steps = _step_seconds(stats)
        html = _pyinstrument(run, batch(jobs), results_dir / f"job-cpu-{stamp}-b{batch_size}.html")
    finally:
        delete_prefix(client, prefix)
        ctx.close()
    per_job_ms = cpu / jobs * 1000
    shares = {name: seconds / profiled_total for name, seconds in steps.items()}
    shares["other (Celery-free glue, JSON, logging)"] = max(0.0, 1 - sum(shares.values()))
    return {
        "jobs": jobs, "batch_size": batch_size, "passes": REPEATS,
        "cpu_ms_per_job": round(per_job_ms, 4),
        "cpu_ms_per_job_by_pass": [round(p[0] / jobs * 1000, 4) for p in passes],
        "wall_ms_per_job": round(wall / jobs * 1000, 4),
        "redis_server_cpu_ms_per_job": round(server / jobs * 1000, 4),
        "breakdown_ms_per_job": {name: round(share * per_job_ms, 4)
                                 for name, share in shares.items()},
        "target_ms": 0.5, "meets_target": per_job_ms < 0.5,
        "cprofile": str(pstats_path), "pyinstrument_html": html,
    }


def _pyinstrument(run: Any, messages: list[dict[str, Any]], out: Path) -> str | None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    profiler = Profiler(interval=0.0005)
    profiler.start()
    run(messages)
    profiler.stop()
    out.write_text(profiler.output_html(), encoding="utf-8")
    return str(out)
