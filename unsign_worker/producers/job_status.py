"""A job's status as its record, or its producer's view of it, shows it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unsign_worker.protocol.masking import mask_params
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage, ride_out
from unsign_worker.store.states import FAILURE_STATES, TERMINAL_STATES, JobState


@dataclass(frozen=True)
class JobStatus:
    """A job as its record in Redis shows it; no personal data except in ``params_masked``."""

    job_id: str
    state: str
    code: str = ""
    reason: str = ""
    attempts: int = 0
    campaign: str = ""
    reference: str = ""
    original: str = ""
    created_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    params_masked: dict[str, object] | None = None
    #: the producer whose entry made the job ("" for the operator's and campaigns' jobs)
    producer: str = ""

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        return self.state in (JobState.UNSIGNED, JobState.ALREADY_UNSIGNED)

    @property
    def is_failure(self) -> bool:
        return self.state in FAILURE_STATES

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``job show --json`` (see docs/cli.md)."""
        return {"job_id": self.job_id, "state": self.state, "terminal": self.is_terminal,
                "code": self.code, "reason": self.reason, "attempts": self.attempts,
                "campaign": self.campaign, "reference": self.reference,
                "original": self.original, "created_at": self.created_at,
                "updated_at": self.updated_at, "finished_at": self.finished_at,
                "params": self.params_masked or {}, "producer": self.producer}

    @classmethod
    def from_record(cls, job_id: str, raw: dict[bytes, bytes]) -> JobStatus:
        rec = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}

        def num(name: str) -> float | None:
            try:
                return float(rec[name]) if rec.get(name) else None
            except ValueError:
                return None

        try:
            params = json.loads(rec.get("params") or "{}")
        except json.JSONDecodeError:
            params = {}
        return cls(job_id=job_id, state=rec.get("state", ""), code=rec.get("code", ""),
                   reason=rec.get("reason", ""), attempts=int(rec.get("attempts") or 0),
                   campaign=rec.get("campaign", ""), reference=rec.get("reference", ""),
                   original=rec.get("original", ""), created_at=num("created_at"),
                   updated_at=num("updated_at"), finished_at=num("finished_at"),
                   params_masked=mask_params(params) if isinstance(params, dict) else {},
                   producer=rec.get("producer", ""))


def wait_for_end(look: Callable[[], JobStatus | None], *, what: str, timeout: float,
                 poll_seconds: float) -> JobStatus:
    """Call ``look`` every ``poll_seconds`` until the status it returns is terminal; ``what``
    names the job (or request) in errors. A Redis outage (restart, failover) is waited out
    within ``timeout``: logged once as "Redis unavailable since …, retrying", then polling
    carries on.

    Raises:
        TimeoutError: not terminal in time (the job goes on; wait again later), Redis included:
            still unavailable when the time was up.
        KeyError: ``look`` found nothing.
    """
    deadline = time.monotonic() + timeout
    outage = Outage("Redis")
    while True:
        try:
            found = ride_out(look, outage, deadline=deadline)
        except OUTAGE_ERRORS as exc:
            raise TimeoutError(f"{what}: Redis still unavailable after {timeout:g}s "
                               f"({type(exc).__name__}); the job goes on") from exc
        if found is None:
            raise KeyError(f"no {what}")
        if found.is_terminal:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} is still {found.state} after {timeout:g}s")
        time.sleep(poll_seconds)
