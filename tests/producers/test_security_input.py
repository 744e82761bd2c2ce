"""Hostile campaign files: formula injection, huge lines, wrong encodings, bad headers, a
million rows, an enqueue cut short.

The reader and validator are pure and tested directly; ``campaign run`` is tested end to end
(real Redis, a real worker, the emulator) for what it writes and what it enqueues. Every bad
input must end in a clear message naming the line, the field and the rule, never a traceback,
and never a job in the broker without its record in Redis.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from tests import paths
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.campaign.lines import MAX_LINE_BYTES
from unsign_worker.producers.campaign.plan import scan_file
from unsign_worker.producers.campaign.rows import FileFormatError, decode, open_rows, read_rows
from unsign_worker.producers.campaign.validate import RejectedRow, ValidRow, validate_rows
from unsign_worker.producers.reports import FORMULA_PREFIXES, neutralise_cell
from unsign_worker.store.keys import Keys

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

HEADER = "customer_code,type_code,trans_account_out,biz_type,user_email,reference\n"
GOOD = "C00000000001,,,,,good-1\n"
#: Formula payloads from the OWASP CSV injection page and common proofs of concept.
FORMULAS = ("=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example/x\",\"click\")",
            "\uff1d1+1")
TEN_MB = 10 * 1024 * 1024
#: Inputs benchmarks/fuzz_campaign.py caught breaking the reader's contract.
FUZZ_CORPUS = paths.DATA / "campaign_fuzz_corpus"
#: Peak of Python allocations allowed while a million-row file is checked (tracemalloc).
MILLION_ROWS_PEAK_BYTES = 100 * 1024 * 1024
#: Peak resident memory allowed for ``campaign run --dry-run`` of a million rows.
MILLION_ROWS_RSS_BYTES = 200 * 1024 * 1024


def verdicts_of(path: Path, encoding: str = "utf-8", fmt: str | None = None
                ) -> list[ValidRow | RejectedRow]:
    fmt = fmt or ("jsonl" if path.suffix == ".jsonl" else "csv")
    return list(validate_rows(open_rows(path, fmt, encoding), charset="utf-8"))


def problems(verdict: ValidRow | RejectedRow) -> list[tuple[int, str, str]]:
    assert isinstance(verdict, RejectedRow), verdict
    return [(e.line, e.field, e.rule) for e in verdict.errors]


def is_formula(cell: str) -> bool:
    """Would a spreadsheet read this cell as a formula? (A plain negative number is fine.)"""
    if not cell.startswith(FORMULA_PREFIXES):
        return False
    return not (cell.startswith("-") and cell[1:].replace(".", "", 1).isdigit())


def csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


# --- formula injection: the neutraliser ------------------------------------------------------


@pytest.mark.parametrize("payload", [*FORMULAS, "\t=1+1", "\r=1+1", "\n=1+1", "\0=1+1",
                                     "\uff0b1", "\uff0d1", "\uff20SUM(1)"])
def test_a_cell_that_would_start_a_formula_gets_a_leading_quote(payload: str) -> None:
    assert neutralise_cell(payload) == "'" + payload


@pytest.mark.parametrize("value", ["-12", "-0.5", "C00000000001", "m***@example.com", "",
                                   "'=already quoted"])
def test_plain_values_and_negative_numbers_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value


@given(st.text(max_size=30))
def test_no_neutralised_cell_is_a_formula_and_the_text_is_kept(value: str) -> None:
    cell = neutralise_cell(value)
    assert not is_formula(cell)
    assert cell in (value, "'" + value)


# --- hostile files: the pure reader ------------------------------------------------------------


def test_a_ten_megabyte_line_is_refused_unread_and_the_good_rows_still_pass(
        tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with open(path, "wb") as handle:
        handle.write((HEADER + GOOD).encode())
        handle.write(b"C" * TEN_MB + b",,,,,huge\n")
        handle.write(b"C00000000002,,,,,good-2\n")
    tracemalloc.start()
    try:
        verdicts = verdicts_of(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [v.line for v in verdicts if isinstance(v, ValidRow)] == [2, 4]
    assert [problems(v) for v in verdicts if isinstance(v, RejectedRow)] == [
        [(3, "_line", "max_line_length")]]
    assert peak < 2 * MAX_LINE_BYTES + 1024 * 1024, f"peak {peak} bytes for a 10 MB line"


def test_a_huge_quoted_cell_spread_over_many_lines_is_a_row_problem(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    chunk = "x" * (MAX_LINE_BYTES - 100) + "\n"
    path.write_text(HEADER + GOOD + 'C00000000003,,,,,"' + chunk * 4 + '"\n'
                    + "C00000000002,,,,,good-2\n", encoding="utf-8")
    verdicts = verdicts_of(path)
    assert isinstance(verdicts[0], ValidRow) and verdicts[0].line == 2
    assert problems(verdicts[1]) == [(3, "_row", "csv")]
    assert "field larger than field limit" in verdicts[1].errors[0].message  # type: ignore
    # past the broken quote the reader cannot know where rows start again: whatever follows is
    # refused row by row, each naming its line and rule, and nothing is taken as valid
    assert all(isinstance(v, RejectedRow) and v.errors[0].rule for v in verdicts[2:])


def test_a_ten_megabyte_json_line_is_refused_and_the_next_line_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as handle:
        handle.write(b'{"customer_code": "' + b"C" * TEN_MB + b'"}\n')
        handle.write(b'{"customer_code": "C00000000001"}\n')
    verdicts = verdicts_of(path)
    assert problems(verdicts[0]) == [(1, "_line", "max_line_length")]
    assert isinstance(verdicts[1], ValidRow) and verdicts[1].line == 2


@pytest.mark.parametrize(("line", "rule", "message"), [
    ("[" * 50_000, "json", "nested too deeply"),
    ('{"customer_code": ' + "9" * 50_000 + "}", "json", "a number too long"),
    ('{"customer_code": "C00000000001", "customer_code": "C00000000002"}', "duplicate_key",
     "'customer_code' more than once"),
    ('{"customer_code": "C1", "reference": "r\\ud800"}', "unicode", "lone surrogate"),
    ('{"customer_code": "C1"', "json", "not valid JSON"),
])
def test_hostile_json_lines_are_row_problems_naming_line_and_rule(
        line: str, rule: str, message: str) -> None:
    verdicts = list(validate_rows(read_rows('{"customer_code": "C00000000009"}\n' + line + "\n",
                                            "jsonl"), charset="utf-8"))
    assert isinstance(verdicts[0], ValidRow)
    assert [(e.line, e.rule) for e in verdicts[1].errors] == [(2, rule)]  # type: ignore[union-attr]
    assert message in verdicts[1].errors[0].message  # type: ignore[union-attr]


def test_a_lone_surrogate_in_a_reference_can_never_reach_a_job_id(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"customer_code": "C00000000001", "reference": "r\\udc80"}\n',
                    encoding="utf-8")
    scan = scan_file(path)
    assert (scan.valid, scan.rejected) == (0, 1)


@pytest.mark.parametrize(("content", "encoding", "message"), [
    (HEADER + ",,,10004,李雷@例子.公司,r1\n", "gbk-as-utf-8",
     r"line 2: not valid utf-8 \(try --encoding gbk\)"),
    (HEADER + ",,,10004,wang.fang@例子.com,张伟\n", "utf-8-as-gbk",
     r"UTF-8 text .* not gbk: use --encoding utf-8"),
    (HEADER + GOOD, "utf-8-bom-as-gbk", r"line 1: .*UTF-8 byte order mark.* --encoding utf-8"),
    (HEADER + GOOD, "utf-16", r"line 1: the file is UTF-16"),
])
def test_a_file_in_the_wrong_encoding_fails_as_a_whole_naming_line_and_remedy(
        tmp_path: Path, content: str, encoding: str, message: str) -> None:
    data = {"gbk-as-utf-8": lambda: content.encode("gbk"),
            "utf-8-as-gbk": lambda: content.encode("utf-8"),
            "utf-8-bom-as-gbk": lambda: b"\xef\xbb\xbf" + content.encode("utf-8"),
            "utf-16": lambda: content.encode("utf-16")}[encoding]()
    given_as = "gbk" if encoding in ("utf-8-as-gbk", "utf-8-bom-as-gbk") else "utf-8"
    path = tmp_path / "wrong.csv"
    path.write_bytes(data)
    with pytest.raises(FileFormatError, match=message):
        verdicts_of(path, given_as)


def test_invalid_bytes_deep_in_the_file_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes((HEADER + GOOD * 5).encode() + b"C0000\xff0001,,,,,x\n")
    with pytest.raises(FileFormatError, match=r"^line 7: not valid utf-8"):
        verdicts_of(path)


def test_a_utf8_byte_order_mark_is_dropped_when_streaming_too(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + GOOD).encode())
    assert [v.line for v in verdicts_of(path)] == [2]


def test_a_gbk_file_streams_with_its_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + "\n" + ",,,10004,李雷@例子.公司,r1\n" + GOOD).encode("gbk"))
    verdicts = verdicts_of(path, "gbk")
    assert [(v.line, type(v).__name__) for v in verdicts] == [(3, "ValidRow"), (4, "ValidRow")]


@pytest.mark.parametrize(("content", "message"), [
    ("", r"^line 1: the file is empty; it needs a header row"),
    ("\n\n", r"^line 1: the file is empty"),
    ("customer_code,customer_code\nC1,C2\n", r"^line 1: column 'customer_code' appears more "),
    ("customer_code,phone\nC1,123\n", r"^line 1, column 2: unknown column 'phone' \(allowed: "),
    ("\ncustomer_code,=cmd|' /C calc'!A0\n", r"^line 2, column 2: unknown column"),
    ("reference\nr1\n", r"^line 1: the header names no parameter column"),
    ("x" * 5_000_000 + "\nC1\n", r"^line 1: longer than 65536 bytes before any header row"),
    ("customer_code," + "y" * 60_000 + "\nC1,2\n",
     r"^line 1, column 2: unknown column 'y{40}'\.\.\. \(60000 characters\)"),
])
def test_a_bad_header_fails_the_whole_file_with_a_short_clear_message(
        tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FileFormatError, match=message) as caught:
        verdicts_of(path)
    assert len(str(caught.value)) < 300


def test_a_header_only_file_has_no_rows_and_no_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(HEADER, encoding="utf-8")
    assert verdicts_of(path) == []
    assert (scan_file(path).rows, scan_file(path).valid) == (0, 0)


def test_nul_bytes_and_stray_quotes_are_row_problems_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes((HEADER + GOOD).encode() + b"C0000\x000002,,,,,nul\n"
                     + b'C00000000003,,,,,"un"closed\n' + b"C00000000004,,,,,good-4\n")
    verdicts = verdicts_of(path)
    assert (3, "customer_code", "no_control_chars") in problems(verdicts[1])
    assert isinstance(verdicts[-1], ValidRow) and verdicts[-1].line == 5


# --- the fuzzer's findings, replayed ----------------------------------------------------------


def fuzz_corpus() -> list[Path]:
    return sorted(FUZZ_CORPUS.glob("crash-*.bin"))


def summary(read: Callable[[], Any]) -> Any:
    """Verdicts as (line, kind, rules), every refused row checked for line, field and rule;
    or "file refused"."""
    try:
        verdicts = list(validate_rows(read(), charset="utf-8"))
    except FileFormatError:
        return "file refused"
    out = []
    for verdict in verdicts:
        if isinstance(verdict, RejectedRow):
            assert verdict.line >= 1 and verdict.errors
            assert all(e.field and e.rule and e.line == verdict.line for e in verdict.errors)
            json.dumps(verdict.as_dict(), ensure_ascii=False).encode("utf-8")
            out.append((verdict.line, "refused", tuple(e.rule for e in verdict.errors)))
        else:
            out.append((verdict.line, "valid", ()))
    return out


def test_the_campaign_fuzz_corpus_is_present() -> None:
    assert fuzz_corpus(), f"no regression inputs in {FUZZ_CORPUS}"


@pytest.mark.parametrize("path", fuzz_corpus(), ids=lambda p: p.name)
def test_a_fuzz_corpus_file_is_read_or_refused_clearly_the_same_way_by_both_readers(
        path: Path) -> None:
    fmt, encoding = next((f, e) for f in ("csv", "jsonl") for e in ("utf-8", "gbk")
                         if path.stem.endswith(f"-{f}-{e}"))  # crash-<hash>-<format>-<enc>
    data = path.read_bytes()
    streamed = summary(lambda: open_rows(path, fmt, encoding))
    in_memory = summary(lambda: read_rows(decode(data, encoding), fmt))
    assert streamed == in_memory


# --- a million rows ---------------------------------------------------------------------------


def write_rows(path: Path, count: int) -> Path:
    """``count`` data rows: one in a thousand invalid, one in ten thousand a repeat."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("customer_code,reference\n")
        for i in range(count):
            if i % 1000 == 999:
                handle.write(f"C{i:011d}!,bad-{i}\n")
            elif i % 10_000 == 5_001:
                handle.write(f"C{i - 1:011d},ref-{i - 1}\n")
            else:
                handle.write(f"C{i:011d},ref-{i}\n")
    return path


@pytest.fixture(scope="module")
def million_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 data rows: one in a thousand invalid, one in ten thousand a repeat."""
    return write_rows(tmp_path_factory.mktemp("million") / "million.csv", 1_000_000)


@pytest.mark.slow
def test_rows_are_checked_within_the_memory_budget_of_a_million(tmp_path: Path) -> None:
    # tracemalloc makes Python several times slower: the Python allocations are measured on a
    # fifth of a million rows against a fifth of the million-row budget (what grows with the
    # rows is the set of references already seen); the million itself is measured below, as
    # the resident memory of the commands that check and send it.
    rows = 200_000
    path = write_rows(tmp_path / "rows.csv", rows)
    rejected: list[int] = []
    tracemalloc.start()
    try:
        scan = scan_file(path, on_reject=lambda r: rejected.append(r.line))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (scan.rows, scan.rejected) == (rows, rows // 1000 + rows // 10_000)
    assert scan.valid == rows - rows // 1000 - rows // 10_000
    assert rejected[:2] == [1001, 2001] and 5003 in rejected
    budget = MILLION_ROWS_PEAK_BYTES * rows / 1_000_000
    assert peak < budget, f"peak {peak / 2**20:.1f} MiB for {rows} rows"


_RSS_OF_CHILD = """
import json, resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": run.returncode, "out": run.stdout, "err": run.stderr,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


@pytest.mark.slow
def test_a_dry_run_of_a_million_rows_stays_within_bounded_memory(
        million_rows: Path, redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    env = {**os.environ, "UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix}
    rejects = tmp_path / "rejects.csv"
    # a fresh interpreter measures the command alone: its only child is the CLI
    measured = subprocess.run(
        [sys.executable, "-c", _RSS_OF_CHILD, str(BIN / "unsign-worker"), "campaign", "run",
         str(million_rows), "--dry-run", "--json", "--rejects", str(rejects)],
        env=env, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(measured.stdout)
    assert result["rc"] == 3, result["err"][-2000:]
    assert json.loads(result["out"]) == {"campaign": json.loads(result["out"])["campaign"],
                                         "rows": 1_000_000, "valid": 998_900,
                                         "rejected_rows": 1100, "dry_run": True}
    assert result["maxrss_kib"] * 1024 < MILLION_ROWS_RSS_BYTES, result["maxrss_kib"]
    with open(rejects, newline="", encoding="utf-8") as handle:
        assert len({row["line"] for row in csv.DictReader(handle)}) == 1100


@pytest.mark.slow
def test_a_full_run_of_a_million_rows_streams_within_the_same_memory_bound(
        million_rows: Path, redis_url: str, key_prefix: str, redis_client: redis.Redis,
        tmp_path: Path) -> None:
    env = {**os.environ, "UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix}
    rejects = tmp_path / "rejects.csv"
    # --detach returns once every job is recorded and sent: no worker is needed
    measured = subprocess.run(
        [sys.executable, "-c", _RSS_OF_CHILD, str(BIN / "unsign-worker"), "campaign", "run",
         str(million_rows), "--detach", "--json", "--rejects", str(rejects)],
        env=env, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(measured.stdout)
    assert result["rc"] == 3, result["err"][-2000:]
    summary = json.loads(result["out"].strip().splitlines()[-1])
    assert (summary["total"], summary["rejected_rows"], summary["enqueued"]) == (
        998_900, 1100, 998_900)
    assert summary["enqueue"]["new"] == 998_900 and summary["enqueue_complete"]
    assert result["maxrss_kib"] * 1024 < MILLION_ROWS_RSS_BYTES, result["maxrss_kib"]
    keys = Keys(key_prefix)
    assert redis_client.llen(keys.campaign_jobs(summary["campaign"])) == 998_900
    assert redis_client.llen(keys.campaign_rejects(summary["campaign"])) == 1100
    assert not redis_client.exists(keys.campaign_jobs_new(summary["campaign"]))


# --- campaign run end to end ------------------------------------------------------------------


def queued_jobs(env: OpsEnv) -> list[dict[str, Any]]:
    """Every job in every message waiting in the broker's ``unsign`` queue."""
    jobs: list[dict[str, Any]] = []
    for raw in env.workers.redis.lrange(env.workers.keys.queue(), 0, -1):
        _args, kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        jobs.extend(kwargs["jobs"] if "jobs" in kwargs else [kwargs["job"]])
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize(("name", "data", "args", "message"), [
    ("empty.csv", b"", [], r"line 1: the file is empty"),
    ("dup.csv", b"customer_code,customer_code\nC1,C2\n", [], r"appears more than once"),
    ("unknown.csv", b"customer_code,evil\nC00000000001,1\n", [], r"unknown column 'evil'"),
    ("gbk.csv", "customer_code,reference\nC00000000001,李雷\n".encode("gbk"), [],
     r"line 2: not valid utf-8 \(try --encoding gbk\)"),
    ("utf8.csv", "customer_code,reference\nC00000000001,李雷王芳张伟\n".encode(), ["--encoding",
                                                                          "gbk"],
     r"not gbk: use --encoding utf-8"),
    ("late.csv", (HEADER + GOOD * 3).encode() + b"\xff\n", [], r"line 5: not valid utf-8"),
])
def test_a_file_refused_as_a_whole_enqueues_nothing_and_says_why(
        ops_env: Callable[..., OpsEnv], tmp_path: Path, name: str, data: bytes,
        args: list[str], message: str) -> None:
    env = ops_env([])
    path = tmp_path / name
    path.write_bytes(data)
    result = env.cli("campaign", "run", str(path), "--detach", *args)
    assert result.exit_code == 1, result.output
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output
    keys = list(env.workers.redis.scan_iter(match=f"{env.workers.prefix}*"))
    assert keys == [], keys
    assert not Path(f"{path}.rejects.csv").exists()


@pytest.mark.slow
def test_a_ten_megabyte_row_is_refused_and_the_rest_of_the_file_runs(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    env = ops_env([Agreement(id="a1", customer_code="C00000000001"),
                   Agreement(id="a2", customer_code="C00000000002")])
    env.workers.start_worker()
    path = tmp_path / "huge.csv"
    with open(path, "wb") as handle:
        handle.write((HEADER + GOOD).encode())
        handle.write(b"C" * TEN_MB + b",,,,,huge\n")
        handle.write(b"C00000000002,,,,,good-2\n")
    result = env.cli("campaign", "run", str(path), "--json")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["total"], summary["rejected_rows"]) == (2, 1)
    assert summary["outcomes"]["unsigned"] == 2
    rejects = Path(f"{path}.rejects.csv").read_text(encoding="utf-8")
    assert len(rejects) < 2000
    assert list(csv.reader(io.StringIO(rejects)))[1][:4] == ["3", "", "_line",
                                                            "max_line_length"]


@pytest.mark.slow
def test_formula_cells_are_neutralised_in_every_exported_csv(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    # Given a campaign whose references and values are formula payloads: one unsigned, one
    # dead-lettered, and rows the validator refuses
    env = ops_env([Agreement(id="ok", customer_code="C00000000001"),
                   Agreement(id="esc", customer_code="C00000000002",
                             script=("TOO_MUCH_TYPE_CODE",))])
    env.workers.start_worker()
    rows = [{"customer_code": "C00000000001", "reference": FORMULAS[0]},
            {"customer_code": "C00000000002", "reference": FORMULAS[1]},
            {"biz_type": "10004", "user_email": FORMULAS[2], "reference": FORMULAS[3]},
            {"customer_code": FORMULAS[4], "reference": FORMULAS[5]},
            {"customer_code": "C00000000003", "reference": "\t=1+1"}]
    path = tmp_path / "formulas.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["customer_code", "biz_type", "user_email", "reference"])
        writer.writeheader()
        writer.writerows(rows)
    run = env.cli("campaign", "run", str(path), "--json")
    assert run.exit_code == 3, run.output
    campaign_id = json.loads(run.stdout.strip().splitlines()[-1])["campaign"]

    # When every CSV the project writes is written
    report, full = tmp_path / "report.csv", tmp_path / "full.csv"
    assert env.cli("campaign", "report", campaign_id, "--out", str(report)).exit_code == 0
    assert env.cli("campaign", "report", campaign_id, "--out", str(full),
                   "--show-personal-data").exit_code == 0
    shown_rejects = tmp_path / "shown-rejects.csv"
    env.cli("campaign", "run", str(path), "--dry-run", "--rejects", str(shown_rejects),
            "--show-personal-data")
    files = {"report": report.read_text(encoding="utf-8"),
             "report --show-personal-data": full.read_text(encoding="utf-8"),
             "rejects": Path(f"{path}.rejects.csv").read_text(encoding="utf-8"),
             "rejects --show-personal-data": shown_rejects.read_text(encoding="utf-8"),
             "dlq export": env.cli("dlq", "export", "--format", "csv").stdout,
             "audit export": env.cli("audit", "export", "--format", "csv").stdout}

    # Then no cell of any of them is a formula, and the payloads are there, quoted
    for name, text in files.items():
        cells = csv_cells(text)
        assert not [c for c in cells if is_formula(c)], (name, [c for c in cells
                                                                if is_formula(c)])
    assert "'" + FORMULAS[0] in csv_cells(files["report"])
    assert "'" + FORMULAS[0] in csv_cells(files["audit export"])
    assert "'" + FORMULAS[1] in csv_cells(files["dlq export"])
    assert "'" + FORMULAS[2] in csv_cells(files["rejects --show-personal-data"])
    assert "'" + FORMULAS[3] in csv_cells(files["rejects"])
    assert "'\t=1+1" in csv_cells(files["rejects"])


@pytest.mark.slow
def test_an_enqueue_cut_short_leaves_no_message_without_its_record_and_a_rerun_finishes(
        ops_env: Callable[..., OpsEnv], tmp_path: Path) -> None:
    count = 1200
    env = ops_env([Agreement(id=f"a{i}", customer_code=f"C{i:011d}") for i in range(count)])
    path = tmp_path / "c.csv"
    path.write_text("customer_code,reference\n" + "".join(
        f"C{i:011d},r{i}\n" for i in range(count)), encoding="utf-8")
    # Given a `campaign run` killed in the middle of its enqueue, before any worker runs
    proc = env.cli_process("campaign", "run", str(path), "--detach", "--chunk-size", "7",
                           "--batch-size", "3")
    r, keys = env.workers.redis, env.workers.keys
    wait_for(lambda: proc.poll() is not None or r.llen(keys.queue()) >= 10, timeout=120,
             interval=0.002, what="the enqueue to start sending")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Then every job the broker holds has its record, and the records are all the campaign's
    in_broker = queued_jobs(env)
    assert 10 <= len(in_broker) < count, "the enqueue was not cut short"
    for job in in_broker:
        record = env.workers.job(job["job_id"])
        assert record.get("state") == "queued", job["job_id"]
        assert json.loads(record["params"]) == job["params"]
    recorded = [k for k in r.scan_iter(match=keys.job("*"), count=1000)]
    assert len(recorded) >= len({j["job_id"] for j in in_broker})
    # When the same command runs again with a worker up
    env.workers.start_worker("w1")
    result = env.cli("campaign", "run", str(path), "--json")
    # Then every row ends unsigned, each agreement exactly once
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["outcomes"]["unsigned"] == summary["done"] == count
    stats = env.stats()
    assert (stats["unsigns"], stats["duplicates"]) == (count, 0)


# --- configuration input: what ALIPAY_CA_BUNDLE may be --------------------------------------


@pytest.mark.parametrize("value", ["false", "0", "none", "off", "/nonexistent/ca.pem",
                                   "not-a-pem", "a-directory", "the-ca"])
def test_check_config_and_the_worker_judge_a_ca_bundle_alike(tmp_path: Path,
                                                             value: str) -> None:
    from click.testing import CliRunner

    from unsign_worker.cli.main import cli
    from unsign_worker.protocol.exceptions import ConfigError
    from unsign_worker.protocol.gateway import GatewayClient

    trustme = pytest.importorskip("trustme")
    (tmp_path / "not-a-pem").write_text("hello")
    (tmp_path / "a-directory").mkdir()
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "the-ca"))
    bundle = str(tmp_path / value) if (tmp_path / value).exists() else value
    try:
        GatewayClient(gateway_url="https://mapi.alipay.com/gateway.do",
                      connect_timeout_seconds=1, read_timeout_seconds=1, pool_size=1,
                      max_response_bytes=1024, ca_bundle=bundle).close()
        worker_accepts = True
    except ConfigError:
        worker_accepts = False
    result = CliRunner().invoke(cli, ["check-config", "--json"], env={
        "ALIPAY_CA_BUNDLE": bundle, "ALIPAY_PARTNER": "2088101568338364",
        "ALIPAY_KEY": "0123456789abcdef0123456789abcdef",
        "UNSIGN_REDIS_URL": "redis://127.0.0.1:1/0"})
    check = [c for c in json.loads(result.output)["checks"] if c["name"] == "ALIPAY_CA_BUNDLE"]
    assert (check[0]["status"] == "ok") == worker_accepts, check
    assert worker_accepts == (value in ("a-directory", "the-ca"))
