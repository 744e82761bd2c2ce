"""The audit log of every attempt as a file: JSON lines or CSV (``unsign-worker audit export``).

Audit entries hold only masked data (the worker masks them when it writes them); CSV cells are
still neutralised against formula injection.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

import redis

from unsign_worker.producers.reports import neutralise_cell
from unsign_worker.store.keys import Keys

AUDIT_COLUMNS = ("id", "time", "job_id", "identity", "attempt", "params", "http_status", "code",
                 "duration_ms", "outcome", "campaign", "reference", "reason", "may_have_reached",
                 "original")
#: entries read per round trip
PAGE = 1000


def audit_rows(client: redis.Redis, keys: Keys, *, campaign: str = "") -> Iterator[dict[str, Any]]:
    """Every audit entry, oldest first, with its stream id as ``id`` (only ``campaign``'s if
    given), read a page at a time."""
    last = "-"
    while True:
        batch = client.xrange(keys.audit, min=last, max="+", count=PAGE)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return
        for entry_id, fields in batch:
            row: dict[str, Any] = json.loads(fields[b"data"])
            row["id"] = entry_id.decode()
            if not campaign or row.get("campaign") == campaign:
                yield row
        last = batch[-1][0].decode()


def write(rows: Iterator[dict[str, Any]], handle: IO[str], *, fmt: str = "jsonl") -> int:
    """Write ``rows`` as ``jsonl`` or ``csv``; returns how many."""
    writer = csv.writer(handle) if fmt == "csv" else None
    if writer:
        writer.writerow(AUDIT_COLUMNS)
    count = 0
    for row in rows:
        if writer:
            writer.writerow([neutralise_cell(_cell(row.get(c))) for c in AUDIT_COLUMNS])
        else:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
