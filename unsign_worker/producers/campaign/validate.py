"""The campaign row validator: pure, one verdict per row, every problem named by line, field
and rule.

A row is valid when its business parameters pass the interface's rules
(:func:`unsign_worker.protocol.param_rules.params_errors`), its reference passes the reference
rules, and it repeats no earlier row of the file (same reference, or same parameters when it has no
reference): a repeat would map to the same job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from unsign_worker.producers.campaign.rows import RawRow
from unsign_worker.producers.campaign.seen import FirstLines
from unsign_worker.producers.job_input import reference_errors
from unsign_worker.protocol.exceptions import FieldError
from unsign_worker.protocol.param_rules import BUSINESS_FIELDS, params_errors


@dataclass(frozen=True)
class RowError:
    """One broken rule of one row."""

    line: int
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "rule": self.rule,
                "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message} [{self.rule}]"


@dataclass(frozen=True)
class ValidRow:
    line: int
    params: dict[str, str]
    reference: str = ""

    @property
    def key(self) -> str:
        """What names this row within its campaign: the reference, else the parameters."""
        if self.reference:
            return "ref\x1f" + self.reference
        return "row\x1f" + json.dumps(self.params, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class RejectedRow:
    line: int
    errors: tuple[RowError, ...]
    reference: str = ""
    #: the row's values as read (personal data: mask before showing)
    values: dict[str, str] | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON shape, without the row's values (no personal data)."""
        return {"line": self.line, "reference": self.reference,
                "errors": [{"field": e.field, "rule": e.rule, "message": e.message}
                           for e in self.errors]}


def validate_row(row: RawRow, *, charset: str) -> ValidRow | RejectedRow:
    """Check one row; returns it valid (non-empty parameters only) or rejected with every
    broken rule."""
    if row.problems:  # unreadable: the parameter rules would only add noise
        return RejectedRow(row.line, tuple(RowError(row.line, p.field, p.rule, p.message)
                                           for p in row.problems))
    problems: list[FieldError] = []
    strings: dict[str, str] = {}
    for name, value in row.values.items():
        if name not in _COLUMNS:
            problems.append(_unknown(name))
        elif not isinstance(value, str):
            problems.append(FieldError(name, "type", "must be a string"))
        else:
            strings[name] = value
    reference = strings.pop("reference", "")
    if reference:
        problems.extend(reference_errors(reference))
    problems.extend(params_errors(strings, charset=charset))  # UnsignRequest's rules
    if problems:
        errors = tuple(RowError(row.line, p.field, p.rule, p.message) for p in problems)
        shown = {k: v for k, v in row.values.items() if isinstance(v, str)}
        return RejectedRow(row.line, errors, reference=reference, values=shown)
    # the request's business_params(): every given parameter, in the document's order
    return ValidRow(row.line, {n: strings[n] for n in BUSINESS_FIELDS if n in strings},
                    reference)


#: The names a row may hold.
_COLUMNS = frozenset((*BUSINESS_FIELDS, "reference"))
#: Characters of an unknown field's name kept as the field of its error.
SHOWN_NAME_CHARS = 40


def _unknown(name: str) -> FieldError:
    """An unknown key of a JSON line, named (an empty or very long name is summarised)."""
    if not name.strip():
        return FieldError("_line", "unknown_field", f"has the key {name!r}, which is not a "
                          "column of a campaign file")
    shown = name if len(name) <= SHOWN_NAME_CHARS else name[:SHOWN_NAME_CHARS] + "..."
    if not shown.isprintable():  # an escape sequence must not reach the operator's terminal
        shown = shown.encode("unicode_escape").decode("ascii")
    return FieldError(shown, "unknown_field", "is not a column of a campaign file")


def validate_rows(rows: Iterable[RawRow], *, charset: str
                  ) -> Iterator[ValidRow | RejectedRow]:
    """:func:`validate_row` for every row, plus the file-wide rule that no row repeats an
    earlier one."""
    seen = FirstLines()  # compact: a million rows cost tens of megabytes, not hundreds
    for row in rows:
        verdict = validate_row(row, charset=charset)
        if isinstance(verdict, ValidRow):
            first = seen.first_line(verdict.key, verdict.line)
            if first != verdict.line:
                field = "reference" if verdict.reference else "_row"
                what = "reference" if verdict.reference else "parameters"
                verdict = RejectedRow(verdict.line, (RowError(
                    verdict.line, field, "unique",
                    f"repeats the {what} of line {first}"),), reference=verdict.reference,
                    values={**verdict.params, "reference": verdict.reference})
        yield verdict
