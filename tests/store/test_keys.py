"""The key layout: built in one place, documented in docs/redis-keys.md, no personal data."""

from __future__ import annotations

import re

import unsign_worker.store.keys as keys_module
from tests import paths
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.store.keys import Keys

DOC = paths.ROOT / "docs" / "redis-keys.md"


def documented_in_module() -> list[str]:
    return re.findall(r"^``(P [^`]+)``", keys_module.__doc__ or "", flags=re.M)


def test_every_key_of_the_module_docstring_is_in_the_docs_page():
    page = DOC.read_text(encoding="utf-8")
    names = documented_in_module()
    assert len(names) > 20
    missing = [name for name in names if f"`{name}`" not in page]
    assert missing == []


def test_every_builder_yields_a_documented_key_under_the_prefix():
    k = Keys("pfx:")
    built = [k.job("J"), k.ref("R"), k.agreement("I"), k.hook("I"), k.dlq_entry("J"),
             k.campaign("C"), k.campaign_counts("C"), k.campaign_jobs("C"),
             k.campaign_parked("C"), k.campaign_rate("C", 7), k.rate(5), k.leases, k.hooks,
             k.breaker, k.breaker_halts, k.breaker_probe, k.dlq, k.dlq_resolved, k.audit,
             k.events, k.counts, k.campaigns, k.inbox("crm"), k.intake, k.workers, k.sweeper,
             k.parked, k.producers, k.producers_rejected, k.producer_settings("crm"),
             k.producer_entry("crm", "1-0"), k.producer_ref("crm", "R"),
             k.producer_conflicts("crm", "R"), k.producer_job("crm", "J"),
             k.producer_refused("crm")]
    patterns = [re.compile("^pfx:" + re.sub(r"<[^>]+>", "[^:]+", re.escape(n[2:])
                                                .replace(r"\<", "<").replace(r"\>", ">")) + "$")
                for n in documented_in_module()]
    for key in built:
        assert key.startswith("pfx:")
        assert any(p.match(key) for p in patterns), key


def test_agreement_keys_carry_a_digest_not_personal_data():
    request = UnsignRequest(biz_type="10004", user_email="someone@example.com")
    identity = request.identity("2088101568338364")
    key = Keys("unsign:").agreement(identity.key)
    assert "someone" not in key and "example" not in key
    assert re.fullmatch(r"unsign:agreement:[0-9a-f]{32}", key)
