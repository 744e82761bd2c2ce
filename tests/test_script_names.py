"""Lua keys and arguments by name: every script declares its names once in its header, its
body reads them by name, and a call must pass exactly the declared names."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
import redis

import unsign_worker.store
from unsign_worker.store.keys import Keys
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.scripts import (
    LIBRARIES,
    LUA_DIR,
    Names,
    ScriptError,
    ScriptNameError,
    ScriptSpec,
    load,
    lua,
    parse_header,
)
from unsign_worker.store.states import JobState


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

    assert spec.keys == Names(("dlq", "dlq_entry", "resolved", "job", "audit"))
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


def test_a_registered_script_refuses_a_wrong_name_before_reaching_redis(redis_client) -> None:
    script = load("hook_claim").register(redis_client)

    with pytest.raises(ScriptNameError, match="script hook_claim: missing argument 'identity'"):
        script(keys={"hook": "t:hook:x", "hooks": "t:hooks"},
               args={"now": "1", "lease_until": "2"})
    with pytest.raises(ScriptNameError, match="script hook_claim: unknown key 'job'"):
        script(keys={"hook": "t:hook:x", "hooks": "t:hooks", "job": "t:job:1"},
               args={"now": "1", "lease_until": "2", "identity": "x"})


def test_a_script_reads_its_names_and_its_rest_list_in_redis_and_in_a_pipeline(
        redis_client: redis.Redis) -> None:
    keys = Keys("names-test:")
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
        audit_maxlen=10, events_maxlen=10, hook_due=2.0)
    finish = FinishRequest(
        job_id="j1", identity="", identity_masked="", campaign="", reference="r",
        params_json="{}", now=1.0, state=JobState.REJECTED, code="INVALID_JOB", reason="bad",
        audit={}, retention_seconds=60, audit_maxlen=10)

    for request, name in ((settle, "settle"), (finish, "finish_unclaimed")):
        declared_keys, declared_args, _ = parse_header(name, lua(name))
        assert set(request.script_keys(keys, 0)) == set(declared_keys.all)
        assert set(request.script_args()) == set(declared_args.all)
