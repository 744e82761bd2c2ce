"""Deterministic identifiers, so a re-run maps every row to the job it made before. Pure.

- A campaign's id is given (``--id``) or derived from the file's bytes: the same file is the
  same campaign.
- A job's id is derived from its campaign id and the row's key (its reference, else its
  parameters): the same row is the same job, whatever line it is on.
"""

from __future__ import annotations

import hashlib

from unsign_worker.producers.campaign.validate import ValidRow
from unsign_worker.store.job import CAMPAIGN_ID_RE


def campaign_id_for(content: bytes) -> str:
    """``c-`` and 12 hex digits of the file's SHA-256."""
    return "c-" + hashlib.sha256(content).hexdigest()[:12]


def check_campaign_id(campaign_id: str) -> str | None:
    """None if ``campaign_id`` is acceptable, else the rule it breaks."""
    if not CAMPAIGN_ID_RE.fullmatch(campaign_id):
        return ("must be 1 to 48 letters, digits, '_', '.' or '-', starting with a letter or "
                "digit")
    return None


def job_id_for(campaign_id: str, row: ValidRow) -> str:
    """32 hex digits naming the row's job within the campaign."""
    raw = f"{campaign_id}\x1f{row.key}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]
