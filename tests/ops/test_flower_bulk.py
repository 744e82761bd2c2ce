"""Flower and single jobs run in bulk: a real worker, a real Flower, the emulator.

Given jobs an application enqueues one by one with ``UnsignClient.enqueue``, as a producer
(the worker takes them from its stream ``P inbox:<name>`` and runs them in
``unsign_worker.unsign_jobs`` batches), Flower still lists each job as its own
``unsign_worker.unsign`` task, under the job's id, with its state, its masked arguments and its
outcome; a job that did not end well is failed; a job handed back for a later retry is one
entry that ends succeeded; the batch message itself is not listed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.ops.test_flower import (
    ACCOUNT,
    EMAIL,
    KEY,
    PARTNER,
    Flower,
    _expected_failures_only,
)
from tests.plugins.emulator import Emulator
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.client import UnsignClient
from unsign_worker.store.producer_registry import ProducerRegistry

pytest_plugins = ["tests.plugins.worker_fixtures"]

#: name -> (params, agreement or None, Flower state, text in the result or the exception)
CASES: dict[str, tuple[dict[str, str], Agreement | None, str, str]] = {
    "plain": ({"customer_code": "FB-OK-1"}, Agreement(id="fb1", customer_code="FB-OK-1"),
              "SUCCESS", "'outcome': 'unsigned'"),
    "account": ({"type_code": "BUSI003100021000301", "trans_account_out": ACCOUNT},
                Agreement(id="fb2", type_code="BUSI003100021000301",
                          trans_account_out=ACCOUNT), "SUCCESS", "'outcome': 'unsigned'"),
    "email": ({"biz_type": "10004", "user_email": EMAIL},
              Agreement(id="fb3", biz_type="10004", user_email=EMAIL,
                        user_id="2088002007018916"), "SUCCESS", "'outcome': 'unsigned'"),
    "escalated": ({"customer_code": "FB-ESC"},
                  Agreement(id="fb4", customer_code="FB-ESC", script=("TOO_MUCH_TYPE_CODE",)),
                  "FAILURE", "dead_lettered TOO_MUCH_TYPE_CODE"),
    "not_found": ({"customer_code": "FB-NOBODY"}, None, "FAILURE",
                  "rejected NOT_EXIST_CUST_SIGN"),
    "retried": ({"customer_code": "FB-RETRY"},
                Agreement(id="fb5", customer_code="FB-RETRY", script=("HTTP_503",) * 8),
                "SUCCESS", "'outcome': 'unsigned'"),
}


@pytest.mark.slow
def test_flower_shows_each_client_job_run_in_bulk_as_its_own_task(
        worker_env_factory: Any, tmp_path: Path) -> None:
    emu = Emulator([a for _, a, _, _ in CASES.values() if a is not None], partner=PARTNER,
                   key=KEY).start()
    env: WorkerEnv = worker_env_factory(gateway_url=emu.url, partner=PARTNER, key=KEY)
    worker = env.start_worker("w1", concurrency=4)
    flower = Flower.watching(env, worker, tmp_path / "flower.log")
    try:

        # When an application, added as a producer, enqueues the jobs one by one
        ProducerRegistry(env.redis, env.keys).add("crm")
        with UnsignClient(env.redis_url, producer="crm", key_prefix=env.prefix) as client:
            requests = {name: client.enqueue(**params, reference=f"bulk-{name}")
                        for name, (params, _, _, _) in CASES.items()}
            ids = {name: client.wait(request, timeout=120).job_id
                   for name, request in requests.items()}
        env.wait_terminal(list(ids.values()), timeout=120)
        assert env.redis.xlen(f"{env.prefix}inbox:crm") == 0  # taken and acknowledged

        # Then Flower lists each job under its own id, as the single-job task, ended
        def all_ended() -> dict[str, Any] | None:
            tasks = flower.json("/api/tasks?limit=1000")
            found = {name: tasks.get(job_id) for name, job_id in ids.items()}
            if all(t is not None and t.get("state") in ("SUCCESS", "FAILURE")
                   for t in found.values()):
                return tasks
            return None

        tasks = wait_for(all_ended, timeout=90, interval=1, what="flower to show every job")
        for name, job_id in ids.items():
            task, (_, _, state, text) = tasks[job_id], CASES[name]
            assert task["name"] == "unsign_worker.unsign", (name, task)
            assert task["state"] == state, (name, task)
            assert job_id in task["kwargs"] and f"bulk-{name}" in task["kwargs"]
            assert task["worker"] == worker.hostname
            if state == "SUCCESS":
                assert text in task["result"], (name, task["result"])
            else:
                assert "JobNotDone(" in task["exception"], (name, task)
                assert text in task["exception"], (name, task["exception"])
        # the arguments masked, the batch message not listed, each job's parent the batch
        assert "2088********0156" in tasks[ids["account"]]["kwargs"]
        assert "m***@example.com" in tasks[ids["email"]]["kwargs"]
        assert not [t for t in tasks.values() if t["name"] != "unsign_worker.unsign"]
        info = flower.json(f"/api/task/info/{ids['plain']}")
        assert info["parent_id"] and info["parent_id"] not in ids.values()
        text = json.dumps(tasks)
        for secret in (KEY, EMAIL, ACCOUNT):
            assert secret not in text

        # And the retried job went through a task-retried event, under the same entry
        metrics = wait_for(lambda: (lambda body: body if 'type="task-retried"' in body
                                    else None)(flower.get("/metrics", auth=None)[1]),
                           timeout=60, interval=1, what="a task-retried event")
        assert re.search(r'flower_events_total\{[^}]*type="task-failed"', metrics)
        # And each failure is logged on one line, without a traceback
        _expected_failures_only(env.log_tail(lines=5000), "JobNotDone")
    finally:
        flower.stop()
        emu.close()
    assert "Traceback" not in flower.log.read_text(errors="replace")
