"""The registry of producers (``P producers``, ``P producer:<name>:settings``): add, list,
remove, limits and names checked naming their rule, entries waiting and refused. Real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import (
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_PENDING,
    ProducerError,
    ProducerRegistry,
    ProducerSettings,
)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def registry(redis_client: redis.Redis, keys: Keys) -> ProducerRegistry:
    return ProducerRegistry(redis_client, keys)


def settings_key(r: redis.Redis, keys: Keys, name: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.producer_settings(name)).items()}


def test_an_added_producer_is_listed_with_its_limits_readable_by_it_too(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys) -> None:
    added = registry.add("crm", max_pending=50, max_entry_bytes=4_096)
    registry.add("billing")
    assert (added.name, added.max_pending, added.max_entry_bytes) == ("crm", 50, 4_096)
    assert added.added_at > 0
    listed = registry.all()
    assert list(listed) == ["billing", "crm"]
    assert listed["crm"] == added
    assert (listed["billing"].max_pending, listed["billing"].max_entry_bytes) == (
        DEFAULT_MAX_PENDING, DEFAULT_MAX_ENTRY_BYTES)
    assert settings_key(redis_client, keys, "crm") == {"max_pending": "50",
                                                       "max_entry_bytes": "4096"}
    assert registry.get("crm") == added and registry.get("nobody") is None


def test_adding_a_producer_again_changes_its_limits_and_keeps_when_it_was_added(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys) -> None:
    first = registry.add("crm")
    again = registry.add("crm", max_pending=7, max_entry_bytes=512)
    assert again.added_at == first.added_at
    assert registry.all()["crm"] == again
    assert settings_key(redis_client, keys, "crm") == {"max_pending": "7",
                                                       "max_entry_bytes": "512"}


def test_a_removed_producer_is_no_longer_listed_and_its_entries_and_jobs_stay(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys) -> None:
    registry.add("crm")
    redis_client.xadd(keys.inbox("crm"), {"customer_code": "C00000000001"})
    redis_client.set(keys.producer_entry("crm", "1-0"), "a" * 32)
    assert registry.remove("crm") is True
    assert registry.all() == {} and registry.get("crm") is None
    assert settings_key(redis_client, keys, "crm") == {}
    assert redis_client.xlen(keys.inbox("crm")) == 1
    assert redis_client.get(keys.producer_entry("crm", "1-0")) == b"a" * 32
    assert registry.remove("crm") is False


@pytest.mark.parametrize(("limits", "setting", "rule"), [
    ({"max_pending": 0}, "max_pending", "must be 1 or more"),
    ({"max_pending": -5}, "max_pending", "must be 1 or more"),
    ({"max_entry_bytes": 255}, "max_entry_bytes", "must be between 256 and 16384"),
    ({"max_entry_bytes": 16_385}, "max_entry_bytes", "must be between 256 and 16384"),
])
def test_a_limit_that_breaks_its_rule_is_refused_naming_the_setting(
        registry: ProducerRegistry, limits: dict[str, int], setting: str, rule: str) -> None:
    with pytest.raises(ProducerError) as caught:
        registry.add("crm", **limits)
    assert str(caught.value).startswith(f"{setting}: ") and rule in str(caught.value)
    assert registry.all() == {}


@pytest.mark.parametrize("limits", [
    {"max_pending": 1, "max_entry_bytes": 256},
    {"max_pending": 1_000_000, "max_entry_bytes": 16_384},
])
def test_the_limits_at_their_bounds_are_accepted(registry: ProducerRegistry,
                                                 limits: dict[str, int]) -> None:
    assert registry.add("crm", **limits) == ProducerSettings(
        "crm", added_at=registry.all()["crm"].added_at, **limits)


@pytest.mark.parametrize("name", [
    "", "CRM", "-crm", "_crm", "crm app", "crm:x", "crm*", "crm?", "crm[1]", "crm{x}", "a" * 33,
    "crm\n", "crmé", "crm/x", "-",
])
def test_a_name_that_breaks_the_rule_is_refused_naming_the_rule(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys, name: str) -> None:
    with pytest.raises(ProducerError) as caught:
        registry.add(name)
    message = str(caught.value)
    assert "must be 1 to 32 lower-case letters, digits, '_' or '-'" in message
    assert "starting with a letter or digit" in message
    assert registry.all() == {} and not redis_client.exists(keys.producers)


@pytest.mark.parametrize("name", ["crm", "0", "a" * 32, "billing_eu-2", "9lives"])
def test_a_name_that_keeps_the_rule_is_accepted(registry: ProducerRegistry, name: str) -> None:
    registry.add(name)
    assert list(registry.all()) == [name]


def test_a_damaged_entry_gets_the_defaults_and_a_bad_name_written_by_hand_is_skipped(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.hset(keys.producers, mapping={
        "crm": "{not json", "billing": json.dumps({"max_pending": "x"}),
        "Bad Name": json.dumps({"max_pending": 1, "max_entry_bytes": 256}),
        "ops": json.dumps({"max_pending": 3, "max_entry_bytes": 300})})
    listed = registry.all()
    assert list(listed) == ["billing", "crm", "ops"]
    assert listed["crm"] == ProducerSettings("crm") == ProducerSettings(
        "crm", DEFAULT_MAX_PENDING, DEFAULT_MAX_ENTRY_BYTES)
    assert listed["billing"] == ProducerSettings("billing")
    assert (listed["ops"].max_pending, listed["ops"].max_entry_bytes) == (3, 300)


def test_waiting_counts_each_streams_entries_and_rejected_each_reason(
        registry: ProducerRegistry, redis_client: redis.Redis, keys: Keys) -> None:
    registry.add("crm")
    registry.add("billing")
    for _ in range(3):
        redis_client.xadd(keys.inbox("crm"), {"customer_code": "C00000000001"})
    assert registry.waiting(["crm", "billing"]) == {"crm": 3, "billing": 0}
    assert registry.rejected() == {}
    # as the read script and the rejections count them: "<producer>:<reason>" -> count
    redis_client.hset(f"{keys.prefix}producers:rejected",
                      mapping={"crm:max_size": 2, "billing:max_pending": 1})
    assert registry.rejected() == {("crm", "max_size"): 2, ("billing", "max_pending"): 1}
