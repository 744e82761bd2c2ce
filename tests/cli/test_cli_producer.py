"""``unsign-worker producer add|list|remove`` and ``unsign-worker acl --producer``, in-process
against the test Redis, under the test's own key prefix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis

from unsign_worker.cli.main import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from unsign_worker.store.keys import Keys

KEY = "0123456789abcdefghijklmnopqrstuv"
PARTNER = "2088101568338364"
#: The commands a producer's Redis user may run, as docs/security.md lists them.
PRODUCER_COMMANDS = ("-@all +ping +hello +client|setname +select +multi +exec +discard +xadd "
                     "+xlen +xrange +xrevrange +get +exists +hget +hmget +hgetall +smembers "
                     "+sismember +scard")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str,
        key_prefix: str) -> pytest.MonkeyPatch:
    """A clean configuration: valid MD5 settings, the test Redis and key prefix, no .env."""
    for name in list(os.environ):
        if name.startswith(("ALIPAY_", "UNSIGN_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIPAY_PARTNER", PARTNER)
    monkeypatch.setenv("ALIPAY_KEY", KEY)
    monkeypatch.setenv("UNSIGN_REDIS_URL", redis_url)
    monkeypatch.setenv("UNSIGN_KEY_PREFIX", key_prefix)
    return monkeypatch


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err, "a secret was printed"
    return code, out, err


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, _ = run(capsys, "producer", "list", "--json")
    assert code == EXIT_OK
    return json.loads(out)["producers"]  # type: ignore[no-any-return]


# --- producer add / list / remove -----------------------------------------------------------------

def test_a_producer_added_is_listed_then_removed(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keys: Keys,
        redis_client: redis.Redis) -> None:
    code, out, _ = run(capsys, "producer", "add", "crm", "--max-pending", "50",
                       "--max-entry-bytes", "4096")
    assert code == EXIT_OK
    assert keys.inbox("crm") in out and "50" in out and "4096" in out
    assert redis_client.hgetall(keys.producer_settings("crm")) == {
        b"max_pending": b"50", b"max_entry_bytes": b"4096"}
    assert [p["name"] for p in listed(capsys)] == ["crm"]

    code, out, _ = run(capsys, "producer", "remove", "crm")
    assert (code, out.strip()) == (EXIT_OK, "producer crm removed")
    assert listed(capsys) == []
    code, _, err = run(capsys, "producer", "remove", "crm")
    assert code == EXIT_ERROR and "no producer 'crm'" in err


def test_producer_list_json_gives_limits_entries_waiting_and_refused_by_reason(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keys: Keys,
        redis_client: redis.Redis) -> None:
    assert run(capsys, "producer", "add", "crm", "--max-pending", "50")[0] == EXIT_OK
    assert run(capsys, "producer", "add", "billing")[0] == EXIT_OK
    for _ in range(2):
        redis_client.xadd(keys.inbox("crm"), {"customer_code": "C00000000001"})
    redis_client.hset(keys.producers_rejected, mapping={"crm:max_size": 3, "crm:max_pending": 1,
                                                        "billing:invalid_job": 2})
    rows = listed(capsys)
    assert [row["name"] for row in rows] == ["billing", "crm"]
    for row in rows:
        assert set(row) == {"name", "max_pending", "max_entry_bytes", "added_at", "waiting",
                            "rejected"}
        assert isinstance(row["added_at"], float) and row["added_at"] > 0
    billing, crm = rows
    assert (crm["max_pending"], crm["max_entry_bytes"], crm["waiting"], crm["rejected"]) == (
        50, 16_384, 2, {"max_size": 3, "max_pending": 1})
    assert (billing["max_pending"], billing["waiting"], billing["rejected"]) == (
        10_000, 0, {"invalid_job": 2})


def test_producer_list_as_a_table(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                  keys: Keys, redis_client: redis.Redis) -> None:
    code, out, _ = run(capsys, "producer", "list")
    assert code == EXIT_OK and "no producer" in out
    run(capsys, "producer", "add", "crm")
    redis_client.hset(keys.producers_rejected, "crm:max_size", 3)
    code, out, _ = run(capsys, "producer", "list")
    assert code == EXIT_OK
    assert "crm" in out and "max_size 3" in out and "16384" in out


@pytest.mark.parametrize("name", ["CRM", "-crm", "crm:x", "crm*", "a" * 33, "crm app"])
def test_producer_add_refuses_a_bad_name_naming_the_rule(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keys: Keys,
        redis_client: redis.Redis, name: str) -> None:
    code, out, err = run(capsys, "producer", "add", "--", name)
    assert code == EXIT_USAGE
    assert "NAME:" in err and "lower-case letters, digits, '_' or '-'" in err
    assert not redis_client.exists(keys.producers)


@pytest.mark.parametrize(("option", "value"), [
    ("--max-pending", "0"), ("--max-entry-bytes", "255"), ("--max-entry-bytes", "1048577"),
    ("--max-pending", "many"),
])
def test_producer_add_refuses_a_bad_limit_naming_the_setting(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keys: Keys,
        redis_client: redis.Redis, option: str, value: str) -> None:
    code, _, err = run(capsys, "producer", "add", "crm", option, value)
    assert code == EXIT_USAGE and option in err
    assert not redis_client.exists(keys.producers)


def test_producer_add_again_changes_the_limits(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "producer", "add", "crm")
    first = listed(capsys)[0]
    assert run(capsys, "producer", "add", "crm", "--max-pending", "7")[0] == EXIT_OK
    again = listed(capsys)[0]
    assert (again["max_pending"], again["added_at"]) == (7, first["added_at"])


# --- acl --producer -------------------------------------------------------------------------------

def test_acl_prints_one_user_per_producer_besides_the_worker_and_operator(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "acl", "--prefix", "app:", "--producer", "crm",
                       "--producer", "billing", "--producer", "crm")
    assert code == EXIT_OK
    users = [line for line in out.splitlines() if line.startswith("user ")]
    assert [line.split()[1] for line in users] == [
        "unsign-worker", "unsign-operator", "unsign-producer-crm", "unsign-producer-billing"]
    assert users[2] == ("user unsign-producer-crm on resetkeys resetchannels "
                        f"{PRODUCER_COMMANDS} ~app:inbox:crm %R~app:producer:crm:*")
    assert users[3] == ("user unsign-producer-billing on resetkeys resetchannels "
                        f"{PRODUCER_COMMANDS} ~app:inbox:billing %R~app:producer:billing:*")
    for line in users[:2]:
        assert "~app:*" in line and "-@dangerous" in line
    assert "unsign-producer " not in out  # no user shared by every producer
    assert all(line.startswith(("user ", "#")) for line in out.splitlines())


def test_acl_without_a_producer_says_how_to_print_one_and_takes_the_configured_prefix(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key_prefix: str) -> None:
    code, out, _ = run(capsys, "acl")
    assert code == EXIT_OK
    assert [line.split()[1] for line in out.splitlines() if line.startswith("user ")] == [
        "unsign-worker", "unsign-operator"]
    assert "acl --producer NAME" in out and f"~{key_prefix}*" in out
    code, out, _ = run(capsys, "acl", "--producer", "crm", "--user-prefix", "shop-")
    assert "user shop-producer-crm on " in out
    assert f"~{key_prefix}inbox:crm %R~{key_prefix}producer:crm:*" in out


@pytest.mark.parametrize("name", ["CRM", "crm*", "crm app", "a" * 33])
def test_acl_refuses_a_bad_producer_name_naming_the_rule(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, "acl", "--producer", name)
    assert code == EXIT_USAGE and out == ""
    assert "lower-case letters, digits, '_' or '-'" in err


# --- entries stranded in the shared stream of earlier versions -----------------------------------

def test_entries_left_in_the_shared_stream_are_reported_then_moved_to_a_producers_stream(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], redis_client: redis.Redis,
        key_prefix: str) -> None:
    # Given three entries an earlier version's producers left in the shared stream
    shared = f"{key_prefix}inbox"
    for n in range(3):
        redis_client.xadd(shared, {"job": json.dumps({"customer_code": f"C{n:011d}"})})
    # Then check-config says so, and names the way out
    code, out, _ = run(capsys, "check-config", "--json")
    producers = [c for c in json.loads(out)["checks"] if c["name"] == "producers"]
    assert [c["status"] for c in producers] == ["ok", "warning"]
    assert "none registered" in producers[0]["message"]
    assert "3 entries wait in" in producers[1]["message"]
    assert "producer adopt-legacy NAME" in producers[1]["message"]
    # A producer must exist to adopt them
    code, _, err = run(capsys, "producer", "adopt-legacy", "crm")
    assert code == EXIT_ERROR and "no producer 'crm'" in err
    assert redis_client.xlen(shared) == 3
    # When the operator adopts them for a producer
    assert run(capsys, "producer", "add", "crm")[0] == EXIT_OK
    code, out, _ = run(capsys, "producer", "adopt-legacy", "crm")
    # Then they all moved, fields unchanged, and nothing is left behind
    assert code == EXIT_OK and out.startswith("3 entries moved")
    moved = redis_client.xrange(f"{key_prefix}inbox:crm")
    assert [json.loads(f[b"job"])["customer_code"] for _, f in moved] == [
        "C00000000000", "C00000000001", "C00000000002"]
    assert redis_client.xlen(shared) == 0
    code, out, _ = run(capsys, "check-config", "--json")
    producers = [c for c in json.loads(out)["checks"] if c["name"] == "producers"]
    assert [(c["status"], c["message"]) for c in producers] == [("ok", "1 registered: crm")]
