"""The operations console over HTTP: a real ``unsign-worker console`` process, real Redis, real
workers against the emulator where a page needs jobs.

Given dead letters, campaigns and an open breaker made by the real system, when an operator
(or an attacker) uses the console, then each page shows what it must, masked; every action needs
credentials, a CSRF token and a note where one is required, and lands in the operators' journal;
the CSV exports hold no personal data and no formula.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from tests.plugins.console_fixtures import CREDS, ConsoleProcess, send, text_of
from tests.plugins.worker_fixtures import BIN, WorkerEnv
from unsign_worker.cli.main import cli
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.ops.actions import ActionLog
from unsign_worker.store.breaker import Breaker

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

EMAIL = "maoamo.console@example.com"
ACCOUNT = "20880020070189160156"
STUCK = ("STATUS_TYPE_CODE",) * 5
PAGES = ("/escalations", "/campaigns", "/health", "/lookup", "/escalations.csv")


@pytest.fixture
def console_factory(tmp_path: Path) -> Iterator[Callable[..., ConsoleProcess]]:
    started: list[ConsoleProcess] = []

    def start(env: dict[str, str], *args: str, auth: str | None = CREDS) -> ConsoleProcess:
        env = {k: v for k, v in env.items() if k != "UNSIGN_CONSOLE_AUTH"}
        if auth:
            env["UNSIGN_CONSOLE_AUTH"] = auth
        proc = ConsoleProcess(env, tmp_path / f"console{len(started)}.log", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def plain_env(worker_env_factory: Callable[..., WorkerEnv]) -> WorkerEnv:
    """The test's prefix and settings; no worker, no gateway."""
    return worker_env_factory(gateway_url="http://127.0.0.1:9/gateway.do",
                              partner="2088101568338364", key="0123456789abcdef0123456789abcdef")


@pytest.mark.slow
def test_console_refuses_a_public_address_without_credentials(plain_env: WorkerEnv) -> None:
    env = {k: v for k, v in plain_env.env.items() if k != "UNSIGN_CONSOLE_AUTH"}
    run = subprocess.run([str(BIN / "unsign-worker"), "console", "--host", "0.0.0.0",
                          "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "refusing to listen on 0.0.0.0 without credentials" in run.stderr
    env["UNSIGN_CONSOLE_AUTH"] = "ops:short"
    run = subprocess.run([str(BIN / "unsign-worker"), "console", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "at least 8 characters" in run.stderr
    assert "short" not in run.stderr.replace("'ops'", "")
    env["UNSIGN_CONSOLE_AUTH_FILE"] = "/nonexistent/console_auth"
    run = subprocess.run([str(BIN / "unsign-worker"), "console", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "UNSIGN_CONSOLE_AUTH_FILE: cannot read" in run.stderr


@pytest.mark.slow
def test_credentials_from_a_file_and_an_open_health_check_that_says_nothing(
        plain_env: WorkerEnv, console_factory: Callable[..., ConsoleProcess],
        tmp_path: Path) -> None:
    secret = tmp_path / "console_auth"
    secret.write_text(CREDS + "\n", encoding="utf-8")
    console = console_factory({**plain_env.env, "UNSIGN_CONSOLE_AUTH_FILE": str(secret)},
                              auth=None)
    assert console.client(None).get("/health").status == 401
    assert console.client().get("/health").status == 200
    check = console.client(None).get("/healthz")
    assert (check.status, check.body) == (200, "OK")


@pytest.mark.slow
def test_every_page_needs_credentials_sends_secure_headers_and_every_action_a_csrf_token(
        plain_env: WorkerEnv, console_factory: Callable[..., ConsoleProcess]) -> None:
    console = console_factory(plain_env.env, auth=f"{CREDS},lead:another-long-password")
    journal = ActionLog(plain_env.redis, plain_env.keys)
    # (each path from its own address: five wrong passwords from one address lock the user out
    # there, see test_console_trust.py)
    for number, path in enumerate((*PAGES, "/health/breaker/reset"), start=1):
        for auth in (None, "ops:wrong-password", "nobody:console-test-password"):
            reply = send(console.base, "GET", path, auth=auth, source=f"127.0.1.{number}")
            assert reply.status == 401, (path, auth)
            assert reply.headers["X-Frame-Options"] == "DENY"
    ops = console.client()
    for path in PAGES:
        reply = ops.get(path)
        assert reply.status == 200, (path, reply.body[:300])
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        csp = reply.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "script-src" not in csp and "<script" not in reply.body
    assert console.client("lead:another-long-password").get("/health").status == 200

    # A state-changing request without a token, with a forged one, with another browser's
    # token or from another origin is refused, and nothing is done
    ops.get("/health")
    form = {"note": "fixed the key", "confirm": "yes"}
    assert ops.post("/health/breaker/reset", form, token=False).status == 403
    assert ops.post("/health/breaker/reset", {**form, "csrf_token": "0" * 64},
                    token=False).status == 403
    other = console.client()
    other.get("/health")
    stolen = other.token
    assert stolen and stolen != ops.token
    assert ops.post("/health/breaker/reset", {**form, "csrf_token": stolen},
                    token=False).status == 403
    lead = console.client("lead:another-long-password")
    lead.jar = ops.jar  # same cookie, other user: the token is bound to the user too
    assert lead.post("/health/breaker/reset", {**form, "csrf_token": ops.token},
                     token=False).status == 403
    cross = ops.request("POST", "/health/breaker/reset", {**form, "csrf_token": ops.token},
                        headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    assert ops.request("GET", "/health/breaker/reset").status == 405
    assert journal.recent() == []
    # And with the token the action is done and journaled with the user's name
    done = ops.post("/health/breaker/reset", form)
    assert done.status == 200 and "breaker closed" in done.body
    [action] = journal.recent()
    assert (action.by, action.action, action.note) == ("ops (console)", "breaker_reset",
                                                       "fixed the key")
    # The access log names paths, never a query string
    ops.get(f"/lookup?q={EMAIL}")
    log = console.log.read_text()
    assert "GET /lookup 200" in log and EMAIL not in log


def _dead_letters(ops_env: Callable[..., OpsEnv]) -> tuple[OpsEnv, dict[str, str]]:
    env = ops_env([
        Agreement(id="e1", biz_type="10004", user_email=EMAIL, user_id="2088002007018916",
                  script=STUCK),
        Agreement(id="e2", type_code="BUSI003100021000301", trans_account_out=ACCOUNT,
                  script=STUCK),
        Agreement(id="e3", customer_code="C00000000003",
                  script=("FAIL_UNFREEZE_STANDARD_BAIL",) * 5),
    ])
    env.workers.start_worker()
    ids = {}
    for ref, args in (("r-email", ("--biz-type", "10004", "--user-email", EMAIL)),
                      ("r-account", ("--type-code", "BUSI003100021000301",
                                     "--trans-account-out", ACCOUNT)),
                      ("=HYPERLINK(1)", ("--customer-code", "C00000000003"))):
        result = env.cli("enqueue", *args, "--reference", ref, "--wait")
        assert result.exit_code == 3, result.output
        ids[ref] = result.stdout.split()[0]
    return env, ids


@pytest.mark.slow
def test_escalations_group_explain_filter_export_resolve_and_requeue_with_notes(
        ops_env: Callable[..., OpsEnv], console_factory: Callable[..., ConsoleProcess],
        tmp_path: Path) -> None:
    env, ids = _dead_letters(ops_env)
    console = console_factory(env.env)
    ops = console.client()
    # The page groups the entries by code with the rules' meaning and advice
    page = ops.get("/escalations")
    text = text_of(page.body)
    assert "3 open" in text
    assert "STATUS_TYPE_CODE" in text and "FAIL_UNFREEZE_STANDARD_BAIL" in text
    assert page.body.index("STATUS_TYPE_CODE") < page.body.index("FAIL_UNFREEZE_STANDARD_BAIL")
    assert "商户协议状态非正常" in text and "not in a normal state" in text
    assert "解冻保证金失败" in text
    assert "What to do:" in text and "support" in text.lower()
    # the masked job, its attempts from the audit stream, its age and campaign
    assert "m***@example.com" in text and "2088********0156" in text
    for job_id in ids.values():
        assert f'id="job-{job_id}"' in page.body
    assert re.search(r"attempts from the audit stream \([1-9]", text)
    assert "age 0m" in text or "age 1m" in text
    # Filters: by code, by campaign, by age
    only = text_of(ops.get("/escalations?code=FAIL_UNFREEZE_STANDARD_BAIL").body)
    assert "1 open" in only and ids["=HYPERLINK(1)"] in only and ids["r-email"] not in only
    assert "Nothing to escalate" in text_of(ops.get("/escalations?campaign=nope").body)
    assert "Nothing to escalate" in text_of(ops.get("/escalations?age=24h").body)
    # CSV export of the filtered list: masked, no formula, with the journal column
    exported = ops.get("/escalations.csv?code=STATUS_TYPE_CODE")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.body)))
    assert sorted(r["job_id"] for r in rows) == sorted([ids["r-email"], ids["r-account"]])
    every = ops.get("/escalations.csv").body
    assert "'=HYPERLINK(1)" in every
    # Resolve needs a note; without one nothing changes
    back = ops.post(f"/escalations/{ids['r-email']}/resolve", {"note": "  "})
    assert "a note is required" in text_of(back.body)
    back = ops.post(f"/escalations/{ids['r-email']}/requeue", {"note": ""})
    assert "requeue: a note is required" in text_of(back.body)
    assert env.workers.redis.zscore(env.workers.keys.dlq, ids["r-email"]) is not None
    note = f"Alipay support fixed the agreement; told {EMAIL}"
    done = ops.post(f"/escalations/{ids['r-email']}/resolve", {"note": note})
    assert f"resolved {ids['r-email']}" in text_of(done.body)
    assert env.workers.redis.zscore(env.workers.keys.dlq, ids["r-email"]) is None
    assert "Recently resolved" in done.body and "told m***@example.com" in text_of(done.body)
    # Requeue with a note: the job is queued again (the emulator answers STATUS_TYPE_CODE
    # again, so it comes back), and the journal shows who, when, what and why on the job
    clean = ops.post(f"/escalations/{ids['r-account']}/requeue",
                     {"note": "merchant agreement renewed"})
    assert f"requeued {ids['r-account']}" in text_of(clean.body)
    looked = text_of(ops.get(f"/lookup?q={ids['r-account']}").body)
    assert "requeue by ops (console): “merchant agreement renewed”" in looked
    looked = text_of(ops.get("/lookup?q=r-email").body)
    assert "resolve by ops (console)" in looked and ids["r-email"] in looked
    assert "Attempts" in looked and "STATUS_TYPE_CODE" in looked
    # Requeueing a resolved entry says why it cannot
    again = ops.post(f"/escalations/{ids['r-email']}/requeue", {"note": "again"})
    assert "not in the dead-letter queue" in text_of(again.body)
    # Health: the requeued dead letter left the last hour as it left all time
    health = text_of(ops.get("/health").body)
    found = re.search(r"dead_lettered\s+(\d+)\s+(\d+)", health)
    assert found and found.group(1) == found.group(2) != "0", health
    # Nothing served holds personal data or the key
    served = "\n".join(ops.get(p).body for p in (*PAGES, f"/lookup?q={ids['r-email']}",
                                                 f"/lookup?q={ids['r-account']}"))
    for secret in (EMAIL, ACCOUNT, env.workers.key):
        assert secret not in served
    assert EMAIL not in console.log.read_text()


@pytest.mark.slow
def test_campaigns_show_progress_and_pause_resume_cancel_with_confirmation(
        plain_env: WorkerEnv, console_factory: Callable[..., ConsoleProcess],
        tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("biz_type,user_email,reference\n" + "".join(
        f"10004,buyer{i}@example.com,ref-{i}\n" for i in range(6)), encoding="utf-8")
    result = CliRunner().invoke(cli, ["campaign", "run", str(rows), "--name", "spring",
                                      "--detach", "--json"], env=plain_env.env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    campaign = json.loads(result.stdout)["campaign"]
    console = console_factory(plain_env.env)
    ops = console.client()
    page = ops.get("/campaigns")
    text = text_of(page.body)
    assert "spring" in text and campaign in text and "0 / 6" in text
    assert '<progress max="6" value="0">' in page.body and "ETA" in text
    # Pausing needs the confirmation box
    refused = ops.post(f"/campaigns/{campaign}/pause", {"note": "x"})
    assert "tick the confirmation box" in text_of(refused.body)
    assert _state(plain_env, campaign) == "running"
    paused = ops.post(f"/campaigns/{campaign}/pause", {"confirm": "yes", "note": "hold on"})
    assert "paused" in text_of(paused.body) and _state(plain_env, campaign) == "paused"
    resumed = ops.post(f"/campaigns/{campaign}/resume", {"confirm": "yes"})
    assert "resumed" in text_of(resumed.body) and _state(plain_env, campaign) == "running"
    wrong = ops.post(f"/campaigns/{campaign}/resume", {"confirm": "yes"})
    assert "running" in text_of(wrong.body) and "error" in wrong.body
    cancelled = ops.post(f"/campaigns/{campaign}/cancel", {"confirm": "yes", "note": "stop"})
    assert "cancelled" in text_of(cancelled.body)
    assert _state(plain_env, campaign) == "cancelled"
    history = [(a.action, a.note) for a in ActionLog(plain_env.redis, plain_env.keys)
               .for_target(f"campaign:{campaign}")]
    assert history == [("pause", "hold on"), ("resume", ""), ("cancel", "stop")]
    assert "pause by ops (console): “hold on”" in text_of(cancelled.body)
    # The report CSV: one row per input row, identities masked
    report = ops.get(f"/campaigns/{campaign}/report.csv")
    assert report.status == 200 and "attachment" in report.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(report.body)))
    assert len(lines) == 6 and lines[0]["identity"].endswith("***@example.com")
    assert "buyer0@example.com" not in report.body
    assert ops.get("/campaigns/nope/report.csv").status == 404


def _state(env: WorkerEnv, campaign: str) -> str:
    return (env.redis.hget(env.keys.campaign(campaign), "state") or b"").decode()


@pytest.mark.slow
def test_health_shows_the_open_breaker_with_advice_and_resets_it_with_a_note(
        plain_env: WorkerEnv, console_factory: Callable[..., ConsoleProcess]) -> None:
    breaker = Breaker(plain_env.redis, plain_env.keys, threshold=1, window_seconds=60)
    assert breaker.record_halt("ILLEGAL_PARTNER", "partner not recognised") == "opened"
    plain_env.redis.zadd(plain_env.keys.workers, {"w-stale@test": 1.0})
    console = console_factory(plain_env.env)
    ops = console.client()
    text = text_of(ops.get("/health").body)
    assert "Circuit breaker OPEN" in text and "ILLEGAL_PARTNER" in text
    assert "What to do:" in text and "partner not recognised" in text
    assert "w-stale@test" in text and "NO" in text
    assert "last hour" in text and "dead-letter queue" in text
    refused = ops.post("/health/breaker/reset", {"confirm": "yes", "note": ""})
    assert "say what was fixed" in text_of(refused.body)
    assert breaker.state().state == "open"
    done = ops.post("/health/breaker/reset", {"confirm": "yes", "note": "partner id fixed"})
    assert "Circuit breaker closed" in text_of(done.body)
    assert breaker.state().state == "closed"
    assert "breaker_reset by ops (console): “partner id fixed” (was open ILLEGAL_PARTNER)" in \
        text_of(done.body)


@pytest.mark.slow
def test_lookup_says_when_nothing_matches(plain_env: WorkerEnv,
                                          console_factory: Callable[..., ConsoleProcess]) -> None:
    console = console_factory(plain_env.env)
    text = text_of(console.client().get("/lookup?q=no-such-reference").body)
    assert "No job has the id or reference “no-such-reference”" in text


@pytest.mark.slow
def test_console_without_credentials_listens_on_loopback_only(
        plain_env: WorkerEnv, console_factory: Callable[..., ConsoleProcess]) -> None:
    console = console_factory(plain_env.env, auth=None)
    assert console.base.startswith("http://127.0.0.1:")
    assert "NO credentials" in console.log.read_text()
    reply = console.client(None).get("/health")
    assert reply.status == 200 and "signed in as local" in reply.body

