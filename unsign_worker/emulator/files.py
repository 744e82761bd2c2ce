"""The emulator's data set as files: the agreements file it serves and the campaign CSV that
unsigns them (written by ``unsign-worker emulator seed``, the demo and the benchmarks)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from unsign_worker.emulator.seed import CAMPAIGN_COLUMNS, DataSet


def write_agreements(path: str, data: DataSet) -> None:
    """The agreements file: one agreement per line, so it diffs and greps well."""
    lines = ",\n".join("    " + json.dumps(entry, ensure_ascii=False)
                       for entry in data.agreements)
    Path(path).write_text(f'{{\n  "partner": {json.dumps(data.partner)},\n  "agreements": [\n'
                          f"{lines}\n  ]\n}}\n", encoding="utf-8")


def write_campaign(path: str, data: DataSet) -> None:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CAMPAIGN_COLUMNS)
        writer.writeheader()
        writer.writerows(data.rows)


def write_expected(path: str, data: DataSet) -> None:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("reference", "outcome"))
        writer.writerows(data.outcomes.items())
