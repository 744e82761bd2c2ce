"""Secrets stay secret, personal data stays masked: everything the system writes is searched.

A recognisable MD5 key (and, in a second run, an RSA private key) is configured; a campaign with
every outcome (unsigned, already unsigned after a lost answer, retried, dead-lettered, rejected,
duplicate, parked by a halt answer, a success hook that fails once) runs through a real worker
logging at DEBUG, with Flower watching. Then the worker and Flower logs, every Redis key under
the test's prefix (broker queues and unacknowledged messages included, message bodies decoded),
the files written, Flower's API and pages, and the output of every operator command are
searched for the key, the private key's PEM lines and every ``sign`` the gateway saw or sent:
none may appear. Personal data (emails, account numbers, user ids) may appear only in the
merchant's own report, asked for with ``--show-personal-data``.

A crash is tested on its own: a private Redis stopped while requests are in flight makes the
task fail with a traceback, which is searched the same way.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import pytest
import redis
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import paths
from tests.ops.test_flower import CREDS, Flower
from tests.plugins.emulator import Emulator
from tests.plugins.redis_fixtures import delete_prefix
from tests.plugins.worker_fixtures import BIN, WorkerEnv, wait_for
from unsign_worker.cli.main import cli
from unsign_worker.emulator import server as emulator_server
from unsign_worker.emulator.agreements import UNSIGNED, Agreement
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.protocol.exceptions import BadSignatureError, ConfigError, ValidationError
from unsign_worker.protocol.masking import mask_account, mask_email
from unsign_worker.protocol.params import UnsignRequest, build_params
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import make_signer, sign_params
from unsign_worker.settings import Secret, Settings
from unsign_worker.store.job import Job

ROOT = paths.ROOT
PARTNER = "2088101568338364"
#: Recognisable: any appearance of it anywhere is a leak.
MD5_KEY = "SECRETKEY" + "0123456789ABCDEFGHIJKLM"
REDIS_PASSWORD = "redis-pass-SECRET-42"
EMAIL = "li.secret.person@example.com"
EMAIL_REJECTED = "nobody.secret@example.org"
EMAIL_INVALID = "invalid.secret.row@example.net"
ACCOUNT = "20880020070189160156"
ACCOUNT_ESCALATED = "20880099887766550156"
USER_ID = "2088002007018916"
#: Rows of the campaign: (reference, params, expected final state).
ROWS: tuple[tuple[str, dict[str, str], str], ...] = (
    ("email", {"biz_type": "10004", "user_email": EMAIL}, "unsigned"),
    ("account", {"type_code": "BUSI003100021000301", "trans_account_out": ACCOUNT}, "unsigned"),
    ("lost", {"customer_code": "SEC-LOST"}, "already_unsigned"),
    ("retry", {"customer_code": "SEC-RETRY"}, "unsigned"),
    ("escalated", {"type_code": "BUSI003100021000302", "trans_account_out": ACCOUNT_ESCALATED},
     "dead_lettered"),
    ("halt", {"customer_code": "SEC-HALT"}, "unsigned"),
    ("missing", {"biz_type": "10004", "user_email": EMAIL_REJECTED}, "rejected"),
    ("gone", {"customer_code": "SEC-GONE"}, "rejected"),
    ("dup-a", {"customer_code": "SEC-DUP"}, "unsigned|duplicate"),
    ("dup-b", {"customer_code": "SEC-DUP"}, "unsigned|duplicate"),
)
#: A row the validator refuses (it goes to the rejects file with its values).
INVALID_ROW = {"biz_type": "10003", "user_email": EMAIL_INVALID}


def agreements() -> list[Agreement]:
    """The emulator's agreements, fresh for each run (the emulator changes them as it goes)."""
    return [
        # every agreement has its customer_code: a success always answers it (section 5.2)
        Agreement(id="email", biz_type="10004", user_email=EMAIL, user_id=USER_ID,
                  customer_code="SEC-EMAIL"),
        Agreement(id="account", type_code="BUSI003100021000301", trans_account_out=ACCOUNT,
                  customer_code="SEC-ACCOUNT"),
        Agreement(id="lost", customer_code="SEC-LOST", script=("LOST_ANSWER",)),
        Agreement(id="retry", customer_code="SEC-RETRY", script=("HTTP_503",) * 6),
        Agreement(id="escalated", type_code="BUSI003100021000302",
                  trans_account_out=ACCOUNT_ESCALATED, script=("TOO_MUCH_TYPE_CODE",) * 3),
        Agreement(id="halt", customer_code="SEC-HALT", script=("ILLEGAL_SIGN",)),
        Agreement(id="gone", customer_code="SEC-GONE", status=UNSIGNED),
        Agreement(id="dup", customer_code="SEC-DUP"),
    ]


#: Where people look: personal data must be masked in all of these.
HUMAN_FACING = ("worker log", "flower log", "flower", "cli", "report", "rejects", "dlq export",
                "audit export")


def failing_once_hook(event: dict[str, Any]) -> None:
    """Success hook (run by the worker): fails the first time for each agreement, with the
    event's personal data in its message, as a careless merchant's code might."""
    client = redis.Redis.from_url(os.environ["UNSIGN_REDIS_URL"])
    tries = client.incr(f"{os.environ['UNSIGN_KEY_PREFIX']}test-hook:{event['idempotency_key']}")
    if tries == 1:
        raise RuntimeError(f"merchant database refused {event['params']}")


# --- gathering what was written -----------------------------------------------------------------


def pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def variants(secret: str) -> set[str]:
    """The secret and the forms it takes in URLs and JSON."""
    return {secret, quote(secret, safe=""), quote_plus(secret), secret.replace("/", "\\/")}


def redis_dump(client: redis.Redis, prefix: str) -> str:
    """Every key under ``prefix`` with its value, whatever its type, message bodies decoded."""
    out: list[str] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values: list[Any] = [client.get(key)]
        elif kind == "hash":
            values = [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [x for _, fields in client.xrange(key) for pair in fields.items()
                      for x in pair]
        else:
            values = []
        out.append(key.decode("utf-8", "replace"))
        out.extend(expand(v) for v in values if v is not None)
    return "\n".join(out)


def expand(value: bytes | str) -> str:
    """``value`` as text, followed by the decoded body of any broker message inside it."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    parts = [text]
    try:
        data = json.loads(text)
    except ValueError:
        return text
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            body = item.get("body")
            if isinstance(body, str) and item.get("properties", {}).get("body_encoding") == \
                    "base64":
                try:
                    parts.append(base64.b64decode(body).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    pass
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return "\n".join(parts)


@dataclass
class Written:
    """Everything a campaign run wrote, by origin, and the secrets to look for."""

    variant: str
    secrets: dict[str, set[str]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    audit_outcomes: set[str] = field(default_factory=set)
    full_report: str = ""
    signs: set[str] = field(default_factory=set)
    campaign: str = ""
    job_ids: list[str] = field(default_factory=list)
    _redis_lines: set[str] = field(default_factory=set)

    def add(self, origin: str, text: str) -> None:
        self.texts.setdefault(origin, []).append(text)

    def add_redis(self, dump: str) -> None:
        """A Redis dump; only lines not seen in an earlier dump are kept."""
        new = [line for line in dump.splitlines() if line not in self._redis_lines]
        self._redis_lines.update(new)
        self.add("redis", "\n".join(new))

    def leaks(self, text: str) -> list[str]:
        """The names of the secrets found in ``text``."""
        return [what for what, pattern in self._patterns().items() if pattern.search(text)]

    def _patterns(self) -> dict[str, re.Pattern[str]]:
        return {what: re.compile("|".join(re.escape(s) for s in sorted(forms)))
                for what, forms in self.secrets.items() if forms}


class Capture:
    """Records every request and answer the emulator handles, to learn each ``sign``."""

    def __init__(self) -> None:
        self.signs: set[str] = set()
        self._original = emulator_server.process

    def __call__(self, state: Any, query: bytes, body: bytes = b"") -> Any:
        for raw in (query, body):
            for name, value in parse_qsl(raw.decode("latin-1"), encoding="latin-1"):
                if name == "sign" and value:
                    self.signs.add(value)
        outcome = self._original(state, query, body)
        for found in re.findall(rb"<sign>([^<]+)</sign>", outcome.body or b""):
            self.signs.add(found.decode("ascii", "replace"))
        return outcome


def computed_signs(signer: Any) -> set[str]:
    """The ``sign`` of every request the worker builds for the campaign's rows."""
    out = set()
    for _, params, _ in ROWS:
        built = build_params(UnsignRequest.from_mapping(params), partner=PARTNER,
                             charset="utf-8")
        out.add(sign_params(built, signer, "utf-8")["sign"])
    return out


def rsa_pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo
                                           ).decode()
    return private, public


def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output + getattr(result, "stderr", "")


@pytest.fixture(scope="module", params=["md5", "rsa"])
def written(request: pytest.FixtureRequest, redis_url: str, redis_client: redis.Redis,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    variant: str = request.param
    tmp = tmp_path_factory.mktemp(f"secrets-{variant}")
    prefix = f"unsign-test:{uuid.uuid4().hex[:12]}:"
    out = Written(variant)
    extra = {"UNSIGN_SUCCESS_HOOK": "tests.system.test_security_secrets:failing_once_hook",
             "PYTHONPATH": str(ROOT)}
    if variant == "md5":
        config = build_config(partner=PARTNER, key=MD5_KEY)
        signer = make_signer("MD5", key=MD5_KEY)
        key = MD5_KEY
        out.secrets["MD5 key"] = variants(MD5_KEY)
    else:
        merchant_private, merchant_public = rsa_pem(rsa.generate_private_key(65537, 2048))
        alipay_private, alipay_public = rsa_pem(rsa.generate_private_key(65537, 2048))
        config = build_config(partner=PARTNER, merchant_public_key_pem=merchant_public,
                              alipay_private_key_pem=alipay_private)
        signer = make_signer("RSA", private_key_pem=merchant_private)
        (tmp / "merchant.pem").write_text(merchant_private)
        (tmp / "alipay-public.pem").write_text(alipay_public)
        extra.update(ALIPAY_SIGN_TYPE="RSA", ALIPAY_PRIVATE_KEY_FILE=str(tmp / "merchant.pem"),
                     ALIPAY_PUBLIC_KEY_FILE=str(tmp / "alipay-public.pem"))
        key = ""
        out.secrets["private key"] = {v for line in pem_body_lines(merchant_private)
                                      for v in variants(line)}
        out.secrets["Alipay's private key"] = {v for line in pem_body_lines(alipay_private)
                                               for v in variants(line)}
    capture = Capture()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(emulator_server, "process", capture)
    emulator = Emulator(state=EmulatorState(config, agreements())).start()
    env = WorkerEnv(redis_url=redis_url, prefix=prefix, gateway_url=emulator.url,
                    partner=PARTNER, key=key, tmp=tmp, extra=extra)
    flower: Flower | None = None
    try:
        flower = Flower({**env.env, "FLOWER_BASIC_AUTH": CREDS}, tmp / "flower.log")
        _run_campaign(env, flower, tmp, out)
        _collect(env, flower, tmp, out)
    finally:
        if flower is not None:
            flower.stop()
        env.stop_all()
        emulator.close()
        monkeypatch.undo()
    out.add("worker log", (tmp / "w1.log").read_text(errors="replace"))
    out.add("flower log", (tmp / "flower.log").read_text(errors="replace"))
    out.signs = capture.signs | computed_signs(signer)
    out.secrets["sign values"] = {v for s in out.signs for v in variants(s)}
    yield out
    delete_prefix(redis_client, prefix)


def _run_campaign(env: WorkerEnv, flower: Flower, tmp: Path, out: Written) -> None:
    path = tmp / "campaign.csv"
    columns = ("reference", "customer_code", "type_code", "trans_account_out", "biz_type",
               "user_email")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        for reference, params, _ in ROWS:
            writer.writerow({"reference": reference, **params})
        writer.writerow({"reference": "invalid", **INVALID_ROW})
    cli_env = {**env.env, "COLUMNS": "200"}
    # Enqueue before any worker runs, so the broker's queue holds the messages to search
    code, text = run_cli(cli_env, "campaign", "run", str(path), "--detach", "--json",
                          "--batch-size", "5")  # both message kinds: batches and single jobs
    assert code == 3, text
    out.add("cli", text)
    campaign = json.loads(text.strip().splitlines()[-1])["campaign"]
    out.add_redis(redis_dump(env.redis, env.prefix))
    env.start_worker("w1", concurrency=4, extra=["--loglevel", "DEBUG"])

    def finished() -> bool:
        out.add_redis(redis_dump(env.redis, env.prefix))  # unacked and retried messages
        status = json.loads(run_cli(cli_env, "campaign", "status", campaign, "--json")[1])
        return bool(status["finished"]) and env.redis.zcard(env.keys.hooks) == 0

    wait_for(finished, timeout=180, interval=0.5, what="the campaign and its hooks to finish")
    ids = [j.decode() for j in env.redis.lrange(env.keys.campaign_jobs(campaign), 0, -1)]
    jobs = {env.job(j)["reference"]: env.job(j) for j in ids}
    out.states = {ref: job["state"] for ref, job in jobs.items()}
    out.audit_outcomes = {entry.get("outcome", "") for entry in env.audit()}
    # Two single jobs from the shell too: their messages show masked arguments in Flower
    singles = []
    for args in (("--biz-type", "10004", "--user-email", EMAIL),
                 ("--type-code", "BUSI003100021000302", "--trans-account-out", ACCOUNT_ESCALATED)):
        code, text = run_cli(cli_env, "enqueue", *args, "--wait", "--timeout", "120")
        out.add("cli", text)
        singles.append(text.split()[0])
    out.campaign, out.job_ids = campaign, ids + singles

    def flower_saw_all() -> bool:
        tasks = flower.json("/api/tasks?limit=1000").values()
        done = [t for t in tasks if t.get("state") in ("SUCCESS", "FAILURE")]
        names = {t.get("name") for t in done}
        shown = " ".join(str(t.get("kwargs") or "") for t in done)
        return {"unsign_worker.unsign_batch", "unsign_worker.unsign"} <= names and all(
            j in shown for j in singles)

    wait_for(flower_saw_all, timeout=90, interval=1, what="flower to see the jobs")


def _collect(env: WorkerEnv, flower: Flower, tmp: Path, out: Written) -> None:
    cli_env = {**env.env, "COLUMNS": "200"}
    campaign, ids = out.campaign, out.job_ids
    dead = [j for j in ids if env.job(j)["state"] == "dead_lettered"]
    commands = [("campaign", "status", campaign), ("campaign", "status", campaign, "--json"),
                ("campaign", "list"), ("campaign", "list", "--json"),
                ("dlq", "list"), ("dlq", "list", "--json"), ("dlq", "export"),
                ("status",), ("status", "--json"), ("check-config",), ("check-config", "--json"),
                ("breaker", "status")]
    for job_id in dead:
        commands += [("dlq", "show", job_id), ("dlq", "show", job_id, "--json")]
    for job_id in ids:
        commands += [("job", "show", job_id), ("job", "show", job_id, "--json")]
    for command in commands:
        out.add("cli", run_cli(cli_env, *command)[1])
    files = {"report": tmp / "report.csv", "audit export": tmp / "audit.csv",
             "dlq export": tmp / "dlq.csv"}
    run_cli(cli_env, "campaign", "report", campaign, "--out", str(files["report"]))
    run_cli(cli_env, "audit", "export", "--format", "csv", "--out", str(files["audit export"]))
    run_cli(cli_env, "dlq", "export", "--format", "csv", "--out", str(files["dlq export"]))
    out.add("audit export", run_cli(cli_env, "audit", "export", "--format", "jsonl")[1])
    for origin, path in files.items():
        out.add(origin, path.read_text(encoding="utf-8"))
    out.add("rejects", (tmp / "campaign.csv.rejects.csv").read_text(encoding="utf-8"))
    full = tmp / "full-report.csv"
    run_cli(cli_env, "campaign", "report", campaign, "--out", str(full), "--show-personal-data")
    out.full_report = full.read_text(encoding="utf-8")
    # Flower: the API, the pages, the metrics
    tasks = flower.json("/api/tasks?limit=1000")
    worker = env.procs[0].hostname  # type: ignore[attr-defined]
    paths = ["/api/tasks?limit=1000", "/api/workers?refresh=1", "/api/workers",
             f"/api/workers?refresh=1&workername={worker}", "/api/task/types",
             "/api/queues/length", "/tasks/datatable?draw=1&start=0&length=1000&search[value]=",
             "/tasks", "/workers", "/broker", f"/worker/{worker}", "/"]
    for task_id in tasks:
        paths += [f"/api/task/info/{task_id}", f"/task/{task_id}"]
    for path in paths:
        out.add("flower", flower.get(path)[1])
    out.add("flower", flower.get("/metrics", auth=None)[1])
    out.add_redis(redis_dump(env.redis, env.prefix))


# --- the run went through every outcome -----------------------------------------------------------


@pytest.mark.slow
def test_the_campaign_went_through_every_outcome(written: Written) -> None:
    for reference, _, expected in ROWS:
        assert written.states[reference] in expected.split("|"), (reference, written.states)
    assert {written.states["dup-a"], written.states["dup-b"]} == {"unsigned", "duplicate"}
    assert {"retrying", "retrying_in_task"} & written.audit_outcomes
    assert "parked" in written.audit_outcomes
    worker_log = "\n".join(written.texts["worker log"])
    assert "DEBUG" in worker_log and "success hook failed" in worker_log
    assert len(written.signs) >= len(ROWS)
    # the broker's messages were searched too, their bodies decoded
    assert any('"jobs": [{"job_id"' in text for text in written.texts["redis"])


# --- secrets: nowhere ---------------------------------------------------------------------------


@pytest.mark.slow
def test_no_key_private_key_or_sign_appears_in_anything_written(written: Written) -> None:
    searched = 0
    for origin, texts in written.texts.items():
        for text in texts:
            searched += len(text)
            assert not written.leaks(text), f"{written.variant}: {written.leaks(text)} in {origin}"
    assert searched > 100_000  # the worker's debug log alone is larger
    if written.variant == "md5":
        assert not any(re.search(r"(?i)secretkey", t) for ts in written.texts.values()
                       for t in ts)


# --- personal data: masked where people look, shown only in the merchant's own report ------------


@pytest.mark.slow
def test_personal_data_is_masked_in_logs_flower_tables_and_exports(written: Written) -> None:
    raw = [EMAIL, EMAIL_REJECTED, EMAIL_INVALID, ACCOUNT, ACCOUNT_ESCALATED, USER_ID]
    for origin in HUMAN_FACING:
        for text in written.texts.get(origin, []):
            for value in raw:
                assert value not in text, f"{value[:6]}… in {origin}"
    shown = "\n".join(t for origin in HUMAN_FACING for t in written.texts.get(origin, []))
    assert mask_email(EMAIL) in shown and mask_account(ACCOUNT_ESCALATED) in shown


@pytest.mark.slow
def test_the_report_shows_personal_data_only_when_the_merchant_asks(written: Written) -> None:
    default = "\n".join(written.texts["report"])
    assert EMAIL not in default and mask_email(EMAIL) in default
    assert ACCOUNT not in default and mask_account(ACCOUNT) in default
    assert EMAIL in written.full_report and ACCOUNT in written.full_report
    for forms in written.secrets.values():
        assert not any(secret in written.full_report for secret in forms)


# --- reprs and exception texts ------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_pem() -> str:
    return rsa_pem(rsa.generate_private_key(65537, 2048))[0]


def test_settings_signers_and_secrets_never_show_key_material_in_repr_or_str(
        private_pem: str, tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(private_pem)
    settings = Settings.from_env({"ALIPAY_KEY": MD5_KEY, "ALIPAY_SIGN_TYPE": "RSA",
                                  "ALIPAY_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
                                  "UNSIGN_REDIS_URL": f"redis://u:{REDIS_PASSWORD}@h:6379/0",
                                  "UNSIGN_BROKER_URL": f"rediss://:{REDIS_PASSWORD}@h:6380/0"})
    shown = [repr(settings), str(settings), f"{settings}", repr(settings.key),
             str(settings.private_key_pem), repr(make_signer("MD5", key=MD5_KEY)),
             repr(make_signer("RSA", private_key_pem=private_pem)), repr(Secret(MD5_KEY))]
    for text in shown:
        assert MD5_KEY not in text and REDIS_PASSWORD not in text
        assert not any(line in text for line in pem_body_lines(private_pem))
    assert settings.key.reveal() == MD5_KEY  # the value is there, only hidden


def test_a_job_repr_masks_its_personal_data() -> None:
    job = Job("j1", {"biz_type": "10004", "user_email": EMAIL}, reference="r")
    other = Job("j2", {"type_code": "BUSI01", "trans_account_out": ACCOUNT})
    for text in (repr(job), str(job), repr([job, other]), repr(other)):
        assert EMAIL not in text and ACCOUNT not in text
    assert mask_email(EMAIL) in repr(job) and mask_account(ACCOUNT) in repr(other)


def test_exception_texts_name_fields_and_rules_never_values(private_pem: str) -> None:
    # a job with personal data that breaks rules
    with pytest.raises(ValidationError) as invalid:
        UnsignRequest.from_mapping({"biz_type": "10003", "user_email": EMAIL + " ",
                                    "trans_account_out": ACCOUNT + "x"}).validate(
            charset="utf-8")
    # a private key that does not load (a truncated PEM: its lines are still secret)
    broken = "\n".join(private_pem.splitlines()[:-3])
    with pytest.raises(ConfigError) as bad_key:
        make_signer("RSA", private_key_pem=broken)
    # an answer whose signature does not verify
    signer = make_signer("MD5", key=MD5_KEY)
    forged = sign_params({"customer_code": "C1"}, make_signer("MD5", key="x" * 32),
                         "utf-8")["sign"]
    body = (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><alipay><is_success>T</is_success>"
            f"<response><customer><customer_code>C1</customer_code></customer></response>"
            f"<sign>{forged}</sign><sign_type>MD5</sign_type></alipay>").encode()
    with pytest.raises(BadSignatureError) as bad_sign:
        parse_response(body, verifier=signer)
    for exc in (invalid.value, bad_key.value, bad_sign.value):
        text = f"{exc!s} {exc!r} {exc.args!r}"
        for secret in (EMAIL, ACCOUNT, MD5_KEY, forged, *pem_body_lines(private_pem)):
            assert secret not in text, (type(exc).__name__, secret[:8])
    assert "user_email" in str(invalid.value) and "[format]" in str(invalid.value)


# --- a crash: Redis stopped while requests are in flight ------------------------------------------


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")
def test_a_crash_traceback_holds_no_secret_and_the_jobs_still_finish(tmp_path: Path) -> None:
    from tests.plugins.ports import free_port
    from unsign_worker.emulator.faults import FaultSettings

    port = free_port()
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--requirepass", REDIS_PASSWORD], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_for(lambda: _pings(redis.Redis.from_url(url)), timeout=30, what="private redis")
        return proc

    server = start_redis()
    state = EmulatorState(build_config(partner=PARTNER, key=MD5_KEY),
                          [Agreement(id=f"c{i}", customer_code=f"SEC-CRASH-{i}")
                           for i in range(6)])
    state.faults = FaultSettings.from_mapping({"latency_ms": 2500})
    gateway = Emulator(state=state).start()
    env = WorkerEnv(redis_url=url, prefix="crash:", gateway_url=gateway.url, partner=PARTNER,
                    key=MD5_KEY, tmp=tmp_path)
    try:
        env.start_worker("w1", concurrency=6, extra=["--loglevel", "DEBUG"])
        ids = [env.enqueue({"customer_code": f"SEC-CRASH-{i}"}) for i in range(6)]
        # When Redis stops while the requests are held at the gateway
        wait_for(lambda: state.in_flight >= 3, timeout=60, what="requests in flight")
        try:
            redis.Redis.from_url(url).shutdown(nosave=False)
        except redis.ConnectionError:
            pass
        server.wait(timeout=30)
        wait_for(lambda: "Traceback" in env.log_tail(lines=2000), timeout=60,
                 what="a task to crash with a traceback")
        server = start_redis()
        env.redis = redis.Redis.from_url(url)
        if env.procs[-1].poll() is not None:  # its supervisor would restart it
            env.start_worker("w2", concurrency=6, extra=["--loglevel", "DEBUG"])
        # Then the jobs still end, each agreement unsigned once
        jobs = env.wait_terminal(ids, timeout=240)
        assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}
        assert all(state.stats.counts(f"c{i}").unsigns == 1 for i in range(6))
    finally:
        env.stop_all()
        gateway.close()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    # And the logs, traceback included, hold no key, no sign, no Redis password
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("w*.log"))
    assert "Traceback" in logs
    signer = make_signer("MD5", key=MD5_KEY)
    signs = {sign_params(build_params(UnsignRequest(customer_code=f"SEC-CRASH-{i}"),
                                      partner=PARTNER, charset="utf-8"), signer, "utf-8")["sign"]
             for i in range(6)}
    for secret in (MD5_KEY, REDIS_PASSWORD, *signs):
        assert secret not in logs, secret[:8]


# --- Flower: never open to the network without credentials ----------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10"])
@pytest.mark.parametrize("no_auth", [False, True])
@pytest.mark.slow
def test_flower_refuses_a_non_loopback_address_without_credentials(
        tmp_path: Path, address: str, no_auth: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "UNSIGN_"))}
    args = [str(BIN / "unsign-worker"), "flower", "--port", "0", "--address", address]
    run = subprocess.run([*args, "--no-auth"] if no_auth else args, env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    expected = "only on a loopback address" if no_auth else "FLOWER_BASIC_AUTH is not set"
    assert expected in run.stderr
    assert "flower: http://" not in run.stdout  # it never started serving
