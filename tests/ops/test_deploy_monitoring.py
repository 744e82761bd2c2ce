"""The dashboard and the alert rules under deploy/ use only series the exporter really serves,
and the rules are valid for Prometheus.

The exporter is scraped for real: ``unsign-worker flower`` on the test's Redis and key prefix,
its ``/metrics`` read over HTTP (Flower's own series and the project's, one endpoint).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import yaml

from tests import paths
from tests.metric_samples import samples_of
from tests.ops.test_flower import CREDS, Flower
from tests.plugins.worker_fixtures import WorkerEnv
from unsign_worker.ops.exporter import UnsignCollector
from unsign_worker.store.gateway_reach import UnreachableWorkers
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys

pytest_plugins = ["tests.plugins.worker_fixtures"]

ROOT = paths.ROOT
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "unsign-worker.json"
#: promtool's unit tests of the producers' alerts (series in, alerts expected out).
ALERT_TESTS = paths.DATA / "prometheus" / "producer_alerts_test.yml"
SERIES = re.compile(r"\b((?:unsign|flower)_[a-z_]+)\b")
#: Sample-name endings Prometheus adds to a family's name.
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]


def _served(metrics: str) -> set[str]:
    names = set()
    for line in metrics.splitlines():
        found = re.match(r"# TYPE (\S+) ", line) or re.match(r"([a-zA-Z_:][\w:]*)[{ ]", line)
        if found:
            names.update(found.group(1) + suffix for suffix in SUFFIXES)
    return names


@pytest.mark.slow
def test_every_series_of_the_rules_and_the_dashboard_is_served_by_the_exporter(
        worker_env_factory: Callable[..., WorkerEnv], tmp_path: Path) -> None:
    env = worker_env_factory(gateway_url="http://127.0.0.1:9/gateway.do",
                             partner="2088101568338364", key="0123456789abcdef0123456789abcdef")
    flower = Flower({**env.env, "FLOWER_BASIC_AUTH": CREDS}, tmp_path / "flower.log")
    try:
        metrics = flower.get("/metrics", auth=None)[1]
    finally:
        flower.stop()
    served = _served(metrics)
    used = {name for expr in _rule_exprs() + _dashboard_exprs() for name in SERIES.findall(expr)}
    assert len(used) >= 10
    missing = sorted(used - served)
    assert not missing, f"series used by deploy/ but not served: {missing}"
    # and what the issue asks the dashboard to show is there
    text = " ".join(_dashboard_exprs())
    for series in ("unsign_jobs_total", "unsign_dlq_jobs", "unsign_breaker_open",
                   "unsign_queue_oldest_age_seconds", "task-retried", "unsign_hooks_pending",
                   "unsign_campaign_jobs"):
        assert series in text, series
    alerts = ALERTS.read_text(encoding="utf-8")
    for name in ("UnsignBreakerOpen", "UnsignDeadLettersGrowing", "UnsignNoWorkerHeartbeat",
                 "UnsignOldestQueuedJobTooOld", "UnsignHookFailures", "UnsignProducerRejecting",
                 "UnsignProducerBacklogNearCap", "UnsignWorkerCutFromGateway"):
        assert f"alert: {name}" in alerts


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'): rules not checked "
                    "by Prometheus itself")
    return promtool


def test_promtool_accepts_the_rules() -> None:
    run = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    # every rule of the file, as counted by Prometheus itself
    assert f"SUCCESS: {ALERTS.read_text().count('- alert: ')} rules found" in run.stdout


def test_the_producer_alerts_fire_on_a_first_refusal_and_a_backlog_near_its_cap() -> None:
    # Given series of refusals (a producer's first one, a steady count, a gap in the scrapes)
    # and backlogs, when Prometheus's own rule engine evaluates the rules over them, then each
    # alert fires exactly where tests/data/prometheus/producer_alerts_test.yml expects it.
    run = subprocess.run([_promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout



def test_the_exporter_serves_queue_age_heartbeats_hooks_and_campaign_progress(
        redis_client: redis.Redis, redis_url: str, key_prefix: str) -> None:
    from unsign_worker.producers.producer import Producer, producer_app

    keys = Keys(key_prefix)
    now = time.time()
    app = producer_app(redis_url, key_prefix)
    try:
        producer = Producer(app, redis_client, keys)
        producer.enqueue([Job(job_id="old", params={"customer_code": "C1"},
                              enqueued_at=now - 600)])
        producer.enqueue([Job(job_id="new", params={"customer_code": "C2"})])
    finally:
        app.close()
    redis_client.zadd(keys.workers, {"w-live@test": now - 5, "w-cut@test": now - 1,
                                     "w-gone@test": now - 300})
    UnreachableWorkers(redis_client, keys).mark("w-cut@test", since=now - 9, cause="reset")
    redis_client.zadd(keys.hooks, {"identity-1": now + 30})
    redis_client.zadd(keys.campaigns, {"c-run": now, "c-done": now - 1})
    redis_client.hset(keys.campaign("c-run"), mapping={"state": "running", "total": 10})
    redis_client.hset(keys.campaign_counts("c-run"), mapping={"unsigned": 3, "rejected": 1,
                                                               "retrying": 2})
    redis_client.hset(keys.campaign("c-done"), mapping={"state": "done", "total": 5})
    samples = samples_of(UnsignCollector(redis_client, keys))
    assert 595 <= samples["unsign_queue_oldest_age_seconds"] <= 660
    assert samples["unsign_workers_alive"] == 2
    assert samples['unsign_gateway_reachable{worker="w-live@test"}'] == 1
    assert samples['unsign_gateway_reachable{worker="w-cut@test"}'] == 0
    assert 'unsign_gateway_reachable{worker="w-gone@test"}' not in samples
    assert samples['unsign_worker_heartbeat_age_seconds{worker="w-gone@test"}'] >= 299
    assert samples["unsign_hooks_pending"] == 1
    assert samples['unsign_campaign_jobs{campaign="c-run",kind="total"}'] == 10
    assert samples['unsign_campaign_jobs{campaign="c-run",kind="done"}'] == 4
    assert not any("c-done" in name for name in samples)


def test_an_empty_queue_has_no_age(redis_client: redis.Redis, key_prefix: str) -> None:
    samples = samples_of(UnsignCollector(redis_client, Keys(key_prefix)))
    assert samples["unsign_queue_oldest_age_seconds"] == 0
    assert samples["unsign_workers_alive"] == 0
