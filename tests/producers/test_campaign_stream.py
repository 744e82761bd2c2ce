"""A campaign run streamed from the verdicts of its read (chunk by chunk) against real Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.plugins.campaign_plan import plan_file
from tests.producers.test_campaign_store import broker_jobs, customer_rows, write_file
from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer, EnqueueResult
from unsign_worker.producers.campaign.plan import scan_file
from unsign_worker.producers.campaign.stream import FileChangedError, start_file
from unsign_worker.producers.producer import Producer
from unsign_worker.store.campaign_control import CampaignControl
from unsign_worker.store.campaigns import CampaignStore


def job_list(store: CampaignStore, campaign_id: str) -> list[str]:
    return [j for ids in store.job_ids(campaign_id) for j in ids]


def with_bad_rows(n: int) -> list[str]:
    rows = customer_rows(n)
    rows[3] = "C1!,,,,,bad-a"
    rows[8] = "C2!,,,,,bad-b"
    return rows


def test_a_streamed_run_records_what_a_planned_run_records(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, with_bad_rows(25))
    plan = plan_file(path)
    handled: list[int] = []
    result = start_file(scan_file(path, keep=True),
                        CampaignEnqueuer(producer, store, chunk_size=4, batch_size=3),
                        name="spring", on_chunk=lambda _r, n: handled.append(n))
    assert (result.new, result.resent, result.stopped) == (23, 0, "")
    assert handled == [4, 8, 12, 16, 20, 23]
    assert job_list(store, plan.campaign_id) == [j.job_id for j in plan.jobs]
    assert sorted(broker_jobs(producer)) == sorted(j.job_id for j in plan.jobs)
    assert [r["line"] for r in store.rejects(plan.campaign_id)] == [5, 10]
    record = producer.redis.hgetall(producer.keys.job(plan.jobs[-1].job_id))
    assert record[b"line"] == b"26"
    status = store.status(plan.campaign_id)
    assert status is not None
    assert (status.name, status.total, status.rejected_rows, status.enqueued,
            status.enqueue_complete) == ("spring", 23, 2, 23, True)
    assert not producer.redis.exists(producer.keys.campaign_jobs_new(plan.campaign_id))


def test_a_streamed_rerun_skips_everything_and_keeps_the_same_list(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, with_bad_rows(12))
    first = start_file(scan_file(path, keep=True),
                       CampaignEnqueuer(producer, store, chunk_size=5))
    cid = scan_file(path).campaign_id
    listed = job_list(store, cid)
    again = start_file(scan_file(path, keep=True),
                       CampaignEnqueuer(producer, store, chunk_size=5))
    assert (first.new, again.new, again.resent, dict(again.skipped)) == (10, 0, 0,
                                                                         {"queued": 10})
    assert job_list(store, cid) == listed and len(store.rejects(cid)) == 2


def test_a_file_changed_after_the_first_read_is_refused_before_anything_is_recorded(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(5))
    scan = scan_file(path, keep=True)
    path.write_text(path.read_text(encoding="utf-8") + "C00000000099,,,,,late\n",
                    encoding="utf-8")
    with pytest.raises(FileChangedError, match=r"the file changed while campaign c-"):
        start_file(scan, CampaignEnqueuer(producer, store))
    assert store.status(scan.campaign_id) is None
    assert broker_jobs(producer) == []


def test_a_file_changed_under_an_explicit_id_is_caught_by_its_stamp(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(5))
    scan = scan_file(path, campaign_id="spring", keep=True)
    st = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("ref-1", "ref-9"),
                    encoding="utf-8")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(FileChangedError):
        start_file(scan, CampaignEnqueuer(producer, store))


def test_a_file_changed_midway_stops_the_run_between_chunks(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(10))
    scan = scan_file(path, keep=True)

    def rewrite(_result: EnqueueResult, handled: int) -> None:
        if handled == 3:
            path.write_text(path.read_text(encoding="utf-8") + "C00000000099,,,,,x\n",
                            encoding="utf-8")

    with pytest.raises(FileChangedError):
        start_file(scan, CampaignEnqueuer(producer, store, chunk_size=3), on_chunk=rewrite)
    status = store.status(scan.campaign_id)
    assert status is not None and (status.enqueued, status.enqueue_complete) == (3, False)
    # the jobs recorded so far are listed: cancel and the report find them
    assert len(job_list(store, scan.campaign_id)) == 3


def test_a_cancel_stops_sending_but_the_job_list_is_completed(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(10))
    scan = scan_file(path, keep=True)
    control = CampaignControl(store, lambda _job_id, _now: True)

    def cancel_after_first(_result: EnqueueResult, handled: int) -> None:
        if handled == 4:
            control.cancel(scan.campaign_id)

    result = start_file(scan, CampaignEnqueuer(producer, store, chunk_size=4),
                        on_chunk=cancel_after_first)
    assert (result.new, result.stopped) == (4, "cancelled")
    status = store.status(scan.campaign_id)
    assert status is not None and (status.enqueued, status.enqueue_complete) == (4, False)
    assert len(job_list(store, scan.campaign_id)) == 10
    assert not producer.redis.exists(producer.keys.campaign_jobs_new(scan.campaign_id))


def test_a_first_run_cut_short_keeps_its_partial_list_visible_to_the_next(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    path = write_file(tmp_path, customer_rows(10))
    plan = plan_file(path)
    ids = [j.job_id for j in plan.jobs]
    # Given a first run killed after listing (and recording) its first chunk
    store.open_job_list(plan.campaign_id)
    store.append_jobs(plan.campaign_id, ids[:4])
    assert job_list(store, plan.campaign_id) == ids[:4]
    # When a second run starts its own list
    store.open_job_list(plan.campaign_id)
    # Then the first run's list is still read until the new one is complete
    assert job_list(store, plan.campaign_id) == ids[:4]
    store.append_jobs(plan.campaign_id, ids)
    store.close_job_list(plan.campaign_id)
    assert job_list(store, plan.campaign_id) == ids


def test_a_campaigns_batch_spreads_it_over_at_least_two_hundred_messages():
    from unsign_worker.producers.campaign.enqueue import BATCH_SIZE, batch_size_for

    assert batch_size_for(0) == batch_size_for(150) == 1
    assert batch_size_for(5_000) == 25
    assert batch_size_for(100_000) == BATCH_SIZE == 200
    for jobs in (250, 3_000, 40_000):
        assert -(-jobs // batch_size_for(jobs)) >= 200
