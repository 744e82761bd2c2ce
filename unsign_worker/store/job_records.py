"""Writing job records ``P job:<job_id>`` before their messages are sent.

Every write of a job's record is in ``store/``: this module writes a new job's record
(``queued``, by every producer) or the record of a job refused before it was sent
(``rejected``); the claim, settle and finish scripts (``store/claims.py``), the dead-letter
scripts (``store/deadletter.py``) and the message recovery (``store/recovery.py``) write the
rest. ``tests/store/test_job_record_owner.py`` checks that no module outside ``store/`` writes one.

A campaign's records are written a chunk per script call (``store/lua/enqueue_*.lua``): one
call reads the state of each job of a chunk, one writes the records that do not exist yet, one
stamps ``sent_at`` once their messages are sent (scripts rather than pipelines: a client packs
one command per chunk instead of one per job).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import redis

from unsign_worker.store.job import Job
from unsign_worker.store.keys import AUDIT_MAXLEN, RATE_RETENTION_SECONDS, Keys
from unsign_worker.store.scripts import load
from unsign_worker.store.states import JobState

#: Retention of the record of a job rejected before it was sent, seconds.
REJECTED_RETENTION_SECONDS = 30 * 86400
#: A job that named a reference already bound to another job.
CONFLICT_CODE = "REFERENCE_CONFLICT"
#: Seconds (on the Redis server's clock) from a queued job's record until the sweeper first
#: looks for its message (in the broker's queue, held by a live worker, in ``P intake``) and
#: re-publishes the job if it is nowhere: the Redis broker loses a message popped just as the
#: connection fails. Then it looks again every lease. Longer than the time between a record and
#: its message's send; re-publishing is safe anyway, a redundant copy is dropped by the claim.
QUEUED_GRACE_SECONDS = 10.0

CREATE_QUEUED = load("create_queued",
                     libraries=("mirror_view", "create_absent", "server_time"))

ENQUEUE_READ = load("enqueue_read")

ENQUEUE_WRITE = load("enqueue_write",
                     libraries=("mirror_view", "create_absent", "server_time"))

ENQUEUE_MARK = load("enqueue_mark")


def record_fields(job: Job) -> dict[str, Any]:
    """The record of a job not yet sent."""
    fields: dict[str, Any] = {
        "job_id": job.job_id, "state": str(JobState.QUEUED), "params": job.params_json(),
        "campaign": job.campaign, "reference": job.reference,
        "created_at": repr(job.enqueued_at), "attempts": 0}
    if job.producer:
        fields["producer"] = job.producer
    return fields


class JobRecords:
    """Writes the records of jobs before their messages are sent."""

    def __init__(self, client: redis.Redis, keys: Keys, *,
                 queued_grace_seconds: float = QUEUED_GRACE_SECONDS) -> None:
        self._r = client
        self._keys = keys
        self.queued_grace_seconds = queued_grace_seconds
        self._create = CREATE_QUEUED.register(client)
        self._read = ENQUEUE_READ.register(client)
        self._write = ENQUEUE_WRITE.register(client)
        self._mark = ENQUEUE_MARK.register(client)

    def write_queued(self, jobs: Sequence[Job], *, pipe: Any = None) -> set[int] | None:
        """Record ``jobs`` as ``queued``, each in ``P leases`` until its message is first looked
        for (``queued_grace_seconds`` on the Redis server's clock), unless a
        record of its job id exists: a record is created once and never overwritten here.
        Returns the positions (0-based) of the jobs whose record existed; with ``pipe``, the
        call is only queued there and None is returned (the pipeline's reply holds them,
        1-based)."""
        if not jobs:
            return set()
        records = [list(chain.from_iterable(record_fields(job).items())) for job in jobs]
        k = self._keys
        existing = self._create(
            keys={"leases": k.leases,
                  "job_views": list(chain.from_iterable(
                      (k.job(j.job_id), k.producer_job(j.producer, j.job_id)) for j in jobs))},
            args={"records": json.dumps(records, ensure_ascii=False),
                  "ids": json.dumps([j.job_id for j in jobs]),
                  "check_after": repr(self.queued_grace_seconds),
                  "producers": json.dumps([j.producer for j in jobs])},
            client=pipe)
        return None if pipe is not None else {int(i) - 1 for i in existing}

    def record_rejected(self, job_id: str, *, reference: str, code: str, reason: str,
                        source: str, audit_maxlen: int = AUDIT_MAXLEN,
                        producer: str = "") -> bool:
        """Record ``job_id`` as ``rejected`` (never sent), counted and audited, and for a
        producer's job its view too; a ``REFERENCE_CONFLICT`` is also listed in the
        conflicts of the reference (``P conflicts:<reference>``, a producer's under its own
        keys), where the producer of the refused job finds it.
        Only if no record of ``job_id`` exists: returns False, changing nothing, if one does
        (recorded already and read again after a crash, or another job's)."""
        k, now = self._keys, time.time()
        minute = k.rate(int(now // 60))
        with self._r.pipeline(transaction=True) as pipe:
            pipe.watch(k.job(job_id))  # created only if absent: never over another job's record
            if pipe.exists(k.job(job_id)):
                return False
            pipe.multi()
            self._queue_rejected(pipe, job_id, reference=reference, code=code, reason=reason,
                                 source=source, now=now, minute=minute,
                                 audit_maxlen=audit_maxlen, producer=producer)
            try:
                pipe.execute()
            except redis.WatchError:  # created meanwhile
                return False
        return True

    def _queue_rejected(self, pipe: Any, job_id: str, *, reference: str, code: str,
                        reason: str, source: str, now: float, minute: str,
                        audit_maxlen: int, producer: str) -> None:
        k = self._keys
        view = {"job_id": job_id, "state": str(JobState.REJECTED), "code": code,
                "reason": reason, "attempts": 0, "reference": reference,
                "created_at": repr(now), "updated_at": repr(now), "finished_at": repr(now)}
        pipe.hset(k.job(job_id), mapping={**view, "params": "{}", "campaign": "",
                                          "source": source,
                                          **({"producer": producer} if producer else {})})
        pipe.expire(k.job(job_id), REJECTED_RETENTION_SECONDS)
        if producer:
            pipe.hset(k.producer_job(producer, job_id), mapping=view)
            pipe.expire(k.producer_job(producer, job_id), REJECTED_RETENTION_SECONDS)
            pipe.hincrby(k.producers_rejected, f"{producer}:{code.lower()}", 1)
        if code == CONFLICT_CODE and reference:
            conflicts = k.reference_conflicts(producer, reference)
            pipe.sadd(conflicts, job_id)
            pipe.expire(conflicts, REJECTED_RETENTION_SECONDS)
        pipe.hincrby(k.counts, JobState.REJECTED.value, 1)
        pipe.hincrby(minute, JobState.REJECTED.value, 1)
        pipe.expire(minute, RATE_RETENTION_SECONDS)
        audit = {"time": now, "job_id": job_id, "outcome": str(JobState.REJECTED),
                 "code": code, "reason": reason, "reference": reference, "campaign": "",
                 "source": source, **({"producer": producer} if producer else {})}
        pipe.xadd(k.audit, {"data": json.dumps(audit)}, maxlen=audit_maxlen, approximate=True)

    def campaign_states(self, campaign_id: str, job_ids: Sequence[str]) -> list[str]:
        """The campaign's state, then the state and ``sent_at`` of each job ('' for none)."""
        k = self._keys
        reply = self._read(keys={"meta": k.campaign(campaign_id),
                                 "jobs": [k.job(j) for j in job_ids]})
        return [x.decode() for x in reply]

    def write_campaign_jobs(self, campaign_id: str, jobs: Sequence[Job],
                            lines: Mapping[str, int]) -> set[int]:
        """Record the campaign's ``jobs`` as ``queued`` (with their ``line`` in the file) unless
        a record exists; each sits in ``P leases`` too, so the sweeper can tell a lost message
        from a backlog (see ``store/recovery.py``). Counts them in the campaign's ``enqueued``.
        Returns the positions (0-based) of the jobs whose record existed (a concurrent run)."""
        k = self._keys
        records = []
        for job in jobs:
            fields = record_fields(job)
            if (line := lines.get(job.job_id)) is not None:
                fields["line"] = line
            # a number goes as a JSON number: the script's HSET stores it as its digits
            records.append(list(chain.from_iterable(fields.items())))
        existing = self._write(
            keys={"meta": k.campaign(campaign_id), "leases": k.leases,
                  "jobs": [k.job(j.job_id) for j in jobs]},
            args={"records": json.dumps(records, ensure_ascii=False),
                  "ids": json.dumps([j.job_id for j in jobs]),
                  "check_after": repr(self.queued_grace_seconds)})
        return {int(i) - 1 for i in existing}

    def mark_sent(self, job_ids: Sequence[str], *, now: float) -> None:
        """Stamp ``sent_at`` on the records of jobs whose messages were sent."""
        self._mark(keys={"jobs": [self._keys.job(j) for j in job_ids]},
                   args={"sent_at": repr(now)})
