"""The masking applied to what monitoring shows: events, inspect replies, Flower pages, logs."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.metric_samples import samples_of
from unsign_worker.cli.flower_cmds import check_exposure, parse_basic_auth
from unsign_worker.ops.exporter import UnsignCollector
from unsign_worker.store.job import masked_repr
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.worker.monitoring import (
    MaskingFilter,
    format_task,
    mask_text,
    sanitize_inspect,
    sanitize_task_event,
)

EMAIL = "maoamo@alipay.com"
ACCOUNT = "20880020070189160156"


def test_mask_text_masks_emails_accounts_and_secret_values() -> None:
    raw = (f"{{'user_email': '{EMAIL}', 'trans_account_out': '{ACCOUNT}', "
           "'sign': 'e10adc3949ba59abbe56e057f20f883e'}")
    shown = mask_text(raw)
    assert "m***@alipay.com" in shown and "2088********0156" in shown
    assert EMAIL not in shown and ACCOUNT not in shown and "e10adc39" not in shown


def test_mask_text_masks_query_string_signatures_but_not_the_service_name() -> None:
    shown = mask_text("service=customer_unsign&sign=abcdef0123&sign_type=MD5&key=k1")
    assert "service=customer_unsign" in shown and "sign_type=MD5" in shown
    assert "abcdef0123" not in shown and "k1" not in shown


def test_mask_text_hides_url_passwords() -> None:
    assert mask_text("redis://:hunter22@redis:6379/0") == "redis://:********@redis:6379/0"


def test_mask_text_leaves_job_ids_and_masked_values_alone() -> None:
    text = "job 0123456789abcdef0123456789abcdef: m***@alipay.com 2088********0156"
    assert mask_text(text) == text


def test_masked_job_repr_is_already_safe() -> None:
    shown = masked_repr({"job_id": "j1", "params": {"user_email": EMAIL,
                                                     "trans_account_out": ACCOUNT}})
    assert mask_text(shown) == shown


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200))
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@given(st.from_regex(r"[a-z]{1,10}@[a-z]{1,8}\.com", fullmatch=True))
def test_mask_text_never_lets_an_email_through(email: str) -> None:
    assert email not in mask_text(f"kwargs: {{'user_email': '{email}'}}")


def test_task_events_are_masked_but_other_fields_kept() -> None:
    event = {"type": "task-received", "uuid": "u1", "name": "unsign_worker.unsign",
             "args": "()", "kwargs": f"{{'job': {{'params': {{'user_email': '{EMAIL}'}}}}}}",
             "hostname": "w1"}
    out = sanitize_task_event(event)
    assert EMAIL not in out["kwargs"] and out["uuid"] == "u1" and out["name"] == event["name"]


def test_reserved_and_scheduled_requests_lose_their_raw_arguments() -> None:
    raw = {"id": "t1", "args": [], "kwargs": {"job": {"params": {"trans_account_out": ACCOUNT}}}}
    reserved = sanitize_inspect("reserved", [raw])
    scheduled = sanitize_inspect("scheduled", [{"eta": None, "request": raw}])
    assert ACCOUNT not in repr(reserved) and ACCOUNT not in repr(scheduled)
    assert "2088********0156" in reserved[0]["kwargs"]


def test_worker_conf_and_stats_never_show_the_broker_password() -> None:
    conf = sanitize_inspect("conf", {"broker_url": "redis://:s3cretpass@redis:6379/0",
                                     "broker_transport_options": {"global_keyprefix": "u:"},
                                     "task_serializer": "json"})
    stats = sanitize_inspect("stats", {"broker": {"hostname": "redis", "password": "s3cretpass"}})
    assert "s3cretpass" not in repr(conf) and "s3cretpass" not in repr(stats)
    assert conf["task_serializer"] == "json"


def test_format_task_masks_what_a_flower_page_shows() -> None:
    task = SimpleNamespace(args="()", kwargs=f"{{'user_email': '{EMAIL}'}}", result=None,
                           exception=None, traceback=None)
    assert EMAIL not in format_task(task).kwargs


def test_the_log_filter_masks_messages_and_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "unsigning %s", (EMAIL,), None)
    assert MaskingFilter().filter(record)
    assert EMAIL not in record.getMessage()


def test_basic_auth_needs_user_and_a_long_enough_password() -> None:
    assert parse_basic_auth("ops:long-password,viewer:another-one") == (
        "ops:long-password", "viewer:another-one")
    for bad, rule in (("ops", "user:password"), (":long-password", "user:password"),
                      ("ops:short", "at least 8")):
        try:
            parse_basic_auth(bad)
        except ValueError as exc:
            assert rule in str(exc) and "short" not in str(exc).replace("ops", "")
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_exposure_rules_allow_no_auth_only_on_loopback() -> None:
    check_exposure("127.0.0.1", (), no_auth=True)
    check_exposure("0.0.0.0", ("ops:long-password",), no_auth=False)
    for address, creds, no_auth in (("0.0.0.0", (), True), ("127.0.0.1", (), False)):
        try:
            check_exposure(address, creds, no_auth)
        except ValueError:
            continue
        raise AssertionError(f"{address} {creds} {no_auth} accepted")



def test_the_exporter_reports_the_breaker_the_dead_letters_and_the_queues(
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given an open breaker, two dead letters and a queued message under the test's prefix
    keys = Keys(key_prefix)
    redis_client.hset(keys.breaker, mapping={"state": "open", "code": "ILLEGAL_SIGN"})
    for job_id, code in (("j1", "TOO_MUCH_TYPE_CODE"), ("j2", "TOO_MUCH_TYPE_CODE")):
        redis_client.zadd(keys.dlq, {job_id: 1.0})
        redis_client.hset(keys.dlq_entry(job_id), mapping={"code": code})
    redis_client.rpush(keys.queue(), "message")
    redis_client.hset(keys.counts, mapping={"unsigned": 5, "dead_lettered": 2})
    # When Prometheus scrapes
    samples = samples_of(UnsignCollector(redis_client, keys))
    # Then every series says so
    assert samples["unsign_up"] == 1
    assert samples['unsign_breaker_open{code="ILLEGAL_SIGN"}'] == 1
    assert samples["unsign_dlq_size"] == 2
    assert samples['unsign_dlq_jobs{code="TOO_MUCH_TYPE_CODE"}'] == 2
    assert samples['unsign_queue_depth{queue="unsign"}'] == 1
    assert samples['unsign_jobs_total{outcome="unsigned"}'] == 5


def test_the_exporter_says_down_when_redis_cannot_be_read() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))  # refused at once, not retried
    samples = samples_of(UnsignCollector(client, Keys("unsign-test:none:")))
    assert samples == {"unsign_up": 0}


def test_the_exporter_reports_each_producers_backlog_cap_and_refusals(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    ProducerRegistry(redis_client, keys).add("crm", max_pending=500)
    ProducerRegistry(redis_client, keys).add("billing")
    for n in range(3):
        redis_client.xadd(f"{key_prefix}inbox:crm", {"customer_code": f"C{n:011d}"})
    redis_client.hset(f"{key_prefix}producers:rejected",
                      mapping={"crm:max_size": 4, "billing:invalid_job": 1})

    samples = samples_of(UnsignCollector(redis_client, keys))

    assert samples['unsign_producer_waiting{producer="crm"}'] == 3
    assert samples['unsign_producer_waiting{producer="billing"}'] == 0
    assert samples['unsign_producer_max_pending{producer="crm"}'] == 500
    assert samples['unsign_producer_max_pending{producer="billing"}'] == 10_000
    assert samples['unsign_producer_rejected_total{producer="crm",reason="max_size"}'] == 4
    assert samples['unsign_producer_rejected_total{producer="billing",reason="invalid_job"}'] == 1
