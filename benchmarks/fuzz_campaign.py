"""Fuzz the campaign file reader and validator with hypothesis.

The contract, for any bytes given as CSV or JSON lines in UTF-8 or GBK:

- reading either raises ``FileFormatError`` (the file as a whole) or yields verdicts, never
  another exception and never a hang;
- every refused row names a line (1 or more), a field and a rule, and its JSON record (what
  Redis keeps) encodes as UTF-8;
- every valid row passes the interface's rules again and gets a job id;
- the rejects file written from the refused rows (values shown in clear, the worst case)
  encodes as UTF-8 and holds no cell a spreadsheet would run as a formula;
- the streaming reader (``open_rows``, what ``campaign run`` uses) and the in-memory one
  (``decode`` + ``read_rows``) agree: same verdicts, or both refuse the file.

Inputs are CSV and JSON-lines documents built from valid values, formula payloads, quotes,
stray line endings, NULs, byte order marks, duplicate keys, lone surrogates and wrong encodings,
then mutated at the byte level; plus raw bytes. Every input that breaks the contract is saved
to ``tests/data/campaign_fuzz_corpus/`` (``tests/producers/test_security_input.py`` replays them);
figures are printed at the end. Exit code 1 when anything was found.

    .venv/bin/python benchmarks/fuzz_campaign.py [--seconds 180]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "campaign_fuzz_corpus"
#: An input taking longer than this counts as a hang, seconds.
INPUT_TIMEOUT_SECONDS = 5.0
#: Examples per hypothesis run; the budget is checked between runs.
BATCH_EXAMPLES = 300
FORMATS = ("csv", "jsonl")
ENCODINGS = ("utf-8", "gbk")


class Violation(Exception):
    """The reader broke its contract; ``signature`` names the bug (type and place)."""

    def __init__(self, signature: str) -> None:
        super().__init__(signature)
        self.signature = signature


class Hang(BaseException):
    """Raised by SIGALRM when one input runs past INPUT_TIMEOUT_SECONDS."""


def _where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"


def _verdicts(rows: Any) -> list[tuple[int, str, tuple[str, ...]]]:
    """Check every verdict against the contract; return a summary to compare readers by."""
    from unsign_worker.producers.campaign.ids import job_id_for
    from unsign_worker.producers.campaign.report import REJECT_COLUMNS, reject_rows
    from unsign_worker.producers.campaign.validate import ValidRow, validate_rows
    from unsign_worker.producers.reports import FORMULA_PREFIXES, neutralise_cell
    from unsign_worker.protocol.exceptions import ValidationError
    from unsign_worker.protocol.params import UnsignRequest

    out = []
    for verdict in validate_rows(rows, charset="utf-8"):
        if isinstance(verdict, ValidRow):
            job_id_for("c-fuzz", verdict)
            try:
                UnsignRequest.from_mapping(verdict.params).validate(charset="utf-8")
            except ValidationError as exc:
                raise Violation(f"a valid row breaks a rule: {exc.errors[0].rule}") from None
            out.append((verdict.line, "valid", ()))
            continue
        if verdict.line < 1 or not verdict.errors or not all(
                e.field and e.rule and e.line == verdict.line for e in verdict.errors):
            raise Violation("a refused row without its line, field or rule")
        json.dumps(verdict.as_dict(), ensure_ascii=False).encode("utf-8")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in reject_rows([verdict], show_personal_data=True):
            cells = [neutralise_cell("" if row.get(c) is None else str(row[c]))
                     for c in REJECT_COLUMNS]
            if any(c.startswith(FORMULA_PREFIXES) and not (
                    c.startswith("-") and c[1:].replace(".", "", 1).isdigit()) for c in cells):
                raise Violation("a formula cell in the rejects file")
            writer.writerow(cells)
        buffer.getvalue().encode("utf-8")
        out.append((verdict.line, "refused", tuple(e.rule for e in verdict.errors)))
    return out


def judge(data: bytes, fmt: str, encoding: str, scratch: Path) -> str:
    """The outcome label of one input; raises Violation when the contract is broken."""
    from unsign_worker.producers.campaign.rows import FileFormatError, decode, open_rows, read_rows

    results: list[Any] = []
    scratch.write_bytes(data)
    for read in (lambda: open_rows(scratch, fmt, encoding),
                 lambda: read_rows(decode(data, encoding), fmt)):
        try:
            results.append(_verdicts(read()))
        except FileFormatError:
            results.append("file refused")
        except (Violation, Hang):
            raise
        except Exception as exc:  # noqa: BLE001 - any other exception is the finding
            raise Violation(_where(exc)) from None
    if results[0] != results[1]:
        raise Violation("the streaming and in-memory readers disagree")
    if results[0] == "file refused":
        return "file refused"
    kinds = Counter(kind for _, kind, _ in results[0])
    if not kinds:
        return "no rows"
    return "all valid" if not kinds["refused"] else "some refused"


def timed_judge(data: bytes, fmt: str, encoding: str, scratch: Path) -> tuple[str, float]:
    signal.setitimer(signal.ITIMER_REAL, INPUT_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        return judge(data, fmt, encoding, scratch), time.monotonic() - started
    except Hang:
        raise Violation(f"hang over {INPUT_TIMEOUT_SECONDS:g}s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def corpus_name(data: bytes, fmt: str, encoding: str) -> str:
    return f"crash-{hashlib.sha1(data).hexdigest()[:16]}-{fmt}-{encoding}.bin"


def parse_corpus_name(name: str) -> tuple[str, str]:
    """``(format, encoding)`` from a corpus file name."""
    stem = name.removesuffix(".bin")
    for fmt in FORMATS:
        for encoding in ENCODINGS:
            if stem.endswith(f"-{fmt}-{encoding}"):
                return fmt, encoding
    raise ValueError(f"not a corpus file name: {name}")


def save(data: bytes, fmt: str, encoding: str) -> Path:
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / corpus_name(data, fmt, encoding)
    path.write_bytes(data)
    return path


VALUES = ["C00000000001", "C1", "BUSI003100021000301", "20880020070189160156", "10004",
          "li.wei@example.com", "李雷@例子.公司", "ref-1", "=cmd|' /C calc'!A0", "+1", "-2",
          "@SUM(1)", "\t=1", "\uff1d1", "\"", "\"\"", ",", "\r", "\n", "\r\n", "\x00", "\ufeff",
          " x ", "\u2028", "\\ud800", "\ud83d\ude00", "x" * 200]
COLUMNS = ["customer_code", "type_code", "trans_account_out", "biz_type", "user_email",
           "reference", "phone", "", " customer_code", "=evil"]


def documents() -> Any:
    """Hypothesis strategy: ``(bytes, format, encoding)`` campaign files."""
    from hypothesis import strategies as st

    text = st.text(max_size=12)
    cell = st.one_of(st.sampled_from(VALUES), text)
    # mostly a header the reader accepts, so most inputs reach the rows and the validator
    good_header = st.lists(st.sampled_from(COLUMNS[:6]), min_size=1, max_size=6, unique=True)
    header = st.one_of(good_header, good_header, good_header,
                       st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=7))

    @st.composite
    def csv_doc(draw: Any) -> str:
        names = draw(header)
        rows = draw(st.lists(st.lists(cell, min_size=0, max_size=len(names) + 1),
                             max_size=8))
        quote = draw(st.sampled_from(["minimal", "all", "raw"]))
        end = draw(st.sampled_from(["\n", "\r\n", "\r"]))

        def line(cells: list[str]) -> str:
            if quote == "raw":
                return ",".join(cells)
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="", quoting=csv.QUOTE_ALL if quote == "all"
                       else csv.QUOTE_MINIMAL).writerow(cells)
            return buffer.getvalue()

        return end.join([line(names), *(line(r) for r in rows)]) + draw(st.sampled_from(
            ["", end]))

    scalar = st.one_of(cell, st.integers(), st.floats(allow_nan=True), st.none(),
                       st.booleans())
    value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(text, inner,
                                                                         max_size=3)),
                         max_leaves=6)

    @st.composite
    def json_line(draw: Any) -> str:
        kind = draw(st.sampled_from(["object", "object", "object", "duplicate", "junk",
                                     "nested"]))
        if kind == "junk":
            return draw(st.one_of(text, st.sampled_from(["[", "{", "null", "1e999",
                                                          "9" * 5000, "{\"a\": \"\\ud800\"}"])))
        if kind == "nested":
            return "[" * draw(st.integers(1, 3000)) + "]" * draw(st.integers(0, 3000))
        pairs = draw(st.lists(st.tuples(st.sampled_from(COLUMNS), value), max_size=5))
        if kind == "duplicate" and pairs:
            pairs.append(pairs[0])
        body = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=draw(st.booleans()))}"
                         for k, v in pairs)
        return "{" + body + "}"

    jsonl_doc = st.lists(json_line(), max_size=8).map("\n".join)

    @st.composite
    def encoded(draw: Any) -> tuple[bytes, str, str]:
        fmt = draw(st.sampled_from(FORMATS))
        doc = draw(csv_doc() if fmt == "csv" else jsonl_doc)
        written_in = draw(st.sampled_from(ENCODINGS))
        data = doc.encode(written_in, "replace" if written_in == "gbk" else "surrogatepass")
        if draw(st.booleans()) and written_in == "utf-8":
            data = b"\xef\xbb\xbf" + data
        read_as = draw(st.sampled_from([written_in, written_in, *ENCODINGS]))
        return _mutate(data, draw(st.lists(st.tuples(st.integers(0, 10_000),
                                                     st.binary(max_size=3)), max_size=3))), \
            fmt, read_as

    raw = st.tuples(st.binary(max_size=300), st.sampled_from(FORMATS),
                    st.sampled_from(ENCODINGS))
    return st.one_of(encoded(), encoded(), encoded(), raw)


def _mutate(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for position, chunk in edits:
        at = position % (len(out) + 1)
        out[at:at + 1] = chunk  # one byte becomes 0 to 3 bytes: delete, flip or insert
    return bytes(out)


def run(seconds: float) -> dict[str, Any]:
    from hypothesis import HealthCheck, Phase, given, settings

    scratch = Path(tempfile.mkdtemp(prefix="fuzz-campaign-")) / "input"
    stats: dict[str, Any] = {"inputs": 0, "outcomes": Counter(), "found": {}, "known": set(),
                             "slowest": 0.0}
    pending: dict[str, tuple[bytes, str, str]] = {}

    @settings(max_examples=BATCH_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(documents())
    def one(case: tuple[bytes, str, str]) -> None:
        stats["inputs"] += 1
        try:
            label, spent = timed_judge(*case, scratch)
        except Violation as found:
            stats["outcomes"]["VIOLATION"] += 1
            if found.signature in stats["found"] or found.signature in stats["known"]:
                return  # known already: keep exploring elsewhere
            pending[found.signature] = case  # the last one raised is hypothesis's shrunk one
            raise
        stats["outcomes"][label] += 1
        stats["slowest"] = max(stats["slowest"], spent)

    for path in sorted(CORPUS.glob("*.bin")):  # corpus inputs still failing are known
        try:
            timed_judge(path.read_bytes(), *parse_corpus_name(path.name), scratch)
        except Violation as known:
            stats["known"].add(known.signature)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending.clear()
        try:
            one()
        except (Violation, BaseExceptionGroup) as failure:
            group = failure if isinstance(failure, BaseExceptionGroup) else None
            for found in (group.exceptions if group else (failure,)):
                if isinstance(found, Violation) and found.signature in pending:
                    stats["found"][found.signature] = str(save(*pending[found.signature]))
    return stats


def report(seconds: float, stats: dict[str, Any]) -> None:
    from fuzz_response import report as print_report  # the same summary as the parser fuzzer

    print_report("hypothesis", seconds, stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="total budget (s)")
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    def alarm(signum: int, frame: object) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    started = time.monotonic()
    stats = run(opts.seconds)
    report(time.monotonic() - started, stats)
    return 1 if stats["found"] or stats["known"] else 0


if __name__ == "__main__":
    sys.exit(main())
