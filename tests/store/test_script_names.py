"""Lua keys and arguments by name: every script declares its names once in its header, its
body reads them by name, and a call must pass exactly the declared names."""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from typing import Any

import pytest
import redis

import unsign_worker.store
from unsign_worker.store.breaker import Breaker
from unsign_worker.store.campaign_control import CampaignControl
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.claims import ClaimStatus, DedupStore
from unsign_worker.store.deadletter import DeadLetters
from unsign_worker.store.hook_records import HookRecords
from unsign_worker.store.job import Job
from unsign_worker.store.job_records import JobRecords
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import ProducerSettings
from unsign_worker.store.producer_streams import ProducerStreams
from unsign_worker.store.recovery import HeldMessages
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.scripts import (
    LIBRARIES,
    LUA_DIR,
    Names,
    Script,
    ScriptError,
    ScriptNameError,
    ScriptSpec,
    load,
    lua,
    parse_header,
)
from unsign_worker.store.states import BreakerStatus, CampaignState, JobState


def script_names() -> list[str]:
    return sorted(p.stem for p in LUA_DIR.glob("*.lua") if p.stem not in LIBRARIES)


def loaded_specs() -> dict[str, list[str]]:
    """Script name -> the store modules that load it (module-level ScriptSpec objects)."""
    found: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(unsign_worker.store.__path__):
        module = importlib.import_module(f"unsign_worker.store.{info.name}")
        for value in vars(module).values():
            if isinstance(value, ScriptSpec):
                found.setdefault(value.name, []).append(info.name)
    return found


@pytest.mark.parametrize("name", script_names())
def test_every_script_declares_its_keys_and_arguments(name: str) -> None:
    keys, args, body = parse_header(name, lua(name))

    assert keys.all, f"{name}.lua declares no keys"
    assert not re.search(r"\b(KEYS|ARGV)\b", body)
    declared = set(keys.all) | set(args.all)
    used = set(re.findall(r"\bK\.(\w+)", body)) | set(re.findall(r"\bA\.(\w+)", body))
    assert used <= declared, f"{name}.lua reads undeclared names {sorted(used - declared)}"
    assert set(re.findall(r"\bK\.(\w+)", body)) == set(keys.all), f"{name}: unused key"
    assert set(re.findall(r"\bA\.(\w+)", body)) == set(args.all), f"{name}: unused argument"


def test_libraries_take_everything_as_parameters() -> None:
    for name in LIBRARIES:
        text = lua(name)
        assert not re.search(r"\b(KEYS|ARGV)\b", text)
        assert text.startswith(f"local function {name}(") or f"\nlocal function {name}(" in text


def test_every_script_is_loaded_once_by_the_store() -> None:
    found = loaded_specs()

    assert sorted(found) == script_names()
    assert {name: owners for name, owners in found.items() if len(owners) != 1} == {}


def test_the_loader_prepends_the_locals_of_the_declared_names() -> None:
    spec = load("dlq_resolve")

    assert spec.keys == Names(("dlq", "dlq_entry", "resolved", "job", "audit", "view"))
    assert "local K = {dlq = KEYS[1], dlq_entry = KEYS[2], resolved = KEYS[3]" in spec.source
    assert "local A = {job_id = ARGV[1], now = ARGV[2]" in spec.source


@pytest.mark.parametrize(("text", "message"), [
    ("return 1\n", "no '-- KEYS:'"),
    ("-- KEYS: a\nreturn 1\n", "no '-- ARGV:'"),
    ("-- KEYS: a\n-- KEYS: b\n-- ARGV: (none)\nreturn 1\n", "declared twice"),
    ("-- KEYS: a, a\n-- ARGV: (none)\nreturn 1\n", "declared twice"),
    ("-- KEYS: a,\n-- ARGV: (none)\nreturn 1\n", "ends with a comma"),
    ("-- KEYS: a,\nreturn 1\n", "ends with a comma"),
    ("-- KEYS: Job\n-- ARGV: (none)\nreturn 1\n", "not a lower-case identifier"),
    ("-- KEYS:\n-- ARGV: (none)\nreturn 1\n", "not a lower-case identifier"),
    ("-- KEYS a\n-- ARGV: (none)\nreturn 1\n", "write '-- KEYS: name, name'"),
    ("-- KEYS: rest..., a\n-- ARGV: (none)\nreturn 1\n", "only the last"),
    ("-- KEYS: a\n-- ARGV: (none)\nreturn KEYS[1]\n", "the body names KEYS"),
    ("-- KEYS: a\n-- ARGV: (none)\nreturn #ARGV\n", "the body names ARGV"),
    ("-- KEYS: a\n-- ARGV: (none)\n-- the first of KEYS\nreturn 1\n", "outside a declaration"),
])
def test_a_header_that_breaks_the_rules_is_refused(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(message)):
        parse_header("x", text)


def test_a_declaration_may_continue_on_the_next_comment_line() -> None:
    keys, args, body = parse_header("x", "-- KEYS: a, b,\n--   c\n-- ARGV: n, rest...\nreturn 1\n")

    assert keys == Names(("a", "b", "c"))
    assert args == Names(("n",), "rest")
    assert body == "return 1\n"


def test_a_call_orders_the_names_as_declared_and_spreads_the_rest() -> None:
    names = Names(("a", "b"), "rest")

    assert names.order("s", "key", {"rest": ["x", "y"], "b": "B", "a": "A"}) == [
        "A", "B", "x", "y"]
    assert names.order("s", "key", {"a": "A", "b": "B", "rest": []}) == ["A", "B"]


@pytest.mark.parametrize(("given", "message"), [
    ({"a": 1}, "script claim: missing key 'b'"),
    ({"a": 1, "b": 2, "c": 3}, "script claim: unknown key 'c'"),
])
def test_a_call_with_a_missing_or_unknown_name_is_refused(given: dict[str, int],
                                                          message: str) -> None:
    with pytest.raises(ScriptNameError, match=re.escape(message)):
        Names(("a", "b")).order("claim", "key", given)


def test_a_rest_name_takes_a_list() -> None:
    with pytest.raises(ScriptNameError, match="takes a list"):
        Names((), "jobs").order("enqueue_mark", "key", {"jobs": "unsign:job:1"})


def test_a_registered_script_refuses_a_wrong_name_before_reaching_redis(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    script = load("hook_claim").register(redis_client)

    with pytest.raises(ScriptNameError, match="script hook_claim: missing argument 'identity'"):
        script(keys={"hook": keys.hook("x"), "hooks": keys.hooks},
               args={"lease_seconds": "1"})
    with pytest.raises(ScriptNameError, match="script hook_claim: unknown key 'job'"):
        script(keys={"hook": keys.hook("x"), "hooks": keys.hooks, "job": keys.job("1")},
               args={"lease_seconds": "1", "identity": "x"})
    assert redis_client.exists(keys.hook("x"), keys.hooks) == 0


def test_a_script_reads_its_names_and_its_rest_list_in_redis_and_in_a_pipeline(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    mark = load("enqueue_mark").register(redis_client)
    jobs = [keys.job("a"), keys.job("b")]

    assert mark(keys={"jobs": jobs}, args={"sent_at": "12.5"}) == 2
    pipe = redis_client.pipeline(transaction=False)
    mark(keys={"jobs": jobs[:1]}, args={"sent_at": "13.5"}, client=pipe)
    mark(keys={"jobs": []}, args={"sent_at": "14.5"}, client=pipe)

    assert pipe.execute() == [1, 0]
    assert [redis_client.hget(j, "sent_at") for j in jobs] == [b"13.5", b"12.5"]


def test_the_typed_requests_give_exactly_the_names_their_scripts_declare() -> None:
    keys = Keys("p:")
    settle = SettleRequest(
        job_id="j1", identity="k", campaign="", token="1", now=1.0, state=JobState.UNSIGNED,
        code="", reason="unsigned", attempts=1, reached=True, audit={}, retention_seconds=60,
        audit_maxlen=10, events_maxlen=10, hook_delay=2.0)
    finish = FinishRequest(
        job_id="j1", identity="", identity_masked="", campaign="", reference="r",
        params_json="{}", now=1.0, state=JobState.REJECTED, code="INVALID_JOB", reason="bad",
        audit={}, retention_seconds=60, audit_maxlen=10)

    for request, name in ((settle, "settle"), (finish, "finish_unclaimed")):
        declared_keys, declared_args, _ = parse_header(name, lua(name))
        assert set(request.script_keys(keys, 0)) == set(declared_keys.all)
        assert set(request.script_args()) == set(declared_args.all)


def test_every_script_is_called_by_its_store_owner_with_exactly_its_names(
        redis_client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # each call checks its names against the header (a wrong one raises): calling every owner
    # once checks every call site
    called: set[str] = set()
    real_call = Script.__call__

    def recording(self: Script, **kwargs: Any) -> Any:
        called.add(self.spec.name)
        return real_call(self, **kwargs)

    monkeypatch.setattr(Script, "__call__", recording)
    r, keys, now = redis_client, Keys(key_prefix), time.time()

    dedup = DedupStore(r, keys)
    claim = dedup.claim(job_id="a" * 32, identity="agr", identity_masked="customer_code:C1",
                        params_json='{"customer_code": "C1"}', campaign="", reference="r1",
                        lease_seconds=30, probe_after_seconds=60)
    assert claim is not None and claim.status == ClaimStatus.CLAIMED
    assert dedup.settle(SettleRequest(
        job_id="a" * 32, identity="agr", campaign="", token=claim.token, now=now,
        state=JobState.UNSIGNED, code="", reason="unsigned", attempts=1, reached=True,
        audit={}, retention_seconds=60, audit_maxlen=10, events_maxlen=10, hook_delay=0,
        hook={"idempotency_key": "unsign:agr"}), minute=1) == "ok"
    assert dedup.finish_unclaimed(FinishRequest(
        job_id="b" * 32, identity="", identity_masked="", campaign="", reference="r2",
        params_json="{}", now=now, state=JobState.REJECTED, code="INVALID_JOB", reason="bad",
        audit={}, retention_seconds=60, audit_maxlen=10), minute=1) == "ok"
    assert HookRecords(r, keys).claim("agr", lease_seconds=60).attempts == 1
    assert Breaker(r, keys, threshold=1, window_seconds=60).record_halt("X", "halt") == (
        BreakerStatus.OPENED)

    campaigns = CampaignStore(r, keys)
    assert campaigns.begin("c1", name="n", source="f.csv", total=1, rejected=0, rate=None) == (
        "new")
    records = JobRecords(r, keys)
    job = Job(job_id="c" * 32, params={"customer_code": "C2"}, campaign="c1")
    assert records.write_campaign_jobs("c1", [job], {}) == set()
    assert records.write_queued([Job(job_id="f" * 32, params={"customer_code": "C3"})]) == set()
    records.mark_sent([job.job_id], now=now)
    assert records.campaign_states("c1", [job.job_id])[1:] == ["queued", repr(now)]
    campaigns.transition("c1", CampaignState.PAUSED, CampaignState.RUNNING)
    r.zadd(keys.campaign_parked("c1"), {job.job_id: now - 1})
    assert CampaignControl(campaigns, lambda job_id, at: True).drain_parked("c1") == 1

    dlq = DeadLetters(r, keys)
    for job_id in ("d" * 32, "e" * 32):
        r.hset(keys.job(job_id), mapping={"job_id": job_id, "state": "dead_lettered"})
        r.hset(keys.dlq_entry(job_id), mapping={"job_id": job_id, "code": "X"})
        r.zadd(keys.dlq, {job_id: now})
    dlq.requeue("d" * 32, republish=lambda job_id, at: True, by="t", lease_seconds=30)
    dlq.resolve("e" * 32, note="handled by hand", by="t")

    r.xgroup_create(keys.inbox("crm"), "unsign-workers", id="0", mkstream=True)
    read = ProducerStreams(r, keys).read([ProducerSettings("crm")], consumer="w", count=1)
    assert read is not None and (read.accepted, read.refused) == ([], [])

    held = HeldMessages(r, keys, lease_seconds=30)
    held.record("m1", ["f" * 32])
    assert held.renew(["m1", "m2"]) == 1

    assert called == set(script_names())
