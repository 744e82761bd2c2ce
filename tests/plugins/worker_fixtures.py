"""Real worker processes against real Redis: start, kill, enqueue, wait.

``worker_env`` gives a :class:`WorkerEnv` bound to the test's key prefix (broker keys included,
through kombu's global_keyprefix), so tests never see each other's queues. Worker processes are
``unsign-worker worker`` subprocesses in their own session, killed at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.pki import production_gateway_env
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.settings import Settings
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.store.sentinel import connect
from unsign_worker.store.states import TERMINAL_STATES

BIN = Path(sys.executable).parent
#: Short timeouts so fault tests finish quickly; the ratios between them follow the rules
#: (lease > in-task budget + timeouts; visibility timeout > countdown cap + lease). Sandbox mode
#: only for a plain-HTTP gateway: towards HTTPS the workers run with production settings.
FAST_ENV = {
    "UNSIGN_SANDBOX": "1",
    "UNSIGN_CONNECT_TIMEOUT": "1",
    "UNSIGN_READ_TIMEOUT": "5",
    "UNSIGN_INTASK_RETRY_BUDGET": "1",
    "UNSIGN_RETRY_COUNTDOWN_BASE": "0.5",
    "UNSIGN_RETRY_COUNTDOWN_CAP": "2",
    "UNSIGN_RETRY_DEADLINE": "120",
    "UNSIGN_LEASE": "15",
    "UNSIGN_VISIBILITY_TIMEOUT": "30",
    "UNSIGN_SWEEP_INTERVAL": "1",
    "UNSIGN_BREAKER_THRESHOLD": "3",
    "UNSIGN_BREAKER_PROBE_AFTER": "3600",
}


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class WorkerEnv:
    redis_url: str
    prefix: str
    gateway_url: str
    partner: str
    key: str
    tmp: Path
    extra: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redis = connect(self.redis_url)
        self.keys = Keys(self.prefix)
        self.app = producer_app(self.redis_url, self.prefix, visibility_timeout_seconds=30)
        self.producer = Producer(self.app, self.redis, self.keys, queued_grace_seconds=30)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
        env.update(FAST_ENV)
        env.update({"UNSIGN_REDIS_URL": self.redis_url, "UNSIGN_KEY_PREFIX": self.prefix,
                    "ALIPAY_PARTNER": self.partner, "ALIPAY_KEY": self.key,
                    "ALIPAY_GATEWAY_URL": self.gateway_url, "PYTHONUNBUFFERED": "1"})
        production = production_gateway_env(self.gateway_url)
        if production:  # an HTTPS gateway: the settings production runs with, no sandbox mode
            del env["UNSIGN_SANDBOX"]
            env.update(production)
        env.update(self.extra)
        return env

    def settings(self) -> Settings:
        return Settings.from_env(self.env, load_dotenv=False)

    def start_worker(self, name: str = "w1", *, concurrency: int = 8, pool: str = "threads",
                     wait: bool = True, extra: list[str] | None = None,
                     wrapper: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start a worker process (``wrapper``: a command it runs under, e.g. ``faketime``)."""
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@test"
        log = open(self.tmp / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [*(wrapper or []), str(BIN / "unsign-worker"), "worker", "--hostname", hostname,
             "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO",
             *(extra or [])],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.hostname = hostname  # type: ignore[attr-defined]
        self.procs.append(proc)
        if wait:
            wait_for(lambda: proc.poll() is not None or
                     self.redis.zscore(self.keys.workers, hostname) is not None,
                     timeout=60, what=f"worker {name} to come up")
            assert proc.poll() is None, self.log_tail(name)
        return proc

    def log_tail(self, name: str = "w1", lines: int = 60) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=15)

    def enqueue(self, params: dict[str, str], *, job_id: str | None = None,
                reference: str = "", campaign: str = "") -> str:
        job = Job(job_id=job_id or uuid.uuid4().hex, params=params, campaign=campaign,
                  reference=reference)
        self.producer.enqueue([job])
        return job.job_id

    def enqueue_many(self, params: list[dict[str, str]], *, batch_size: int = 0,
                     campaign: str = "") -> list[str]:
        """Enqueue several jobs; with ``batch_size`` > 1 as campaign batch messages."""
        jobs = [Job(job_id=uuid.uuid4().hex, params=p, campaign=campaign) for p in params]
        self.producer.enqueue(jobs, batch_size=batch_size)
        return [j.job_id for j in jobs]

    def job(self, job_id: str) -> dict[str, str]:
        raw = self.redis.hgetall(self.keys.job(job_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def wait_terminal(self, job_ids: list[str], timeout: float = 90.0) -> dict[str, dict[str, str]]:
        def done() -> dict[str, dict[str, str]] | None:
            jobs = {j: self.job(j) for j in job_ids}
            if all(job.get("state") in TERMINAL_STATES for job in jobs.values()):
                return jobs
            return None

        try:
            return wait_for(done, timeout=timeout, interval=0.2, what="jobs to finish")
        except AssertionError:
            states = {j: self.job(j).get("state") for j in job_ids}
            raise AssertionError(f"jobs not terminal: {states}\n{self.log_tail()}") from None

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(f[b"data"]) for _, f in self.redis.xrange(self.keys.audit)]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(f[b"data"]) for _, f in self.redis.xrange(self.keys.events)]


@pytest.fixture
def worker_env_factory(redis_url: str, key_prefix: str, tmp_path: Path
                       ) -> Iterator[Callable[..., WorkerEnv]]:
    made: list[WorkerEnv] = []

    def make(*, gateway_url: str, partner: str, key: str, **extra: str) -> WorkerEnv:
        env = WorkerEnv(redis_url=redis_url, prefix=key_prefix, gateway_url=gateway_url,
                        partner=partner, key=key, tmp=tmp_path, extra=dict(extra))
        made.append(env)
        return env

    yield make
    for env in made:
        env.stop_all()
