"""The files a campaign gives back: the report (one row per input row) and the rejects file.

Both are CSV for spreadsheets: every cell is neutralised against formula injection, and
personal data (e-mails, account numbers) is masked unless the merchant asks for its own data
(``show_personal_data``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from unsign_worker.producers.campaign.rows import COLUMNS
from unsign_worker.producers.campaign.validate import RejectedRow
from unsign_worker.producers.reports import iso_time, neutralise_cell, open_output
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.protocol.masking import mask_params
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.store.campaigns import CampaignStore

REPORT_COLUMNS = ("line", "reference", "identity", "outcome", "code", "attempts",
                  "finished_at")
REJECT_COLUMNS = ("line", "reference", "field", "rule", "message", *COLUMNS[:-1])
#: Outcome of a row the validator refused (no job was made).
INVALID = "invalid"
#: Outcome of a job whose record has expired (kept JOB_RETENTION_SECONDS after it ended).
EXPIRED = "expired"
_CHUNK = 1000


def identity_text(params: dict[str, Any], *, show_personal_data: bool = False) -> str:
    """Which agreement the parameters name (``customer_code:C1``,
    ``type_code:BUSI01/2088********0156``), masked unless asked otherwise."""
    try:
        identity = UnsignRequest.from_mapping(params).identity("")
    except (ValidationError, TypeError):
        shown = params if show_personal_data else mask_params(params)
        return json.dumps(shown, ensure_ascii=False, sort_keys=True)
    if show_personal_data:
        return f"{identity.kind}:{'/'.join(identity.values)}"
    return identity.identity_masked


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` (dicts) as CSV with a header; returns the rows written."""
    with open_output(path) as handle:
        return write_csv_to(handle, columns, rows)


def write_csv_to(handle: IO[str], columns: Sequence[str], rows: Iterable[dict[str, Any]]
                 ) -> int:
    """The same on an open text stream (the console's download)."""
    count = 0
    writer = csv.writer(handle)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise_cell("" if row.get(c) is None else str(row.get(c)))
                         for c in columns])
        count += 1
    return count


def reject_rows(rejects: Iterable[RejectedRow], *, show_personal_data: bool = False
                ) -> Iterator[dict[str, Any]]:
    """One CSV row per broken rule, with the row's values (masked unless asked otherwise)."""
    for reject in rejects:
        values = dict(reject.values or {})
        values.pop("reference", None)
        shown = values if show_personal_data else mask_params(values)
        for error in reject.errors:
            yield {"line": reject.line, "reference": reject.reference, "field": error.field,
                   "rule": error.rule, "message": error.message, **shown}


def report_rows(store: CampaignStore, campaign_id: str, *, show_personal_data: bool = False
                ) -> Iterator[dict[str, Any]]:
    """One row per input row, in file order: the jobs, and the rows the validator refused."""
    rejects = sorted(store.rejects(campaign_id), key=lambda r: r["line"])
    pending = iter(rejects)
    upcoming = next(pending, None)
    fields = ("line", "state", "code", "attempts", "finished_at", "reference", "params")
    for ids in store.job_ids(campaign_id, chunk=_CHUNK):
        pipe = store.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(store.keys.job(job_id), *fields)
        for raw in pipe.execute():
            rec = dict(zip(fields, (v.decode("utf-8", "replace") if v is not None else None
                                    for v in raw), strict=True))
            line = int(rec["line"]) if rec["line"] else None
            while upcoming is not None and line is not None and upcoming["line"] < line:
                yield _invalid_row(upcoming)
                upcoming = next(pending, None)
            if rec["state"] is None:
                yield {"line": "", "reference": "", "identity": "", "outcome": EXPIRED,
                       "code": "", "attempts": "", "finished_at": ""}
                continue
            params = json.loads(rec["params"] or "{}")
            yield {"line": line or "", "reference": rec["reference"] or "",
                   "identity": identity_text(params, show_personal_data=show_personal_data),
                   "outcome": rec["state"], "code": rec["code"] or "",
                   "attempts": rec["attempts"] or 0, "finished_at": iso_time(rec["finished_at"])}
    while upcoming is not None:
        yield _invalid_row(upcoming)
        upcoming = next(pending, None)


def _invalid_row(reject: dict[str, Any]) -> dict[str, Any]:
    codes = "; ".join(f"{e['field']}:{e['rule']}" for e in reject.get("errors", []))
    return {"line": reject["line"], "reference": reject.get("reference", ""), "identity": "",
            "outcome": INVALID, "code": codes, "attempts": 0, "finished_at": ""}


class RejectsFile:
    """The rejects file, written row by row as refused rows are found (opened at the first),
    and the first problems kept for the terminal."""

    def __init__(self, path: str, show_personal_data: bool, *, keep: int = 20) -> None:
        self.path = path
        #: how many problems are kept for the terminal
        self.keep = keep
        self.show_personal_data = show_personal_data
        self.rows = 0
        self.problems = 0
        self.shown: list[Any] = []
        self._handle: Any = None
        self._writer: Any = None

    def add(self, reject: RejectedRow) -> None:
        """Write one refused row. Raises: OutputFileError if the file cannot be opened."""
        if self._handle is None:
            self._handle = open_output(self.path)
            self._writer = csv.writer(self._handle)
            self._writer.writerow(REJECT_COLUMNS)
        self.rows += 1
        self.problems += len(reject.errors)
        self.shown.extend(reject.errors[:self.keep - len(self.shown)])
        for row in reject_rows([reject], show_personal_data=self.show_personal_data):
            self._writer.writerow([neutralise_cell("" if row.get(c) is None else str(row[c]))
                                   for c in REJECT_COLUMNS])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """The file as a whole was refused: leave no partial rejects file behind."""
        if self._handle is not None:
            self.close()
            Path(self.path).unlink(missing_ok=True)
        self.rows = 0
