"""Reading a round's records at its end into a :class:`~rehearsal.records.History`: the
gateway's request log, the hook's calls, the application's entries (mapped to their jobs), the
campaign's job list and counters, and every job record (as the administrator, through the
Sentinels).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from rehearsal.records import (
    TERMINAL_STATES,
    FaultWindow,
    GatewayRequest,
    History,
    HookCall,
    JobRecord,
)
from rehearsal.services import KEYS
from rehearsal.stage import PRODUCER
from unsign_worker.store.campaigns import CampaignStore

#: the placeholder job id of an application entry no worker ever took
UNTAKEN = "entry-never-taken:"


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return found


def gateway_requests(path: Path, hosts_by_address: dict[str, str]) -> list[GatewayRequest]:
    return [GatewayRequest.from_log(e, hosts_by_address.get(e.get("peer", ""), e.get("peer", "")))
            for e in jsonl(path)]


def hook_calls(path: Path) -> list[HookCall]:
    return [HookCall(key=e["key"], job_id=e.get("job_id", ""), agreement=e.get("reference", ""),
                     at=float(e["at"])) for e in jsonl(path)]


def enqueued(store: redis.Redis, campaign_id: str, app_file: Path) -> list[str]:
    """The campaign's job ids, and the application's (an entry no worker bound to a job is
    listed as ``entry-never-taken:<entry id>``)."""
    ids = [j for chunk in CampaignStore(store, KEYS).job_ids(campaign_id) for j in chunk]
    entries = [e["entry"] for e in jsonl(app_file)]
    pipe = store.pipeline(transaction=False)
    for entry in entries:
        pipe.get(KEYS.producer_entry(PRODUCER, entry))
    for entry, job_id in zip(entries, pipe.execute(), strict=True):
        ids.append(job_id.decode() if job_id else f"{UNTAKEN}{entry}")
    return ids


def _float(raw: dict[bytes, bytes], name: str) -> float | None:
    value = raw.get(name.encode())
    try:
        return float(value) if value else None
    except ValueError:
        return None


def job_records(store: redis.Redis, job_ids: Iterable[str]) -> dict[str, JobRecord]:
    ids = [j for j in job_ids if not j.startswith(UNTAKEN)]
    pipe = store.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(KEYS.job(job_id))
    records = {}
    for job_id, raw in zip(ids, pipe.execute(), strict=True):
        if not raw:
            continue
        state = raw.get(b"state", b"").decode()
        finished = _float(raw, "finished_at")
        if finished is None and state in TERMINAL_STATES:
            finished = _float(raw, "updated_at")
        records[job_id] = JobRecord(job_id=job_id, state=state,
                                    agreement=raw.get(b"reference", b"").decode(),
                                    campaign=raw.get(b"campaign", b"").decode(),
                                    created_at=_float(raw, "created_at"), finished_at=finished)
    return records


def open_jobs(store: redis.Redis, job_ids: list[str]) -> int:
    """How many of ``job_ids`` are not terminal (an untaken entry counts as open)."""
    ids = [j for j in job_ids if not j.startswith(UNTAKEN)]
    pipe = store.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(KEYS.job(job_id), "state")
    states = pipe.execute()
    untaken = len(job_ids) - len(ids)
    return untaken + sum(1 for s in states if (s or b"").decode() not in TERMINAL_STATES)


def campaign_counts(store: redis.Redis, campaign_id: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = store.hgetall(KEYS.campaign_counts(campaign_id))  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def history(*, store: redis.Redis, hosts_by_address: dict[str, str],
            campaign_id: str, ids: list[str], initially_signed: frozenset[str],
            faults: list[FaultWindow], bound: float, observed_at: float,
            request_log: Path, hook_file: Path) -> History:
    return History(requests=gateway_requests(request_log, hosts_by_address),
                   hooks=hook_calls(hook_file), jobs=job_records(store, ids), enqueued=ids,
                   campaign_counts={campaign_id: campaign_counts(store, campaign_id)},
                   initially_signed=initially_signed, faults=faults, bound=bound,
                   observed_at=observed_at)
