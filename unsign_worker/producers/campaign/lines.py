"""The lines of a campaign file, decoded one at a time, so memory stays bounded by the longest
line allowed, not by the file.

A campaign row is a few hundred bytes; a line longer than :data:`MAX_LINE_BYTES` is not read
into memory: it is replaced by an empty line and its number recorded, so the reader can refuse
that row (naming its line) while the good rows still pass. Encoding problems fail the whole
file, naming the first line that does not decode, or the rule broken (a UTF-16 file, a UTF-8
file given as GBK). Pure apart from reading the handle it is given.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

from unsign_worker.protocol.exceptions import UnsignError

#: Longest line read, in bytes (characters for text already in memory).
MAX_LINE_BYTES = 64 * 1024
#: Encodings a campaign file may be in.
ENCODINGS = ("utf-8", "gbk")
#: UTF-8 continuation bytes a file given as GBK must hold before it is called UTF-8: four
#: Chinese characters. Random GBK text of that length decodes as UTF-8 about once in 200,000.
UTF8_EVIDENCE_BYTES = 8
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BARE_CR = re.compile(r"\r(?!\n)")


class FileFormatError(UnsignError):
    """The file as a whole cannot be read; the message names the line and the rule."""


class LineSource(Iterator[str]):
    """Decoded lines (endings kept). A line over the limit comes out as ``"\\n"`` and its
    1-based number is appended to :attr:`oversized`, for the reader to report."""

    def __init__(self, lines: Iterator[str | None]) -> None:
        self._lines = lines
        self.number = 0
        self.oversized: deque[int] = deque()

    def __iter__(self) -> LineSource:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        if line is None:
            self.oversized.append(self.number)
            return "\n"
        return line


def text_lines(text: str, *, universal: bool) -> LineSource:
    """Lines of text already in memory. ``universal``: a bare ``\\r`` also ends a line (what
    the CSV reader expects); otherwise only ``\\n`` does (JSON lines)."""
    raw: Iterator[str] = iter(io.StringIO(text, newline="")) if universal else _split_lf(text)
    return LineSource(None if len(line) > MAX_LINE_BYTES else line for line in raw)


def _split_lf(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def file_lines(handle: BinaryIO, encoding: str, *, universal: bool) -> LineSource:
    """Lines of a binary file, decoded one at a time.

    Raises (while iterating): FileFormatError for an unknown encoding, a UTF-16 file, a line
    that does not decode, or (given ``gbk``) a file that is UTF-8 text.
    """
    check_encoding(encoding)
    return LineSource(_decoded(handle, encoding, universal))


def check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise FileFormatError(f"--encoding: must be one of {', '.join(ENCODINGS)}")


def _decoded(handle: BinaryIO, encoding: str, universal: bool) -> Iterator[str | None]:
    number = 0
    utf8_evidence = 0
    all_utf8 = True
    for raw in _byte_lines(handle):
        number += 1
        if raw is None:
            yield None
            continue
        if number == 1:
            _check_start(raw, encoding)
            if encoding == "utf-8":
                raw = raw.removeprefix(_UTF8_BOM)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            other = "gbk" if encoding == "utf-8" else "utf-8"
            raise FileFormatError(f"line {number}: not valid {encoding} (try --encoding "
                                  f"{other})") from None
        if encoding == "gbk" and all_utf8 and not raw.isascii():
            try:
                utf8_evidence += len(raw) - len(raw.decode("utf-8"))
            except UnicodeDecodeError:
                all_utf8 = False
        if universal and _has_bare_cr(text):
            yield from _split_bare_cr(text)
        else:
            yield text
    if all_utf8 and utf8_evidence >= UTF8_EVIDENCE_BYTES:
        raise FileFormatError(_UTF8_AS_GBK)


_UTF8_AS_GBK = ("the file is UTF-8 text (every line decodes as UTF-8, with Chinese characters), "
                "not gbk: use --encoding utf-8")


def _check_start(first: bytes, encoding: str) -> None:
    if first.startswith(_UTF16_BOMS):
        raise FileFormatError("line 1: the file is UTF-16 (it starts with a UTF-16 byte order "
                              "mark); save it as UTF-8 or GBK")
    if encoding == "gbk" and first.startswith(_UTF8_BOM):
        raise FileFormatError("line 1: the file starts with a UTF-8 byte order mark, so it is "
                              "UTF-8, not gbk: use --encoding utf-8")


def looks_utf8_given_as_gbk(data: bytes) -> bool:
    """True when ``data`` (given as GBK) is UTF-8 text with enough Chinese characters to tell."""
    if data.isascii():
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(data) - len(text) >= UTF8_EVIDENCE_BYTES


def decode_all(data: bytes, encoding: str) -> str:
    """The whole file's text, under the same rules as :func:`file_lines`."""
    check_encoding(encoding)
    _check_start(data[:4], encoding)
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else "gbk")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        other = "gbk" if encoding == "utf-8" else "utf-8"
        raise FileFormatError(f"line {line}: not valid {encoding} (try --encoding {other})"
                              ) from None
    if encoding == "gbk" and looks_utf8_given_as_gbk(data):
        raise FileFormatError(_UTF8_AS_GBK)
    return text


def _byte_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Lines split on ``\\n`` (safe in UTF-8 and GBK: no multi-byte character holds that byte);
    None for a line over the limit, whose rest is skipped unread into memory."""
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield raw


def _has_bare_cr(line: str) -> bool:
    """A ``\\r`` not followed by ``\\n`` (ends a line for the CSV reader), without a regex
    for the common line ending in ``\\r\\n``."""
    first = line.find("\r")
    return first >= 0 and not (first == len(line) - 2 and line.endswith("\n"))


def _split_bare_cr(text: str) -> Iterator[str]:
    start = 0
    for match in _BARE_CR.finditer(text):
        yield text[start:match.end()]
        start = match.end()
    if start < len(text):
        yield text[start:]
