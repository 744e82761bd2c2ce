"""Campaign enqueueing, state, control and report against real Redis (no worker)."""

from __future__ import annotations

import base64
import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.campaign_plan import Plan, plan_file, run_jobs, start
from unsign_worker.console.campaigns import progress
from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer
from unsign_worker.producers.campaign.report import REPORT_COLUMNS, report_rows, write_csv
from unsign_worker.producers.producer import Producer
from unsign_worker.store.campaign_control import CampaignControl
from unsign_worker.store.campaigns import CampaignError, CampaignStore
from unsign_worker.store.deadletter import DeadLetters

HEADER = "customer_code,type_code,trans_account_out,biz_type,user_email,reference\n"


def broker_jobs(producer: Producer) -> list[str]:
    """Job ids of every message waiting in the broker queue, in order."""
    ids: list[str] = []
    for raw in producer.redis.lrange(producer.keys.queue(), 0, -1):
        _args, kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        jobs = kwargs.get("jobs") or [kwargs["job"]]
        ids += [j["job_id"] for j in jobs]
    return ids


def write_file(tmp_path: Path, rows: list[str], name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def customer_rows(n: int) -> list[str]:
    return [f"C{i:011d},,,,,ref-{i}" for i in range(1, n + 1)]


def set_state(producer: Producer, job_id: str, state: str) -> None:
    producer.redis.hset(producer.keys.job(job_id), "state", state)


def test_a_campaign_records_every_job_and_packs_them_into_few_messages(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(25)))
    result = start(plan, CampaignEnqueuer(producer, store, chunk_size=10, batch_size=4),
                   name="spring")
    assert (result.new, result.resent, sum(result.skipped.values())) == (25, 0, 0)
    assert sorted(broker_jobs(producer)) == sorted(j.job_id for j in plan.jobs)
    assert producer.redis.llen(producer.keys.queue()) == 8  # chunks 10, 10, 5: 3 + 3 + 2
    record = producer.redis.hgetall(producer.keys.job(plan.jobs[0].job_id))
    assert record[b"state"] == b"queued" and record[b"campaign"] == plan.campaign_id.encode()
    assert record[b"line"] == b"2" and b"sent_at" in record
    status = store.status(plan.campaign_id)
    assert status is not None
    assert (status.name, status.total, status.enqueued, status.enqueue_complete) == (
        "spring", 25, 25, True)


def test_running_the_same_file_again_skips_what_is_done_or_in_flight(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(6))
    plan = plan_file(path)
    start(plan, CampaignEnqueuer(producer, store))
    set_state(producer, plan.jobs[0].job_id, "unsigned")
    set_state(producer, plan.jobs[1].job_id, "in_flight")
    producer.redis.delete(producer.keys.queue())
    again = start(plan_file(path), CampaignEnqueuer(producer, store))
    assert (again.new, again.resent) == (0, 0)
    assert dict(again.skipped) == {"unsigned": 1, "in_flight": 1, "queued": 4}
    assert broker_jobs(producer) == []


def test_a_job_recorded_but_never_sent_is_sent_by_the_next_run(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    # Given a run that crashed between writing a record and sending its message
    plan = plan_file(write_file(tmp_path, customer_rows(3)))
    store.begin(plan.campaign_id, name="", source="c.csv", total=3, rejected=0, rate=None)
    producer.write_records(plan.jobs[:1])
    # When the file is run again
    result = start(plan, CampaignEnqueuer(producer, store))
    # Then the stranded job is sent, the others are new, nothing twice
    assert (result.new, result.resent) == (2, 1)
    assert sorted(broker_jobs(producer)) == sorted(j.job_id for j in plan.jobs)


def test_a_cancelled_campaign_cannot_be_run_again_under_the_same_id(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(2)))
    start(plan, CampaignEnqueuer(producer, store))
    store.transition(plan.campaign_id, "cancelled", "running")
    with pytest.raises(CampaignError, match="was cancelled"):
        start(plan, CampaignEnqueuer(producer, store))


def test_enqueueing_stops_at_the_next_chunk_once_the_campaign_is_cancelled(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(30)))

    def cancel_after_first(_result: Any, handled: int) -> None:
        if handled == 10:
            store.transition(plan.campaign_id, "cancelled", "running")

    result = start(plan, CampaignEnqueuer(producer, store, chunk_size=10),
                   on_chunk=cancel_after_first)
    assert (result.new, result.stopped) == (10, "cancelled")
    assert len(broker_jobs(producer)) == 10


def test_a_campaign_is_done_once_every_job_has_an_outcome(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(3)))
    start(plan, CampaignEnqueuer(producer, store))
    counts = producer.keys.campaign_counts(plan.campaign_id)
    producer.redis.hset(counts, mapping={"unsigned": 2})
    status = store.status(plan.campaign_id)
    assert status is not None and (status.state, status.finished) == ("running", False)
    producer.redis.hincrby(counts, "dead_lettered", 1)
    status = store.status(plan.campaign_id)
    assert status is not None
    assert (status.state, status.finished, status.failures) == ("done", True, 1)
    assert status.finished_at is not None


def test_a_requeue_after_the_run_leaves_the_runs_rate_and_is_counted_apart(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    # Given a campaign of 3 jobs that ran 10 s and ended with one dead letter
    plan = plan_file(write_file(tmp_path, customer_rows(3)))
    start(plan, CampaignEnqueuer(producer, store))
    k, r, cid = producer.keys, producer.redis, plan.campaign_id
    dead = plan.jobs[2].job_id
    r.hset(k.campaign(cid), "created_at", repr(time.time() - 10))
    r.hset(k.campaign_counts(cid), mapping={"unsigned": 2, "dead_lettered": 1})
    r.hset(k.job(dead), mapping={"state": "dead_lettered", "finished_at": repr(time.time())})
    r.zadd(k.dlq, {dead: time.time()})
    r.hset(k.dlq_entry(dead), mapping={"job_id": dead, "campaign": cid, "code": "X"})
    done = store.status(cid)
    assert done is not None and done.state == "done" and done.run_finished_at is not None
    run_rate = done.run_rate()
    assert 0.25 < run_rate <= 0.31  # 3 jobs in about 10 s
    # When its dead letter is requeued (the campaign runs again) and looked at a minute later
    DeadLetters(r, k).requeue(dead, republish=lambda j, n: True, by="ops", lease_seconds=60)
    again = store.status(cid)
    assert again is not None and again.state == "running" and again.finished_at is None
    # Then the run's rate is the same and the requeue is shown apart
    assert again.run_rate(time.time() + 60) == run_rate
    assert progress(again, time.time() + 60)["per_second"] == round(run_rate, 2)
    assert (again.requeued_after_run, again.as_dict()["run_done"]) == (1, 3)
    # And once the requeued job ends, the run keeps its end; the campaign gets a new finished_at
    r.hincrby(k.campaign_counts(cid), "unsigned", 1)
    final = store.status(cid)
    assert final is not None and final.state == "done"
    assert final.run_finished_at == done.run_finished_at and final.run_rate() == run_rate


def test_pause_and_resume_move_between_states_and_refuse_the_wrong_ones(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(1)))
    start(plan, CampaignEnqueuer(producer, store))
    control = CampaignControl(store, lambda job_id, now: True)
    with pytest.raises(CampaignError, match="must be paused to become running"):
        control.resume(plan.campaign_id)
    control.pause(plan.campaign_id)
    with pytest.raises(CampaignError, match="is paused"):
        control.pause(plan.campaign_id)
    with pytest.raises(CampaignError, match="no campaign nope"):
        control.pause("nope")


def test_resume_sends_every_parked_job_again_and_keeps_ones_parked_meanwhile(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(3)))
    start(plan, CampaignEnqueuer(producer, store))
    parked = producer.keys.campaign_parked(plan.campaign_id)
    producer.redis.zadd(parked, {j.job_id: time.time() for j in plan.jobs[:2]})
    sent: list[str] = []

    def republish(job_id: str, now: float) -> bool:
        sent.append(job_id)
        if job_id == plan.jobs[1].job_id:  # a worker parks it again before we tidy up
            producer.redis.zadd(parked, {job_id: now + 5})
        return True

    control = CampaignControl(store, republish)
    control.pause(plan.campaign_id)
    assert control.resume(plan.campaign_id) >= 2
    assert set(sent) >= {plan.jobs[0].job_id, plan.jobs[1].job_id}
    assert producer.redis.zscore(parked, plan.jobs[0].job_id) is None


def test_cancel_sends_parked_and_never_sent_jobs_so_workers_close_them(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = plan_file(write_file(tmp_path, customer_rows(4)))
    start(plan, CampaignEnqueuer(producer, store))
    producer.redis.hdel(producer.keys.job(plan.jobs[0].job_id), "sent_at")
    producer.redis.zadd(producer.keys.campaign_parked(plan.campaign_id),
                        {plan.jobs[1].job_id: time.time()})
    sent: list[str] = []
    control = CampaignControl(store, lambda job_id, now: sent.append(job_id) is None)
    assert control.cancel(plan.campaign_id) == 2
    assert sorted(sent) == sorted([plan.jobs[0].job_id, plan.jobs[1].job_id])
    status = store.status(plan.campaign_id)
    assert status is not None and status.state == "cancelled"


def report_plan(tmp_path: Path, producer: Producer, store: CampaignStore) -> Plan:
    rows = ["C00000000001,,,,,r1",
            ",BUSI01,20880020070189160157,,,bad-account",
            ",BUSI01,20880020070189160156,,,=cmd|' /C calc'!A0",
            ",,,10004,li.wei@example.com,r4"]
    plan = plan_file(write_file(tmp_path, rows))
    start(plan, CampaignEnqueuer(producer, store))
    key = producer.keys.job(plan.jobs[0].job_id)
    producer.redis.hset(key, mapping={"state": "unsigned", "attempts": 1,
                                      "finished_at": "1764140000.5"})
    return plan


def test_the_report_has_one_row_per_input_row_in_file_order_masked(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = report_plan(tmp_path, producer, store)
    rows = list(report_rows(store, plan.campaign_id))
    assert [(r["line"], r["reference"], r["outcome"]) for r in rows] == [
        (2, "r1", "unsigned"), (3, "bad-account", "invalid"),
        (4, "=cmd|' /C calc'!A0", "queued"), (5, "r4", "queued")]
    assert rows[0]["identity"] == "customer_code:C00000000001"
    assert rows[0]["finished_at"] == "2025-11-26T06:53:20Z"
    assert rows[1]["code"] == "trans_account_out:format"
    assert rows[2]["identity"] == "type_code:BUSI01/2088********0156"
    assert rows[3]["identity"] == "biz_type:10004/l***@example.com"
    shown = list(report_rows(store, plan.campaign_id, show_personal_data=True))
    assert shown[3]["identity"] == "biz_type:10004/li.wei@example.com"


def test_the_report_file_neutralises_formulas(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = report_plan(tmp_path, producer, store)
    out = tmp_path / "report.csv"
    assert write_csv(out, REPORT_COLUMNS, report_rows(store, plan.campaign_id)) == 4
    with open(out, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert table[2]["reference"] == "'=cmd|' /C calc'!A0"


def test_a_job_whose_record_expired_shows_as_expired_in_the_report(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    plan = report_plan(tmp_path, producer, store)
    producer.redis.delete(producer.keys.job(plan.jobs[1].job_id))
    rows = list(report_rows(store, plan.campaign_id))
    assert sorted(r["outcome"] for r in rows) == ["expired", "invalid", "queued", "unsigned"]
    known = [r["line"] for r in rows if r["line"] != ""]
    assert known == sorted(known) == [2, 3, 5]


def test_an_existing_record_is_never_overwritten_even_for_a_new_campaign(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    # Given a job record that exists although its campaign's meta does not (deleted by hand)
    plan = plan_file(write_file(tmp_path, customer_rows(3)))
    producer.write_records(plan.jobs[:1])
    set_state(producer, plan.jobs[0].job_id, "unsigned")
    # When the campaign is run as new
    result = start(plan, CampaignEnqueuer(producer, store))
    # Then that job keeps its outcome and is not sent
    assert (result.new, dict(result.skipped)) == (2, {"recorded_meanwhile": 1})
    assert producer.redis.hget(producer.keys.job(plan.jobs[0].job_id), "state") == b"unsigned"
    assert plan.jobs[0].job_id not in broker_jobs(producer)


def test_a_chunks_messages_go_to_the_broker_together_and_a_failed_pipeline_is_waited_out(
        producer: Producer, store: CampaignStore, monkeypatch: pytest.MonkeyPatch) -> None:
    kombu_redis = pytest.importorskip("kombu.transport.redis")
    if not hasattr(kombu_redis, "PublishBatch"):
        pytest.skip("kombu before 5.7 publishes one message at a time")
    import redis
    from kombu.exceptions import BatchPublishError

    from unsign_worker.store.job import Job
    from unsign_worker.store.outage import Outage

    flushes: list[int] = []
    plain_flush = kombu_redis.PublishBatch.flush

    def flush_failing_once(batch: Any) -> None:
        flushes.append(batch._buffered)
        if len(flushes) == 2:  # the second chunk's pipeline: the connection drops
            batch.discard()
            try:
                raise redis.ConnectionError("Connection reset by peer")
            except redis.ConnectionError as exc:
                raise BatchPublishError("Redis publish batch failed") from exc
        plain_flush(batch)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", flush_failing_once)
    store.begin("c-1", name="", source="f.csv", total=12, rejected=0, rate=None)
    jobs = [Job(job_id=f"{i:032x}", params={"customer_code": f"C{i:05d}"}, campaign="c-1")
            for i in range(12)]
    said: list[str] = []
    enqueuer = CampaignEnqueuer(producer, store, chunk_size=6, batch_size=2)
    enqueuer.outage = Outage("Redis", said.append, first=0.01)
    result = run_jobs(enqueuer, "c-1", jobs, fresh=True)
    # three messages of two jobs and their three task-sent events per pipeline; the failed
    # chunk is looked up again and resent whole
    assert flushes == [6, 6, 6]
    assert (result.new, result.resent) == (6, 6)
    assert sum("unavailable since" in s for s in said) == 1
    assert sorted(broker_jobs(producer)) == sorted(j.job_id for j in jobs)
    assert all(producer.redis.hget(producer.keys.job(j.job_id), "sent_at") for j in jobs)
