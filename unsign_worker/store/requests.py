"""The typed requests the store's scripts take: each field is one a script reads, by name.

A caller builds a :class:`SettleRequest` (the outcome of a claimed job) or a
:class:`FinishRequest` (the end of a job that holds no claim) and hands it to
:class:`~unsign_worker.store.claims.DedupStore`, which calls the script with the request's
keys and arguments by the names the script declares (``script_keys`` / ``script_args``;
``store/lua/settle.lua``, ``store/lua/finish_unclaimed.lua``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from unsign_worker.store.keys import NO_CAMPAIGN, Keys
from unsign_worker.store.states import JobState


@dataclass(frozen=True, kw_only=True)
class ClaimRequest:
    """One job's claim of its agreement (``store/lua/claim.lua``)."""

    job_id: str
    #: the agreement's key (a digest: no personal data)
    identity: str
    identity_masked: str
    params_json: str
    campaign: str
    reference: str
    #: the producer whose entry made the job ("" for none)
    producer: str = ""


@dataclass(frozen=True, kw_only=True)
class SettleRequest:
    """The outcome of a claimed job, written only if ``token`` is still the agreement's."""

    job_id: str
    #: the agreement's key
    identity: str
    campaign: str
    token: str
    #: epoch seconds of the write
    now: float
    state: JobState
    code: str
    reason: str
    attempts: int
    reached: bool
    #: retrying: how long the job's lease lasts from the write (seconds, on Redis's clock)
    lease_seconds: float = 0.0
    first_failure_at: float | None = None
    #: hand-backs to the broker so far, this one included (the retry count)
    retries: int = 0
    audit: dict[str, Any]
    retention_seconds: int
    audit_maxlen: int
    events_maxlen: int
    #: seconds from the write (on Redis's clock) until the success hook is due if nobody runs
    #: it first
    hook_delay: float
    close_breaker: bool = False
    #: success: the entry of the events stream
    event: dict[str, Any] | None = None
    #: success with a hook configured: the hook record's event
    hook: dict[str, Any] | None = None
    #: dead-lettered: the dead-letter entry
    dlq: dict[str, Any] | None = None
    #: the producer whose entry made the job ("" for none): its view is kept up to date
    producer: str = ""

    def script_keys(self, keys: Keys, minute: int) -> dict[str, str]:
        """The settle script's keys by name (``minute``: the counts' minute)."""
        return {
            "job": keys.job(self.job_id), "agreement": keys.agreement(self.identity),
            "leases": keys.leases, "audit": keys.audit, "events": keys.events,
            "counts": keys.counts,
            "campaign_counts": keys.campaign_counts(self.campaign or NO_CAMPAIGN),
            "campaign_progress": keys.campaign_progress(self.campaign or NO_CAMPAIGN),
            "rate": keys.rate(minute), "hook": keys.hook(self.identity), "hooks": keys.hooks,
            "dlq": keys.dlq, "dlq_entry": keys.dlq_entry(self.job_id), "breaker": keys.breaker,
            "breaker_probe": keys.breaker_probe, "parked": keys.parked,
            "view": keys.producer_job(self.producer, self.job_id),
        }

    def script_args(self) -> dict[str, str]:
        """The settle script's arguments by name: the request as JSON."""
        return {"request": self.script_arg()}

    def script_arg(self) -> str:
        """The JSON argument of the settle script."""
        out: dict[str, Any] = {
            "job_id": self.job_id, "token": self.token, "now": self.now,
            "state": str(self.state), "code": self.code, "reason": self.reason,
            "attempts": self.attempts, "reached": "1" if self.reached else "0",
            "lease_seconds": self.lease_seconds,
            "first_failure_at": repr(self.first_failure_at) if self.first_failure_at else "",
            "retries": self.retries, "terminal": self.state.is_terminal,
            "success": self.state.is_success, "audit": self.audit,
            "retention": self.retention_seconds, "audit_maxlen": self.audit_maxlen,
            "events_maxlen": self.events_maxlen, "hook_identity": self.identity,
            "hook_delay": self.hook_delay, "close_breaker": self.close_breaker,
            "campaign": self.campaign, "producer": self.producer,
        }
        for name in ("event", "hook", "dlq"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return json.dumps(out)


@dataclass(frozen=True, kw_only=True)
class FinishRequest:
    """The end of a job that holds no claim (invalid, duplicate, cancelled)."""

    job_id: str
    #: the agreement's key ("" when the parameters did not name one)
    identity: str
    identity_masked: str
    campaign: str
    reference: str
    params_json: str
    now: float
    state: JobState
    code: str
    reason: str
    #: duplicate: the job that holds or unsigned the agreement
    original: str = ""
    audit: dict[str, Any]
    retention_seconds: int
    audit_maxlen: int
    #: the producer whose entry made the job ("" for none)
    producer: str = ""

    def script_keys(self, keys: Keys, minute: int) -> dict[str, str]:
        """The finish script's keys by name (``minute``: the counts' minute)."""
        return {
            "job": keys.job(self.job_id), "audit": keys.audit, "counts": keys.counts,
            "campaign_counts": keys.campaign_counts(self.campaign or NO_CAMPAIGN),
            "campaign_progress": keys.campaign_progress(self.campaign or NO_CAMPAIGN),
            "rate": keys.rate(minute), "leases": keys.leases,
            "view": keys.producer_job(self.producer, self.job_id),
        }

    def script_args(self) -> dict[str, str]:
        """The finish script's arguments by name: the request as JSON."""
        return {"request": self.script_arg()}

    def script_arg(self) -> str:
        """The JSON argument of the finish script."""
        return json.dumps({
            "job_id": self.job_id, "now": self.now, "state": str(self.state),
            "code": self.code, "reason": self.reason, "original": self.original,
            "identity": self.identity, "identity_masked": self.identity_masked,
            "params": self.params_json, "campaign": self.campaign,
            "reference": self.reference, "retention": self.retention_seconds,
            "audit": self.audit, "audit_maxlen": self.audit_maxlen,
            "producer": self.producer,
        })
