"""Flower against a hostile web page and with personal data in flight: a real Flower, over real
HTTP (and a real worker where tasks must be scheduled or running)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.ops.test_flower import CREDS, KEY, PARTNER, Flower
from tests.plugins.emulator import Emulator
from tests.plugins.worker_fixtures import BIN, WorkerEnv, wait_for
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.ops.flower_guard import host_name, refusal
from unsign_worker.store.job import Job

pytest_plugins = ["tests.plugins.worker_fixtures"]

PHONE = "13800138000"
CN_EMAIL = "张伟@公司.cn"


def request(flower: Flower, method: str, path: str, headers: dict[str, str],
            body: str = "") -> tuple[int, dict[str, str], str]:
    parts = urlsplit(flower.base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True)
        for name, value in {"Host": parts.netloc, **headers}.items():
            conn.putheader(name, value)
        data = body.encode()
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(
            "utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture
def open_flower(worker_env_factory: Any, tmp_path: Path) -> Iterator[tuple[Flower, WorkerEnv]]:
    env: WorkerEnv = worker_env_factory(gateway_url="http://127.0.0.1:9/gateway.do",
                                        partner=PARTNER, key=KEY)
    clean = {k: v for k, v in env.env.items() if not k.startswith("FLOWER_")}
    flower = Flower(clean, tmp_path / "flower.log", "--no-auth")
    yield flower, env
    flower.stop()


@pytest.mark.slow
def test_an_open_flower_serves_no_other_site_and_no_foreign_host(
        open_flower: tuple[Flower, WorkerEnv]) -> None:
    flower, env = open_flower
    own = urlsplit(flower.base).netloc
    # Flower's own pages and a hand-made request still work
    status, headers, _ = request(flower, "GET", "/api/workers", {})
    assert status == 200
    assert not any(h.startswith("access-control-allow") for h in headers)
    assert request(flower, "GET", "/api/workers",
                   {"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"})[0] == 200
    # A page of another site cannot read it
    status, headers, _ = request(flower, "GET", "/api/workers",
                                 {"Origin": "http://evil.example"})
    assert status == 403 and "access-control-allow-origin" not in headers
    # nor queue a job with a "simple" cross-site POST
    body = json.dumps({"kwargs": {"job": {"job_id": uuid.uuid4().hex,
                                          "params": {"customer_code": "C00000000001"}}}})
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                  {"Origin": "null"}):
        status, _, _ = request(flower, "POST", "/api/task/send-task/unsign_worker.unsign",
                               {"Content-Type": "text/plain", **extra}, body)
        assert status == 403, extra
    assert env.redis.llen(env.keys.queue()) == 0
    # A DNS-rebinding page reaches it under its own name: refused
    assert request(flower, "GET", "/api/workers",
                   {"Host": f"rebind.evil.example:{urlsplit(flower.base).port}"})[0] == 403


def test_a_foreign_host_or_origin_is_named_as_the_reason() -> None:
    allowed = frozenset({"127.0.0.1", "localhost", "::1"})
    assert host_name("[::1]:5555") == "::1" and host_name("LocalHost:80") == "localhost"
    assert refusal({}, "127.0.0.1:5555", allowed) == ""
    assert "Host" in refusal({}, "attacker.example:5555", allowed)
    assert refusal({"Origin": "http://127.0.0.1:5556"}, "127.0.0.1:5555", allowed)
    assert refusal({"Sec-Fetch-Site": "same-site"}, "127.0.0.1:5555", allowed)
    assert refusal({"Sec-Fetch-Site": "none"}, "localhost:5555", allowed) == ""


@pytest.mark.slow
def test_flower_refuses_control_without_authentication(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "UNSIGN_"))}
    run = subprocess.run([str(BIN / "unsign-worker"), "flower", "--no-auth", "--control",
                          "--port", "0"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert "--control needs authentication" in run.stderr


@pytest.mark.slow
def test_flower_masks_personal_data_of_active_and_scheduled_tasks(
        worker_env_factory: Any, tmp_path: Path) -> None:
    # Given a worker busy on a job whose login is a phone number (the gateway hangs), and jobs
    # scheduled for later with a phone login and a Chinese email
    emu = Emulator([Agreement(id="p1", biz_type="10004", user_email=PHONE,
                              user_id="2088000000000001", script=("HANG",) * 50)],
                   partner=PARTNER, key=KEY).start()
    env: WorkerEnv = worker_env_factory(gateway_url=emu.url, partner=PARTNER, key=KEY)
    flower = None
    try:
        worker = env.start_worker("w1", concurrency=1)
        flower = Flower({**env.env, "FLOWER_BASIC_AUTH": CREDS}, tmp_path / "flower.log")
        running = env.enqueue({"biz_type": "10004", "user_email": PHONE})
        later = [Job(job_id=uuid.uuid4().hex, params={"biz_type": "10004", "user_email": login})
                 for login in (CN_EMAIL, "13912345678")]
        env.producer.write_records(later)
        for job in later:
            env.producer.send(job, countdown=3600)
        ids = [running, *(j.job_id for j in later)]

        # When the operator looks at the workers in Flower
        path = f"/api/workers?refresh=1&workername={worker.hostname}"
        body = wait_for(lambda: (lambda b: b if all(i in b for i in ids) else None)(
            flower.get(path)[1]), timeout=90, interval=1, what="flower to list the 3 tasks")
        page = flower.get(f"/worker/{worker.hostname}")[1]

        # Then no login appears in clear, in the API (decoded) or on the page
        shown = json.dumps(json.loads(body), ensure_ascii=False) + page
        for raw in (PHONE, "13912345678", "张伟", "伟@"):
            assert raw not in shown, raw
        assert "138********00" in shown and "张***@公司.cn" in shown
    finally:
        if flower is not None:
            flower.stop()
        emu.close()


def test_free_text_masks_unicode_emails_and_phone_numbers_idempotently() -> None:
    from unsign_worker.worker.monitoring import mask_text, sanitize_inspect

    text = f"login {PHONE}, mail {CN_EMAIL}, job 4f1c13800138000aa, at 1764140000"
    masked = mask_text(text)
    assert masked == ("login 138********00, mail 张***@公司.cn, job 4f1c13800138000aa, "
                      "at 1764140000")
    assert mask_text(masked) == masked
    reply = sanitize_inspect("reserved", [{"kwargs": {"job": {"params": {
        "user_email": "lw2024", "trans_account_out": "12345"}}}}])
    assert "lw2024" not in str(reply) and "12345" not in str(reply)
