"""Reading a campaign file: CSV with a header row, or JSON lines; UTF-8 or GBK.

CSV: the header names the columns, from ``customer_code, type_code, trans_account_out,
biz_type, user_email`` and an optional ``reference``, in any order; an empty cell means "not
given". JSON lines: one object per line with the same names as keys and strings as values.
Blank lines are skipped. Problems of the whole file (unreadable, wrong encoding, bad header)
raise :class:`FileFormatError`; problems of one row travel with the row, so the good rows
still go.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from unsign_worker.exceptions import FieldError, UnsignError
from unsign_worker.params import BUSINESS_FIELDS

#: Every column a campaign file may have.
COLUMNS = (*BUSINESS_FIELDS, "reference")
#: Encodings a campaign file may be in.
ENCODINGS = ("utf-8", "gbk")
#: File name endings read as JSON lines; anything else is read as CSV.
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class FileFormatError(UnsignError):
    """The file as a whole cannot be read; the message names the line and the rule."""


@dataclass(frozen=True)
class RawRow:
    """One row as read: its 1-based line number, its values (not yet checked) and any problem
    found while reading it."""

    line: int
    values: dict[str, object] = field(default_factory=dict)
    problems: tuple[FieldError, ...] = ()


def file_format(path: str | Path) -> str:
    """``jsonl`` or ``csv``, from the file name."""
    return "jsonl" if str(path).lower().endswith(JSONL_SUFFIXES) else "csv"


def decode(data: bytes, encoding: str) -> str:
    """The file's text. Raises: FileFormatError naming the first undecodable line."""
    if encoding not in ENCODINGS:
        raise FileFormatError(f"--encoding: must be one of {', '.join(ENCODINGS)}")
    try:
        return data.decode("utf-8-sig" if encoding == "utf-8" else "gbk")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        other = "gbk" if encoding == "utf-8" else "utf-8"
        raise FileFormatError(f"line {line}: not valid {encoding} (try --encoding {other})"
                              ) from None


def read_rows(text: str, fmt: str) -> Iterator[RawRow]:
    """The rows of a decoded campaign file. Raises: FileFormatError (header problems)."""
    return _jsonl_rows(text) if fmt == "jsonl" else _csv_rows(text)


def _check_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if name not in COLUMNS:
            raise FileFormatError(f"line 1, column {position}: unknown column {name!r} "
                                  f"(allowed: {', '.join(COLUMNS)})")
        if names.count(name) > 1:
            raise FileFormatError(f"line 1: column {name!r} appears more than once")
    if not any(name in BUSINESS_FIELDS for name in names):
        raise FileFormatError("line 1: the header names no parameter column "
                              f"({', '.join(BUSINESS_FIELDS)})")
    return names


def _csv_rows(text: str) -> Iterator[RawRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    last_line = 0
    for cells in reader:
        line = last_line + 1
        last_line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if header is None:
            header = _check_header(cells)
            continue
        if len(cells) != len(header):
            yield RawRow(line, problems=(FieldError(
                "_row", "column_count",
                f"has {len(cells)} cells, the header has {len(header)}"),))
            continue
        yield RawRow(line, values={name: value for name, value in zip(header, cells,
                                                                       strict=True) if value})
    if header is None:
        raise FileFormatError("line 1: the file is empty; it needs a header row of column "
                              f"names ({', '.join(COLUMNS)})")


def _jsonl_rows(text: str) -> Iterator[RawRow]:
    # split on \n only: str.splitlines() would also cut at U+2028 and others that JSON strings
    # may hold
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield RawRow(number, problems=(FieldError("_line", "json",
                                                      f"is not valid JSON ({exc.msg})"),))
            continue
        if not isinstance(data, dict):
            yield RawRow(number, problems=(FieldError("_line", "json_object",
                                                      "must be a JSON object"),))
            continue
        yield RawRow(number, values={k: v for k, v in data.items() if v not in ("", None)})
