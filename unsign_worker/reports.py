"""Helpers for files people open in spreadsheets: formula injection neutralised."""

from __future__ import annotations

#: A cell starting with one of these is a formula to spreadsheet programs.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """Prefix a would-be formula with a quote so spreadsheets show it as text (OWASP CSV
    injection advice); plain negative numbers are left alone."""
    if value and value.startswith(FORMULA_PREFIXES):
        if value.startswith("-") and value[1:].replace(".", "", 1).isdigit():
            return value
        return "'" + value
    return value
