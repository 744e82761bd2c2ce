"""The verdicts of a campaign file's read, kept on disk for its run: the run enqueues what the
read validated, in file order, without reading or validating the file again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.campaign_plan import plan_file
from tests.producers.test_campaign_store import broker_jobs, customer_rows, write_file
from unsign_worker.producers.campaign import rows
from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer
from unsign_worker.producers.campaign.plan import scan_file
from unsign_worker.producers.campaign.spool import Spool, SpooledJob, SpooledReject
from unsign_worker.producers.campaign.stream import start_file
from unsign_worker.producers.campaign.validate import RejectedRow, RowError
from unsign_worker.producers.producer import Producer
from unsign_worker.store.campaigns import CampaignStore


def test_verdicts_come_back_in_file_order_across_blocks() -> None:
    spool = Spool(block=2)
    reject = RejectedRow(3, (RowError(3, "customer_code", "format", "must be letters"),),
                         reference="r-3", values={"customer_code": "C!"})
    spool.job("a" * 32, 1, "r-1", {"customer_code": "C1"})
    spool.job("b" * 32, 2, "", {"biz_type": "10004", "user_email": "李雷@例子.公司"})
    spool.reject(reject)
    spool.job("c" * 32, 4, "r\u2028\x85", {"type_code": "T", "trans_account_out": "A"})
    try:
        assert list(spool.verdicts()) == [
            SpooledJob("a" * 32, 1, "r-1", {"customer_code": "C1"}),
            SpooledJob("b" * 32, 2, "", {"biz_type": "10004", "user_email": "李雷@例子.公司"}),
            SpooledReject(reject.as_dict()),
            SpooledJob("c" * 32, 4, "r\u2028\x85", {"type_code": "T", "trans_account_out": "A"}),
        ]
    finally:
        spool.close()


def test_a_refused_row_is_kept_without_its_values() -> None:
    spool = Spool()
    spool.reject(RejectedRow(7, (RowError(7, "_row", "unique", "repeats line 2"),),
                             values={"user_email": "someone@example.com"}))
    try:
        (kept,) = spool.verdicts()
        assert kept.as_dict() == {"line": 7, "reference": "", "errors": [
            {"field": "_row", "rule": "unique", "message": "repeats line 2"}]}
        assert "someone" not in repr(kept)
    finally:
        spool.close()


def test_a_run_needs_the_verdicts_of_its_scan(
        tmp_path: Path, producer: Producer, store: CampaignStore) -> None:
    scan = scan_file(write_file(tmp_path, customer_rows(3)))
    assert scan.spool is None
    with pytest.raises(ValueError, match="keep=True"):
        start_file(scan, CampaignEnqueuer(producer, store))
    assert store.status(scan.campaign_id) is None


def test_the_file_is_read_and_validated_once_per_run(
        tmp_path: Path, producer: Producer, store: CampaignStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path, [*customer_rows(9), "C1!,,,,,bad"])
    expected = plan_file(path)
    reads: list[str] = []
    lines = rows.file_lines
    monkeypatch.setattr(rows, "file_lines",
                        lambda handle, *a, **kw: reads.append(handle.name) or lines(handle, *a,
                                                                                    **kw))
    scan = scan_file(path, keep=True)
    assert scan.spool is not None
    result = start_file(scan, CampaignEnqueuer(producer, store, chunk_size=4, batch_size=3))
    assert reads == [str(path)]
    assert result.new == 9 and store.rejects(scan.campaign_id)[0]["line"] == 11
    assert sorted(broker_jobs(producer)) == sorted(j.job_id for j in expected.jobs)
    assert scan.spool._file.closed  # the rows' parameters do not outlive the run
