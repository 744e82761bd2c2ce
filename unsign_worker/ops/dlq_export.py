"""The dead-letter queue as a file: JSON lines (the ``dlq show --json`` shape: times in epoch
seconds) or CSV for a spreadsheet (times in ISO 8601 UTC, ``2026-12-07T23:19:50Z``). Used by
``unsign-worker dlq export`` and the console's CSV download.

Entries hold only masked data; every text cell still goes through ``mask_text`` (a reason or a
note could quote an address) and CSV cells are neutralised against formula injection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO, Any

from unsign_worker.producers.reports import iso_time, neutralise_cell
from unsign_worker.protocol.masking import mask_text
from unsign_worker.store.deadletter import Entry

EXPORT_COLUMNS = ("job_id", "kind", "code", "category", "en", "zh", "advice", "reason",
                  "attempts", "identity", "campaign", "reference", "dead_lettered_at", "job")
#: The columns holding a time: epoch seconds in the entry, ISO 8601 UTC in the file.
TIME_COLUMNS = frozenset({"dead_lettered_at", "resolved_at"})


def csv_cells(data: dict[str, Any], columns: Iterable[str] = EXPORT_COLUMNS) -> list[str]:
    row = dict(data)
    for column in TIME_COLUMNS & row.keys():
        row[column] = iso_time(row[column])
    if not isinstance(row.get("job"), str):
        row["job"] = json.dumps(row.get("job") or {}, ensure_ascii=False)
    return [neutralise_cell(mask_text("" if row.get(c) is None else str(row[c])))
            for c in columns]


def write(entries: Iterable[Entry], handle: IO[str], *, fmt: str = "csv",
          extra: dict[str, dict[str, Any]] | None = None) -> int:
    """Write ``entries``; ``extra`` adds columns per job id (e.g. the journal). Returns rows."""
    extra = extra or {}
    extra_columns = sorted({c for cols in extra.values() for c in cols})
    writer = csv.writer(handle) if fmt == "csv" else None
    if writer:
        writer.writerow([*EXPORT_COLUMNS, *extra_columns])
    count = 0
    for entry in entries:
        data = {**entry.as_dict(), **extra.get(entry.job_id, {})}
        if writer:
            writer.writerow(csv_cells(data, [*EXPORT_COLUMNS, *extra_columns]))
        else:
            handle.write(json.dumps(data, ensure_ascii=False) + "\n")
        count += 1
    return count
