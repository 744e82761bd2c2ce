"""The plain Celery way, for comparison: one task per job, each doing the HTTP call itself.

Run by the campaign benchmark as ``celery -A benchmarks.baseline_app worker ...`` with the same
pool type, concurrency and number of processes as the unsign-worker run. Deliberately ordinary:
Celery's defaults (prefetch multiplier 4, no task events) except ``task_acks_late``, JSON, a
broker connection pool and one ``requests.Session`` per process with a connection pool as large
as the concurrency (the usual advice; its connections kept alive and reused, over HTTPS too,
where it trusts ``BENCH_CA_BUNDLE``, the sandbox PKI's CA), and no dedup, audit or job state.
Each task signs (MD5, as the worker does), posts, parses and verifies the answer, then records
its completion in one pipelined round trip:

- ``<prefix>runs``: count of task executions that finished (a job run twice counts twice);
- ``<prefix>times``: hash job id -> ``"<enqueued_at> <finished_at> <outcome>"`` (epoch
  seconds), so ``HLEN`` counts the distinct jobs done.

Environment: ``BENCH_BROKER_URL``, ``BENCH_PREFIX`` (every key, the broker's included),
``BENCH_HTTP_POOL``, ``BENCH_CA_BUNDLE`` (over HTTPS), ``ALIPAY_GATEWAY_URL``,
``ALIPAY_PARTNER``, ``ALIPAY_KEY``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
import requests
from celery import Celery
from celery.signals import worker_ready
from requests.adapters import HTTPAdapter

from unsign_worker.protocol.exceptions import ResponseError
from unsign_worker.protocol.params import UnsignRequest, build_params
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import make_signer, sign_params

TASK = "baseline.unsign"
PREFIX = os.environ.get("BENCH_PREFIX", "bench:baseline:")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
GATEWAY_URL = os.environ.get("ALIPAY_GATEWAY_URL", "http://127.0.0.1:8010/gateway.do")
PARTNER = os.environ.get("ALIPAY_PARTNER", "")
CHARSET = "utf-8"
#: Connect and read timeouts of each request, seconds.
TIMEOUT_SECONDS = (5.0, 15.0)

POOL = int(os.environ.get("BENCH_HTTP_POOL", "100"))
#: The CA to trust over HTTPS (given on each call, so that no REQUESTS_CA_BUNDLE overrides it).
VERIFY: str | bool = os.environ.get("BENCH_CA_BUNDLE") or True

app = Celery("baseline", broker=BROKER_URL, set_as_current=True)
app.conf.update(
    # kombu's Redis channel allows 10 connections by default: on a gevent pool of 100, acks
    # then fail with MaxConnectionsError, the connection is reset and unacknowledged messages
    # are delivered again (agreements sent twice). The usual fix, a pool as large as the
    # concurrency, is applied so the baseline measures the design, not that pitfall.
    broker_transport_options={"global_keyprefix": PREFIX, "visibility_timeout": 3600,
                              "max_connections": POOL + 10},
    task_serializer="json", accept_content=["json"], result_backend=None,
    task_ignore_result=True, task_acks_late=True, task_default_queue="baseline",
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
)

_signer = make_signer("MD5", key=os.environ.get("ALIPAY_KEY", ""))
_session = requests.Session()
_adapter = HTTPAdapter(pool_maxsize=POOL)
_session.mount("http://", _adapter)
_session.mount("https://", _adapter)
_redis = redis.Redis.from_url(BROKER_URL, max_connections=1000)


@app.task(name=TASK, bind=True, acks_late=True, max_retries=3,
          autoretry_for=(requests.RequestException, ResponseError), retry_backoff=True)
def unsign(self: Any, job: dict[str, Any]) -> str:
    request = UnsignRequest.from_mapping(job["params"])
    signed = sign_params(build_params(request, partner=PARTNER, charset=CHARSET), _signer,
                         CHARSET)
    resp = _session.post(f"{GATEWAY_URL}?_input_charset={CHARSET}", data=signed,
                         timeout=TIMEOUT_SECONDS, verify=VERIFY)
    resp.raise_for_status()
    answer = parse_response(resp.content, verifier=_signer, charset=CHARSET)
    outcome = "T" if answer.is_success else answer.error
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(f"{PREFIX}runs")
    pipe.hset(f"{PREFIX}times", job["job_id"], f"{job['enqueued_at']!r} {time.time()!r} {outcome}")
    pipe.execute()
    return outcome


@worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    _redis.set(f"{PREFIX}ready:{getattr(sender, 'hostname', '')}", "1", ex=3600)
