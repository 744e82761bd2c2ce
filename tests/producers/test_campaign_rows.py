"""Reading and validating campaign files: pure, no Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.plugins.campaign_plan import plan_file
from unsign_worker.producers.campaign.ids import campaign_id_for, check_campaign_id, job_id_for
from unsign_worker.producers.campaign.rows import (
    FileFormatError,
    RawRow,
    decode,
    file_format,
    read_rows,
)
from unsign_worker.producers.campaign.validate import (
    RejectedRow,
    ValidRow,
    validate_row,
    validate_rows,
)

HEADER = "customer_code,type_code,trans_account_out,biz_type,user_email,reference\n"


def rows_of(text: str, fmt: str = "csv") -> list[ValidRow | RejectedRow]:
    return list(validate_rows(read_rows(text, fmt), charset="utf-8"))


def errors_of(verdict: ValidRow | RejectedRow) -> list[tuple[int, str, str]]:
    assert isinstance(verdict, RejectedRow), verdict
    return [(e.line, e.field, e.rule) for e in verdict.errors]


def test_a_csv_row_naming_an_agreement_in_each_allowed_way_is_valid() -> None:
    text = HEADER + ("C00000000001,,,,,r1\n"
                     ",BUSI01,20880020070189160156,,,r2\n"
                     ",,,10004,li.wei@example.com,r3\n")
    verdicts = rows_of(text)
    assert [type(v) for v in verdicts] == [ValidRow, ValidRow, ValidRow]
    assert verdicts[1] == ValidRow(3, {"type_code": "BUSI01",
                                       "trans_account_out": "20880020070189160156"}, "r2")


def test_a_bad_row_names_its_line_field_and_rule_and_the_good_rows_still_pass() -> None:
    text = HEADER + ("C00000000001,,,,,r1\n"
                     ",BUSI01,20880020070189160157,,,r2\n"
                     "C00000000003,,,,,r3\n")
    verdicts = rows_of(text)
    assert isinstance(verdicts[0], ValidRow) and isinstance(verdicts[2], ValidRow)
    assert errors_of(verdicts[1]) == [(3, "trans_account_out", "format")]
    assert str(verdicts[1].errors[0]).startswith("line 3: trans_account_out: ")


def test_a_row_that_mixes_two_forms_names_its_line_field_and_rule() -> None:
    # customer_code names the agreement alone; a lone field of the other pair beside a
    # complete one names nothing the rules know
    text = HEADER + ("C00000000001,BUSI01,,,,r1\n"
                     ",,20880020070189160156,10004,li.wei@example.com,r2\n"
                     ",BUSI01,20880020070189160156,,,r3\n")
    verdicts = rows_of(text)
    assert errors_of(verdicts[0]) == [(2, "type_code", "one_form")]
    assert errors_of(verdicts[1]) == [(3, "trans_account_out", "incomplete_pair")]
    assert isinstance(verdicts[2], ValidRow)
    assert str(verdicts[1].errors[0]).startswith("line 3: trans_account_out: is given without "
                                                 "type_code")


def test_line_numbers_count_blank_lines_and_quoted_newlines() -> None:
    text = HEADER + '\n"C0000000\n0001",,,,,r1\nC0000000000123456789X,,,,,r2\n'
    verdicts = rows_of(text)
    assert errors_of(verdicts[0])[0][:2] == (3, "customer_code")
    assert errors_of(verdicts[1]) == [(5, "customer_code", "max_length")]


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    verdicts = rows_of(HEADER + "C00000000001,,,\n")
    assert errors_of(verdicts[0]) == [(2, "_row", "column_count")]


def test_a_repeated_reference_is_refused_naming_the_first_line() -> None:
    verdicts = rows_of(HEADER + "C00000000001,,,,,r1\nC00000000002,,,,,r1\n")
    assert isinstance(verdicts[0], ValidRow)
    assert errors_of(verdicts[1]) == [(3, "reference", "unique")]
    assert "line 2" in verdicts[1].errors[0].message


def test_a_repeated_row_without_reference_is_refused() -> None:
    verdicts = rows_of("customer_code\nC00000000001\nC00000000001\n")
    assert errors_of(verdicts[1]) == [(3, "_row", "unique")]


def test_a_reference_with_control_characters_or_too_long_is_refused() -> None:
    verdict = validate_row(RawRow(7, {"customer_code": "C1", "reference": "a\tb"}),
                           charset="utf-8")
    assert errors_of(verdict) == [(7, "reference", "no_control_chars")]
    verdict = validate_row(RawRow(8, {"customer_code": "C1", "reference": "r" * 129}),
                           charset="utf-8")
    assert errors_of(verdict) == [(8, "reference", "max_length")]


@pytest.mark.parametrize("text, message", [
    ("customer_code,phone\nC1,1\n", "line 1, column 2: unknown column 'phone'"),
    ("customer_code,customer_code\nC1,C1\n", "more than once"),
    ("reference\nr1\n", "names no parameter column"),
    ("\n\n", "the file is empty"),
])
def test_a_bad_header_fails_the_whole_file_with_a_clear_message(text: str,
                                                               message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        rows_of(text)


def test_json_lines_report_bad_json_non_objects_unknown_keys_and_non_strings() -> None:
    text = "\n".join([
        json.dumps({"customer_code": "C00000000001", "reference": "r1"}),
        "{not json",
        "[1, 2]",
        json.dumps({"customer_code": "C00000000002", "phone": "1"}),
        json.dumps({"customer_code": 42}),
    ])
    verdicts = rows_of(text, "jsonl")
    assert isinstance(verdicts[0], ValidRow)
    assert errors_of(verdicts[1]) == [(2, "_line", "json")]
    assert errors_of(verdicts[2]) == [(3, "_line", "json_object")]
    assert errors_of(verdicts[3]) == [(4, "phone", "unknown_field")]
    assert (5, "customer_code", "type") in errors_of(verdicts[4])


def test_gbk_files_are_read_with_the_gbk_encoding_and_refused_as_utf8() -> None:
    data = (HEADER + ",,,10004,李雷@例子.公司,r1\n").encode("gbk")
    text = decode(data, "gbk")
    assert isinstance(rows_of(text)[0], ValidRow)
    with pytest.raises(FileFormatError, match="line 2: not valid utf-8 .try --encoding gbk."):
        decode(data, "utf-8")


def test_a_utf8_byte_order_mark_does_not_spoil_the_header() -> None:
    text = decode(("\ufeff" + HEADER + "C00000000001,,,,,r1\n").encode("utf-8"), "utf-8")
    assert isinstance(rows_of(text)[0], ValidRow)


def test_the_format_follows_the_file_name() -> None:
    assert file_format("rows.jsonl") == "jsonl"
    assert file_format("ROWS.NDJSON") == "jsonl"
    assert file_format("rows.csv") == "csv"


def test_the_same_file_is_the_same_campaign_and_each_row_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "C00000000001,,,,,r1\nC00000000002,,,,,\n", encoding="utf-8")
    first, second = plan_file(path), plan_file(path)
    assert first.campaign_id == second.campaign_id == campaign_id_for(path.read_bytes())
    assert [j.job_id for j in first.jobs] == [j.job_id for j in second.jobs]
    assert first.lines == {first.jobs[0].job_id: 2, first.jobs[1].job_id: 3}


def test_a_row_keeps_its_job_when_rows_around_it_change(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "C00000000001,,,,,r1\n", encoding="utf-8")
    before = plan_file(path, campaign_id="spring")
    path.write_text(HEADER + "C00000000009,,,,,r9\nC00000000001,,,,,r1\n", encoding="utf-8")
    after = plan_file(path, campaign_id="spring")
    assert before.jobs[0].job_id == after.jobs[1].job_id


def test_a_bad_campaign_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER, encoding="utf-8")
    assert check_campaign_id("spring-2026.1") is None
    with pytest.raises(FileFormatError, match="--id"):
        plan_file(path, campaign_id="no spaces")


references = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=20)


@given(st.lists(references, min_size=1, max_size=30, unique=True))
def test_job_ids_are_distinct_per_row_and_stable(refs: list[str]) -> None:
    rows = [ValidRow(i + 2, {"customer_code": "C1"}, r) for i, r in enumerate(refs)]
    ids = [job_id_for("c-1", row) for row in rows]
    assert len(set(ids)) == len(ids)
    assert ids == [job_id_for("c-1", row) for row in rows]
    assert all(job_id_for("c-2", row) not in ids for row in rows)


# a bare carriage return inside a cell is left out: editors disagree on whether it ends a line
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                       blacklist_characters="\x00\r"), max_size=12)


@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=15))
def test_csv_cells_read_back_as_written_with_the_line_each_row_starts_on(
        table: list[tuple[str, str]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_code", "reference"])
    starts = []
    for row in table:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    read = list(read_rows(buffer.getvalue(), "csv"))
    kept = [(start, row) for start, row in zip(starts, table, strict=True)
            if any(c.strip() for c in row)]
    assert [r.line for r in read] == [start for start, _ in kept]
    assert [r.values for r in read] == [
        {k: v for k, v in zip(("customer_code", "reference"), row, strict=True) if v}
        for _, row in kept]


def test_a_json_line_may_hold_a_unicode_line_separator_in_a_value() -> None:
    text = json.dumps({"customer_code": "C00000000001", "reference": "a\u2028b"},
                      ensure_ascii=False) + "\r\n" + json.dumps({"customer_code": "C2"})
    verdicts = rows_of(text, "jsonl")
    assert errors_of(verdicts[0]) == [(1, "reference", "no_control_chars")]
    assert isinstance(verdicts[1], ValidRow) and verdicts[1].line == 2
