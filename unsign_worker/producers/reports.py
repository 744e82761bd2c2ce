"""Helpers for files people open in spreadsheets: formula injection neutralised, and output
files (reports, rejects, exports hold personal data) created private and never through a
symlink."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from typing import TextIO

from unsign_worker.protocol.exceptions import UnsignError


def iso_time(epoch: float | str | None) -> str:
    """Epoch seconds as ISO 8601 UTC to the second (``2026-12-07T23:19:50Z``), the form of
    every time in a CSV file; '' for nothing."""
    if epoch in (None, ""):
        return ""
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OutputFileError(UnsignError):
    """An output file cannot be created safely; the message names it and why."""


def open_output(path: str | os.PathLike[str]) -> TextIO:
    """``path`` opened for writing text (CSV-ready: ``newline=""``), readable by its owner only
    (0600, also when it existed) and refused if it is a symlink (another user could point it at
    a file of theirs, or read what it receives).

    Raises:
        OutputFileError: a symlink, a directory, or not writable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputFileError(f"{os.fspath(path)}: is a symbolic link; refusing to write "
                                  "through it (give the real path)") from None
        raise OutputFileError(f"{os.fspath(path)}: cannot be written ({exc.strerror})") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", newline="", encoding="utf-8")

#: A cell starting with one of these is a formula to spreadsheet programs (OWASP, ASVS 1.2.10:
#: the four operators, tab, carriage return, line feed and NUL), plus the full-width forms that
#: some spreadsheets fold to them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", "\uff1d", "\uff0b", "\uff0d",
                    "\uff20")


def neutralise_cell(value: str) -> str:
    """Prefix a would-be formula with a quote so spreadsheets show it as text (OWASP CSV
    injection advice); plain negative numbers are left alone."""
    if value and value.startswith(FORMULA_PREFIXES):
        if value.startswith("-") and value[1:].replace(".", "", 1).isdigit():
            return value
        return "'" + value
    return value
