"""Reading a campaign file: CSV with a header row, or JSON lines; UTF-8 or GBK.

CSV: the header names the columns, from ``customer_code, type_code, trans_account_out,
biz_type, user_email`` and an optional ``reference``, in any order; an empty cell means "not
given". JSON lines: one object per line with the same names as keys and strings as values.
Blank lines are skipped. Problems of the whole file (unreadable, wrong encoding, bad header)
raise :class:`FileFormatError`; problems of one row travel with the row, so the good rows
still go. Hostile files stay harmless: :func:`open_rows` reads one line at a time, a line over
``MAX_LINE_BYTES`` is refused unread, a cell over the CSV module's limit or JSON nested too
deeply is a row problem, and a JSON object naming a key twice is refused (which one counts
would be a guess).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsign_worker.producers.campaign.lines import (
    ENCODINGS,
    MAX_LINE_BYTES,
    FileFormatError,
    LineSource,
    decode_all,
    file_lines,
    text_lines,
)
from unsign_worker.protocol.exceptions import FieldError, shown_name
from unsign_worker.protocol.param_rules import BUSINESS_FIELDS

__all__ = ["COLUMNS", "ENCODINGS", "FileFormatError", "RawRow", "decode", "file_format",
           "open_rows", "read_rows"]

#: Every column a campaign file may have.
COLUMNS = (*BUSINESS_FIELDS, "reference")
#: File name endings read as JSON lines; anything else is read as CSV.
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
#: Characters of a bad column name quoted in an error message.
SHOWN_NAME_CHARS = 40


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
    """The file's text. Raises: FileFormatError naming the first undecodable line, or the
    encoding rule broken."""
    return decode_all(data, encoding)


def read_rows(text: str, fmt: str) -> Iterator[RawRow]:
    """The rows of a decoded campaign file. Raises: FileFormatError (header problems)."""
    return _rows(text_lines(text, universal=fmt == "csv"), fmt)


def open_rows(path: str | Path, fmt: str, encoding: str) -> Iterator[RawRow]:
    """The rows of a campaign file, read and decoded as they are consumed (memory bounded by
    :data:`MAX_LINE_BYTES`, not by the file). Raises: FileFormatError, while iterating."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed when the generator ends
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        yield from _rows(file_lines(handle, encoding, universal=fmt == "csv"), fmt)


def _rows(lines: LineSource, fmt: str) -> Iterator[RawRow]:
    return _jsonl_rows(lines) if fmt == "jsonl" else _csv_rows(lines)


def _too_long(line: int) -> RawRow:
    return RawRow(line, problems=(FieldError(
        "_line", "max_line_length", f"is longer than {MAX_LINE_BYTES} bytes (a campaign row "
        "is a few hundred); the line was not read"),))


def _shown(name: str) -> str:
    return shown_name(name)


def _check_header(header: list[str], line: int) -> list[str]:
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if name not in COLUMNS:
            raise FileFormatError(f"line {line}, column {position}: unknown column "
                                  f"{_shown(name)} (allowed: {', '.join(COLUMNS)})")
        if names.count(name) > 1:
            raise FileFormatError(f"line {line}: column {name!r} appears more than once")
    if not any(name in BUSINESS_FIELDS for name in names):
        raise FileFormatError(f"line {line}: the header names no parameter column "
                              f"({', '.join(BUSINESS_FIELDS)})")
    return names


def _csv_rows(lines: LineSource) -> Iterator[RawRow]:
    reader = csv.reader(lines)
    header: list[str] | None = None
    last_line = 0
    while True:
        try:
            cells = next(reader, None)
            problem = None
        except csv.Error as exc:  # a field over the csv module's limit, a stray quote...
            cells, problem = [], str(exc)
        line = last_line + 1
        last_line = reader.line_num
        while lines.oversized:
            too_long = lines.oversized.popleft()
            if header is None:
                raise FileFormatError(f"line {too_long}: longer than {MAX_LINE_BYTES} bytes "
                                      "before any header row; is this a campaign file?")
            yield _too_long(too_long)
        if cells is None:
            break
        if problem is not None:
            if header is None:
                raise FileFormatError(f"line {line}: the header row cannot be read ({problem})")
            yield RawRow(line, problems=(FieldError("_row", "csv",
                                                    f"cannot be read as CSV ({problem})"),))
            continue
        if not "".join(cells).strip():  # no cell, or only blank ones
            continue
        if header is None:
            header = _check_header(cells, line)
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


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _jsonl_rows(lines: LineSource) -> Iterator[RawRow]:
    # lines end at \n only: str.splitlines() would also cut at U+2028 and others that JSON
    # strings may hold
    for raw in lines:
        number = lines.number
        if lines.oversized:
            lines.oversized.popleft()
            yield _too_long(number)
            continue
        raw = raw.removesuffix("\n").removesuffix("\r")
        if not raw.strip():
            continue
        try:
            data = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            yield RawRow(number, problems=(FieldError(
                "_line", "duplicate_key", f"names {_shown(str(exc))} more than once"),))
            continue
        except RecursionError:
            yield RawRow(number, problems=(FieldError("_line", "json",
                                                      "is not valid JSON (nested too deeply)"),))
            continue
        except ValueError as exc:  # JSONDecodeError, or a number too long to convert
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number too long"
            yield RawRow(number, problems=(FieldError("_line", "json",
                                                      f"is not valid JSON ({reason})"),))
            continue
        if not isinstance(data, dict):
            yield RawRow(number, problems=(FieldError("_line", "json_object",
                                                      "must be a JSON object"),))
            continue
        if "\\u" in raw and (bad := _surrogates(data)):
            yield RawRow(number, problems=bad)
            continue
        yield RawRow(number, values={k: v for k, v in data.items() if v not in ("", None)})


def _surrogates(data: dict[str, Any]) -> tuple[FieldError, ...]:
    """Problems for keys and values holding a lone surrogate (only a JSON ``\\u`` escape can
    make one): such text cannot be stored, hashed or written out as UTF-8."""
    bad: list[FieldError] = []
    for key, value in data.items():
        for text, name in ((key, "_line"), (value, key)):
            if isinstance(text, str) and not _encodable(text):
                shown = name if name.strip() and _encodable(name) else "_line"
                bad.append(FieldError(shown, "unicode",
                                      "is not valid Unicode text (a lone surrogate)"))
                break
    return tuple(bad)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
