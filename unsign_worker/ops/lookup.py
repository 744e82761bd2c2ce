"""One job as an operator sees it: its record, its attempts (from the audit stream), its
success hook, its dead-letter entry and the operators' actions on it. Masked throughout.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from unsign_worker.ops.actions import ActionLog
from unsign_worker.producers.job_status import JobStatus
from unsign_worker.protocol.masking import mask_params
from unsign_worker.store.deadletter import DeadLetters
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import ProducerRegistry

#: Audit entries read at most when looking for one job's attempts.
AUDIT_SCAN = 20_000
#: Seconds of margin around a job's lifetime when reading the audit stream.
AUDIT_MARGIN_SECONDS = 5.0


def find_job_id(client: redis.Redis, keys: Keys, query: str, *, producer: str = ""
                ) -> str | None:
    """A job id from a job id or a reference: ``producer``'s, else the operator's (``P ref:``),
    else the one producer's that has it (None if none, or several producers have it)."""
    query = query.strip()
    if not query:
        return None
    if producer:
        found = client.get(keys.producer_ref(producer, query))
        return found.decode() if found else None
    if client.exists(keys.job(query)):
        return query
    found = client.get(keys.ref(query))
    if found:
        return found.decode()
    names = list(ProducerRegistry(client, keys).all())
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.producer_ref(name, query))
    matches = {bound.decode() for bound in pipe.execute() if bound}
    return matches.pop() if len(matches) == 1 else None


def attempts(client: redis.Redis, keys: Keys, job_id: str, *, since: float | None,
             until: float | None) -> list[dict[str, Any]]:
    """The audit entries of one job, oldest first (masked parameters, as the worker wrote)."""
    low = f"{int(((since or 0) - AUDIT_MARGIN_SECONDS) * 1000)}" if since else "-"
    high = f"{int((until + AUDIT_MARGIN_SECONDS) * 1000)}" if until else "+"
    out = []
    for _, fields in client.xrange(keys.audit, min=low, max=high, count=AUDIT_SCAN):
        try:
            entry = json.loads(fields[b"data"])
        except (KeyError, ValueError):
            continue
        if entry.get("job_id") == job_id:
            if isinstance(entry.get("params"), dict):
                entry["params"] = mask_params(entry["params"])
            out.append(entry)
    return out


def hook_state(client: redis.Redis, keys: Keys, identity: str) -> dict[str, str]:
    """The success hook of the job's agreement (state, done_at, last_error...), if any."""
    if not identity:
        return {}
    raw = client.hgetall(keys.hook(identity))
    shown = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    shown.pop("event", None)  # the hook's payload: the merchant's data, not for this page
    return shown


def job_view(client: redis.Redis, keys: Keys, job_id: str) -> dict[str, Any] | None:
    """Everything the console's lookup shows about one job, or None."""
    raw = client.hgetall(keys.job(job_id))
    if not raw:
        return None
    status = JobStatus.from_record(job_id, raw)
    identity = raw.get(b"identity", b"").decode()
    entry = DeadLetters(client, keys).get(job_id)
    view = status.as_dict()
    view["attempt_log"] = attempts(client, keys, job_id, since=status.created_at,
                                   until=status.finished_at or status.updated_at)
    view["hook"] = hook_state(client, keys, identity)
    view["dead_letter"] = entry.as_dict() if entry else None
    view["actions"] = [a.as_dict() for a in ActionLog(client, keys).for_target(job_id)]
    return view
