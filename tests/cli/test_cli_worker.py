"""`audit export` and `breaker status|reset`, in-process against real Redis."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.pki import gateway_settings
from unsign_worker.cli.main import main
from unsign_worker.settings import Secret, Settings
from unsign_worker.worker.context import build_context
from unsign_worker.worker.processor import process_job


@pytest.fixture
def settled(emulator_factory, redis_url, key_prefix, monkeypatch):
    """Three jobs processed (one unsigned, one dead-lettered, one rejected) and the CLI's
    environment pointing at the same Redis prefix."""
    gw = emulator_factory([cae("a1", 1), cae("a2", 2, script=("TOO_MUCH_TYPE_CODE",))])
    for name, value in {"UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix,
                        "ALIPAY_KEY": KEY, **gw.worker_env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir("/tmp")  # no stray .env
    ctx = build_context(Settings(partner=PARTNER, key=Secret(KEY), **gateway_settings(gw.url),
                                 redis_url=redis_url, key_prefix=key_prefix))
    jobs = [({"customer_code": "C00001"}, "camp-a", "=cmd|' /C calc'!A0"),
            ({"customer_code": "C00002"}, "camp-a", "r2"),
            ({"type_code": "BUSI0031", "trans_account_out": "20880000000000990156"}, "camp-b",
             "r3")]
    for params, campaign, reference in jobs:
        process_job(ctx, {"job_id": uuid.uuid4().hex, "params": params,
                          "campaign": campaign, "reference": reference})
    yield ctx
    ctx.close()


def test_audit_export_writes_every_attempt_as_json_lines(settled, capsys):
    assert main(["audit", "export"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["outcome"] for r in rows] == ["unsigned", "dead_lettered", "rejected"]
    assert all(r["id"] and r["job_id"] for r in rows)
    text = json.dumps(rows)
    assert "20880000000000990156" not in text and "2088********0156" in text


def test_audit_export_csv_is_filtered_by_campaign_and_safe_in_spreadsheets(settled, tmp_path):
    out = tmp_path / "audit.csv"
    assert main(["audit", "export", "--format", "csv", "--campaign", "camp-a",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["outcome"] for r in rows] == ["unsigned", "dead_lettered"]
    assert rows[0]["reference"].startswith("'=")  # a formula is shown as text


def test_breaker_status_and_reset(settled, capsys):
    settled.breaker.record_halt("ILLEGAL_SIGN", "Incorrect signature", probe=True)
    assert main(["breaker", "status", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["state"] == "open" and state["code"] == "ILLEGAL_SIGN"
    assert main(["breaker", "reset"]) == 0
    capsys.readouterr()
    assert main(["breaker", "status"]) == 0
    assert capsys.readouterr().out.strip() == "breaker closed"


@pytest.mark.slow
def test_the_worker_warns_at_start_up_when_its_redis_may_forget(worker_env_factory,
                                                                 emulator_factory):
    # the shared test Redis keeps nothing on disk: the worker says so before it starts
    gw = emulator_factory([cae("a1", 1)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1")
    log = env.log_tail("w1", lines=400)
    assert "WARNING UNSIGN_REDIS_URL" in log and "persistence" in log
