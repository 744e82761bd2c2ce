"""Flower end to end: a real worker, a real Flower, the emulator, and Flower's HTTP API.

Given a worker and ``unsign-worker flower`` started before any job, when jobs with every outcome
run against the emulator, then Flower lists each task with the right state and result, shows
its arguments masked, never shows a key, a signature or raw personal data, and refuses
unauthenticated requests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.emulator import Emulator
from tests.plugins.worker_fixtures import BIN, WorkerEnv, wait_for
from unsign_worker.emulator.agreements import UNSIGNED, Agreement
from unsign_worker.protocol.params import UnsignRequest, build_params
from unsign_worker.protocol.signing import make_signer, sign_params

pytest_plugins = ["tests.plugins.worker_fixtures"]

PARTNER = "2088101568338364"
KEY = "flowertestkey0123456789abcdefghi"
CREDS = "ops:flower-test-password"
EMAIL = "maoamo.flower@example.com"
ACCOUNT = "20880020070189160156"

#: name -> (params, emulator agreement or None, expected outcome, expected code)
CASES: dict[str, tuple[dict[str, str], Agreement | None, str, str]] = {
    "plain": ({"customer_code": "FL-OK-1"}, Agreement(id="fl1", customer_code="FL-OK-1"),
              "unsigned", ""),
    "account": ({"type_code": "BUSI003100021000301", "trans_account_out": ACCOUNT},
                Agreement(id="fl2", type_code="BUSI003100021000301", trans_account_out=ACCOUNT),
                "unsigned", ""),
    "email": ({"biz_type": "10004", "user_email": EMAIL},
              Agreement(id="fl3", biz_type="10004", user_email=EMAIL,
                        user_id="2088002007018916"), "unsigned", ""),
    "retried": ({"customer_code": "FL-RETRY"},
                Agreement(id="fl4", customer_code="FL-RETRY", script=("HTTP_503",) * 8),
                "unsigned", ""),
    "lost_answer": ({"customer_code": "FL-LOST"},
                    Agreement(id="fl5", customer_code="FL-LOST", script=("LOST_ANSWER",)),
                    "already_unsigned", "STATUS_CUSTOMER_SIGN"),
    "escalated": ({"customer_code": "FL-ESC"},
                  Agreement(id="fl6", customer_code="FL-ESC", script=("TOO_MUCH_TYPE_CODE",)),
                  "dead_lettered", "TOO_MUCH_TYPE_CODE"),
    "not_found": ({"customer_code": "FL-NOBODY"}, None, "rejected", "NOT_EXIST_CUST_SIGN"),
    "gone": ({"customer_code": "FL-GONE"},
             Agreement(id="fl7", customer_code="FL-GONE", status=UNSIGNED),
             "rejected", "STATUS_CUSTOMER_SIGN"),
    "invalid": ({"biz_type": "10003", "user_email": EMAIL}, None, "rejected", "INVALID_JOB"),
}


class Flower:
    """``unsign-worker flower`` as a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self.proc = subprocess.Popen([str(BIN / "unsign-worker"), "flower", "--port", "0", *args],
                                     env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        found = wait_for(lambda: self.proc.poll() is not None or re.search(
            r"flower: (http://\S+?)/ ", log.read_text(errors="replace")), timeout=60,
            what="flower to print its URL")
        assert self.proc.poll() is None, log.read_text(errors="replace")
        self.base = found.group(1)

    def get(self, path: str, *, auth: str | None = CREDS) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path)
        if auth:
            request.add_header("Authorization",
                               "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace")

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def wait_capturing(self, timeout: float = 90) -> None:
        """Until Flower has received an event (a worker's heartbeat): its URL is printed before
        its event capture subscribes, and events sent before that are kept nowhere."""
        wait_for(lambda: self.json("/workers?json=1")["data"], timeout=timeout, interval=0.5,
                 what="flower to receive a worker's events")

    @classmethod
    def watching(cls, env: WorkerEnv, worker: Any, log: Path) -> Flower:
        """Flower on ``env``'s broker, once it sees ``worker`` and receives its events; stopped
        again if it does not."""
        flower = cls({**env.env, "FLOWER_BASIC_AUTH": CREDS}, log)
        try:
            wait_for(lambda: worker.hostname in flower.json("/api/workers?refresh=1"),
                     timeout=90, interval=1, what="flower to see the worker")
            flower.wait_capturing()
        except BaseException:
            flower.stop()
            raise
        return flower

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator([a for _, a, _, _ in CASES.values() if a is not None], partner=PARTNER,
                   key=KEY).start()
    yield emu
    emu.close()


def _signatures() -> list[str]:
    """Every ``sign`` value the worker computes for the cases' requests."""
    signer = make_signer("MD5", key=KEY)
    out = []
    for params, _, _, code in CASES.values():
        if code == "INVALID_JOB":
            continue
        built = build_params(UnsignRequest.from_mapping(params), partner=PARTNER,
                             charset="utf-8")
        out.append(sign_params(built, signer, "utf-8")["sign"])
    return out


def _task_for(tasks: dict[str, dict[str, Any]], job_id: str) -> dict[str, Any] | None:
    for task in tasks.values():
        if job_id in str(task.get("kwargs") or ""):
            return task
    return None


@pytest.mark.slow
def test_flower_shows_every_outcome_masked_and_never_a_secret(
        worker_env_factory: Any, emulator: Emulator, tmp_path: Path) -> None:
    # Given a worker and Flower on the test's key prefix, Flower started first
    env: WorkerEnv = worker_env_factory(gateway_url=emulator.url, partner=PARTNER, key=KEY)
    worker = env.start_worker("w1", concurrency=8)
    flower = Flower.watching(env, worker, tmp_path / "flower.log")
    try:

        # When jobs with every outcome run (the duplicate after its original has finished)
        ids = {name: env.enqueue(params) for name, (params, _, _, _) in CASES.items()}
        env.wait_terminal(list(ids.values()), timeout=120)
        ids["duplicate"] = env.enqueue(CASES["plain"][0])
        env.wait_terminal([ids["duplicate"]], timeout=60)
        expected = {name: (outcome, code) for name, (_, _, outcome, code) in CASES.items()}
        expected["duplicate"] = ("duplicate", "")

        # Then Flower lists a job that ended well as succeeded, with its outcome and code as
        # the result, and any other as failed, with its outcome and code in the exception
        def all_seen() -> dict[str, Any] | None:
            tasks = flower.json("/api/tasks?limit=1000")
            found = {name: _task_for(tasks, job_id) for name, job_id in ids.items()}
            if all(t is not None and t.get("state") in ("SUCCESS", "FAILURE")
                   for t in found.values()):
                return found
            return None

        found = wait_for(all_seen, timeout=90, interval=1, what="flower to see every task")
        for name, task in found.items():
            outcome, code = expected[name]
            assert task["name"] == "unsign_worker.unsign"
            if outcome in ("unsigned", "already_unsigned", "duplicate"):
                assert task["state"] == "SUCCESS", (name, task)
                assert f"'outcome': '{outcome}'" in task["result"], (name, task["result"])
                assert f"'code': '{code}'" in task["result"], (name, task["result"])
            else:
                assert task["state"] == "FAILURE", (name, task)
                assert "JobNotDone(" in task["exception"], (name, task)
                assert f"{outcome} {code}".strip() in task["exception"], (name, task)
        # And an expected failure is logged on one line, without a traceback
        _expected_failures_only(env.log_tail(lines=5000), "JobNotDone")
        assert "2088********0156" in found["account"]["kwargs"]
        assert "m***@example.com" in found["email"]["kwargs"]

        # And the retried task went through Celery's retry, which Flower counted
        def retried() -> str | None:
            body = flower.get("/metrics", auth=None)[1]
            return body if 'type="task-retried"' in body else None

        metrics = wait_for(retried, timeout=60, interval=1, what="a task-retried event")
        assert "flower_events_total" in metrics and "flower_worker_online" in metrics
        assert re.search(r"^unsign_dlq_size 1\.0$", metrics, re.M), metrics
        assert 'unsign_dlq_jobs{code="TOO_MUCH_TYPE_CODE"} 1.0' in metrics
        assert 'unsign_jobs_total{outcome="unsigned"}' in metrics

        # And nothing Flower serves holds a key, a signature or raw personal data
        pages = [flower.get("/api/tasks?limit=1000")[1],
                 flower.get(f"/api/workers?refresh=1&workername={worker.hostname}")[1],
                 flower.get("/api/workers")[1], metrics,
                 flower.get(f"/api/task/info/{found['email']['uuid']}")[1],
                 flower.get(f"/task/{found['account']['uuid']}")[1],
                 flower.get("/tasks/datatable?draw=1&start=0&length=100&search[value]=")[1],
                 flower.get("/tasks")[1], flower.get(f"/worker/{worker.hostname}")[1]]
        text = "\n".join(pages)
        for secret in [KEY, EMAIL, ACCOUNT, *_signatures()]:
            assert secret not in text, f"{secret[:6]}… found in what Flower serves"
        assert not re.search(r"sign['\"]?\s*[:=]\s*['\"]?[0-9a-f]{32}", text)

        # And requests without credentials, or with wrong ones, are refused
        task_page = f"/task/{found['plain']['uuid']}"
        for path in ("/api/tasks", "/api/workers", "/tasks", "/", task_page):
            assert flower.get(path, auth=None)[0] == 401, path
            assert flower.get(path, auth="ops:wrong-password")[0] == 401, path
    finally:
        flower.stop()
    assert "Traceback" not in flower.log.read_text(errors="replace")


def _expected_failures_only(log: str, name: str) -> None:
    """Every line naming the expected error is Celery's one-line "raised expected" note."""
    lines = [line for line in log.splitlines() if "NotDone" in line]
    assert any(f"raised expected: {name}" in line for line in lines), log[-2000:]
    assert all("raised expected:" in line for line in lines), lines
    assert not re.search(r"Traceback[^\n]*\n(?:[ \t].*\n)*\S*NotDone", log)


MIXED_OK = [Agreement(id=f"mx{i}", customer_code=f"FL-MIX-{i}") for i in range(12)]
MIXED_ESC = [Agreement(id=f"me{i}", customer_code=f"FL-MIXESC-{i}",
                       script=("STATUS_TYPE_CODE",)) for i in range(3)]


@pytest.mark.slow
def test_flower_failed_view_shows_a_mixed_campaigns_failures(
        worker_env_factory: Any, tmp_path: Path) -> None:
    # Given a worker and Flower, and a campaign in batches of 5 where some jobs are escalated
    # or rejected, plus two single jobs with references
    emu = Emulator(MIXED_OK + MIXED_ESC, partner=PARTNER, key=KEY).start()
    env: WorkerEnv = worker_env_factory(gateway_url=emu.url, partner=PARTNER, key=KEY)
    worker = env.start_worker("w1", concurrency=4)
    flower = Flower.watching(env, worker, tmp_path / "flower.log")
    try:
        params = ([{"customer_code": a.customer_code} for a in MIXED_OK[:10]]
                  + [{"customer_code": a.customer_code} for a in MIXED_ESC]
                  + [{"customer_code": "FM-NO-1"}, {"customer_code": "FM-NO-2"}])
        batch_ids = env.enqueue_many(params, batch_size=5, campaign="mixed")
        single_ok = env.enqueue({"customer_code": "FL-MIX-10"}, reference="order-ok-4711")
        single_bad = env.enqueue({"customer_code": "FM-NO-3"},
                                 reference="order-bad-4712")
        jobs = env.wait_terminal([*batch_ids, single_ok, single_bad], timeout=120)
        failed_jobs = [j for j, job in jobs.items() if job["state"] != "unsigned"]
        assert len(failed_jobs) == 6

        # When an operator opens Flower's Failed view
        def failed_seen() -> dict[str, Any] | None:
            tasks = flower.json("/api/tasks?state=FAILURE&limit=1000")
            text = json.dumps(tasks)
            return tasks if all(j in text for j in failed_jobs) else None

        failed = wait_for(failed_seen, timeout=90, interval=1, what="the failed view")
        # Then every failed job is there, by its batch or its own task, named with its outcome
        # and code; a batch names its outcome counts; nothing else is there
        batches = [t for t in failed.values() if t["name"] == "unsign_worker.unsign_batch"]
        singles = [t for t in failed.values() if t["name"] == "unsign_worker.unsign"]
        assert len(singles) == 1 and single_bad in singles[0]["kwargs"]
        assert "rejected NOT_EXIST_CUST_SIGN" in singles[0]["exception"]
        assert "reference order-bad-4712" in singles[0]["exception"]
        assert 1 <= len(batches) <= 3
        text = " ".join(t["exception"] for t in batches)
        assert text.count("dead_lettered STATUS_TYPE_CODE") == 3
        assert text.count("rejected NOT_EXIST_CUST_SIGN") == 2
        assert "'outcomes': {" in text and "did not end unsigned" in text
        ok_batches = flower.json("/api/tasks?state=SUCCESS&limit=1000")
        assert any("'outcomes': {'unsigned': 5}" in str(t.get("result"))
                   for t in ok_batches.values()), ok_batches
        assert single_ok not in json.dumps(failed)

        # And Flower's search finds a job by its reference and by its job id, in a batch too
        found = flower.json("/api/tasks?search=order-bad-4712")
        assert [t["kwargs"] for t in found.values()] == [singles[0]["kwargs"]]
        found = flower.json(f"/api/tasks?search={batch_ids[11]}")
        assert len(found) == 1 and batch_ids[11] in next(iter(found.values()))["kwargs"]

        # And Celery logged each as expected (no traceback, no error) and retried none of them
        # (the worker may send a task's failed event before it writes that line: wait for it)
        def logged() -> str | None:
            text = env.log_tail(lines=100_000)
            return text if all(f"[{t['uuid']}] raised expected" in text
                               for t in failed.values()) else None

        log = wait_for(logged, timeout=60, interval=0.5, what="the worker's log of each failure")
        _expected_failures_only(log, "BatchNotDone")
        for task in failed.values():
            after = log[log.index(f"[{task['uuid']}] raised expected"):]
            assert f"[{task['uuid']}] retry" not in after.lower()
            assert f"[{task['uuid']}] received" not in after
    finally:
        flower.stop()
        emu.close()


@pytest.mark.slow
def test_flower_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "UNSIGN_"))}
    run = subprocess.run([str(BIN / "unsign-worker"), "flower", "--port", "0"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "FLOWER_BASIC_AUTH is not set" in run.stderr


@pytest.mark.slow
def test_flower_refuses_no_auth_on_a_public_address(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "UNSIGN_"))}
    run = subprocess.run([str(BIN / "unsign-worker"), "flower", "--no-auth", "--address",
                          "0.0.0.0"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert "only on a loopback address" in run.stderr


@pytest.mark.slow
def test_flower_refuses_a_short_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "UNSIGN_"))}
    env["FLOWER_BASIC_AUTH"] = "ops:short"
    run = subprocess.run([str(BIN / "unsign-worker"), "flower", "--port", "0"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "at least 8 characters" in run.stderr
    assert "ops:short" not in run.stderr
