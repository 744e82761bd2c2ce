"""Helpers for files people open in spreadsheets: formula injection neutralised."""

from __future__ import annotations

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
