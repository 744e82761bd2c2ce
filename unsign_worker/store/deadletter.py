"""The dead-letter queue: jobs a human must look at, and the only two ways out of it.

The worker writes an entry (hash ``P dlq:<job_id>``: ``job_id``, ``kind`` (escalate |
retry_exhausted), ``code``, ``zh``, ``en``, ``category``, ``advice``, ``reason``, ``attempts``,
``identity``, ``identity_masked``, ``job`` (the job, masked, JSON), ``campaign``, ``reference``,
``dead_lettered_at``) and adds the job id to the zset ``P dlq``. It keeps the job's record
without expiry. Nothing leaves the queue except by

- :meth:`DeadLetters.requeue`: the job goes back to ``queued`` under the same id (so dedup
  still holds), its outcome counts are taken back (all time, its campaign's and its campaign's
  minute's, and its minute's while that minute is kept), its entry removed, and it is sent
  again from its record. It is also put in ``P leases`` so that, should this process die before the
  message is sent, the sweeper sends it;
- :meth:`DeadLetters.resolve`: closed by hand; the entry keeps who, when and why
  (``resolved_by``, ``resolved_at``, ``resolution_note``), moves to ``P dlq:resolved`` and is
  kept 30 days; the job stays ``dead_lettered`` and gets its normal retention.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from unsign_worker.store.keys import AUDIT_MAXLEN, JOB_RETENTION_SECONDS, NO_CAMPAIGN, Keys
from unsign_worker.store.scripts import load

#: Retention of a resolved entry, seconds.
RESOLVED_RETENTION_SECONDS = 30 * 86400

REQUEUE = load("dlq_requeue", libraries=("mirror_view", "server_time"))

RESOLVE = load("dlq_resolve", libraries=("mirror_view",))


class DeadLetterError(Exception):
    """A dead-letter operation that cannot be done; the message says why."""


class NoteRequired(DeadLetterError):
    """A requeue or resolve without a note (blank counts as none)."""


def require_note(action: str, note: str) -> str:
    """The one rule for every way out of the queue: an operator says why, in a non-blank note.

    Parameters:
        action: ``requeue`` or ``resolve`` (named in the message).
        note: what the operator typed.

    Raises:
        NoteRequired: the note is empty or only blanks.

    Returns:
        The note without its surrounding blanks.
    """
    if not note.strip():
        raise NoteRequired(f"{action}: a note is required (what was done, or why)")
    return note.strip()


@dataclass(frozen=True)
class Entry:
    """One dead-letter entry; :meth:`as_dict` is the stable JSON shape (docs/cli.md)."""

    job_id: str
    fields: dict[str, str]

    @property
    def code(self) -> str:
        return self.fields.get("code", "")

    @property
    def campaign(self) -> str:
        return self.fields.get("campaign", "")

    def as_dict(self) -> dict[str, Any]:
        f = self.fields
        try:
            job = json.loads(f.get("job") or "{}")
        except json.JSONDecodeError:
            job = {}

        def num(name: str) -> float | None:
            return float(f[name]) if f.get(name) else None

        return {"job_id": self.job_id, "kind": f.get("kind", ""), "code": self.code,
                "category": f.get("category", ""), "zh": f.get("zh", ""), "en": f.get("en", ""),
                "advice": f.get("advice", ""), "reason": f.get("reason", ""),
                "attempts": int(f.get("attempts") or 0),
                "identity": f.get("identity_masked", ""), "campaign": self.campaign,
                "reference": f.get("reference", ""), "job": job,
                "dead_lettered_at": num("dead_lettered_at"),
                "resolved_at": num("resolved_at"), "resolved_by": f.get("resolved_by", ""),
                "resolution_note": f.get("resolution_note", "")}


@dataclass(frozen=True)
class Brief:
    """What grouping and paging need of an open entry: its id, code, campaign and time."""

    job_id: str
    code: str
    campaign: str
    #: When it was dead-lettered, epoch seconds (its score in ``P dlq``).
    dead_lettered_at: float


def count_codes(briefs: list[Brief]) -> dict[str, int]:
    """Entries per code, largest first (ties by code)."""
    counts = Counter(b.code for b in briefs)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


class DeadLetters:
    """Reads and closes dead-letter entries."""

    def __init__(self, client: redis.Redis, keys: Keys, *,
                 audit_maxlen: int = AUDIT_MAXLEN) -> None:
        self._r = client
        self._keys = keys
        self._audit_maxlen = audit_maxlen
        self._requeue = REQUEUE.register(client)
        self._resolve = RESOLVE.register(client)

    def size(self) -> int:
        return int(self._r.zcard(self._keys.dlq))

    def entries(self, *, code: str = "", campaign: str = "", chunk: int = 500
                ) -> Iterator[Entry]:
        """Open entries, oldest first, optionally only one code or campaign."""
        start = 0
        while True:
            ids = self._r.zrange(self._keys.dlq, start, start + chunk - 1)
            if not ids:
                return
            pipe = self._r.pipeline(transaction=False)
            for raw in ids:
                pipe.hgetall(self._keys.dlq_entry(raw.decode()))
            for raw, fields in zip(ids, pipe.execute(), strict=True):
                entry = Entry(raw.decode(), _decode(fields))
                if (not code or entry.code == code) and (not campaign or
                                                         entry.campaign == campaign):
                    yield entry
            start += chunk

    def briefs(self, *, code: str = "", campaign: str = "", before: float | None = None,
               chunk: int = 1000) -> list[Brief]:
        """Open entries, oldest first, as their id, code, campaign and time only: two short
        fields of each entry, read in pipelined chunks, so that counting, grouping and paging
        thousands of entries never reads one whole (:meth:`get_many` reads a page's).

        Parameters:
            code, campaign: only entries of this code / campaign ("" for any).
            before: only entries dead-lettered at or before this epoch time (seconds).
        """
        found = self._r.zrangebyscore(self._keys.dlq, "-inf",
                                      "+inf" if before is None else repr(before),
                                      withscores=True)
        out: list[Brief] = []
        for start in range(0, len(found), chunk):
            part = found[start:start + chunk]
            pipe = self._r.pipeline(transaction=False)
            for raw, _ in part:
                pipe.hmget(self._keys.dlq_entry(raw.decode()), "code", "campaign")
            for (raw, score), (got_code, got_campaign) in zip(part, pipe.execute(),
                                                              strict=True):
                brief = Brief(raw.decode(), (got_code or b"").decode("utf-8", "replace"),
                              (got_campaign or b"").decode("utf-8", "replace"), float(score))
                if (not code or brief.code == code) and (not campaign or
                                                         brief.campaign == campaign):
                    out.append(brief)
        return out

    def get_many(self, job_ids: list[str]) -> list[Entry]:
        """The entries of ``job_ids`` in one round trip, in that order (gone ones left out)."""
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._keys.dlq_entry(job_id))
        return [Entry(job_id, _decode(fields))
                for job_id, fields in zip(job_ids, pipe.execute(), strict=True) if fields]

    def by_code(self) -> dict[str, int]:
        """Open entries per code, largest first."""
        return count_codes(self.briefs())

    def get(self, job_id: str) -> Entry | None:
        """An entry, open or resolved (resolved ones are kept 30 days)."""
        fields = self._r.hgetall(self._keys.dlq_entry(job_id))
        return Entry(job_id, _decode(fields)) if fields else None

    def is_open(self, job_id: str) -> bool:
        return self._r.zscore(self._keys.dlq, job_id) is not None

    def requeue(self, job_id: str, *, republish: Callable[[str, float], bool], by: str,
                lease_seconds: float) -> None:
        """Put the job back to ``queued`` and send it again.

        Raises:
            DeadLetterError: not in the queue, or its record is gone or not dead-lettered.
        """
        k = self._keys
        now = time.time()
        entry = self.get(job_id)
        campaign = entry.campaign if entry else ""
        producer = self._producer(job_id)
        # The minute it was counted in (settle counts a job in its finished_at's minute); the
        # script checks it against the record before taking the dead letter back there.
        finished = self._r.hget(k.job(job_id), "finished_at")
        minute = int(float(finished) // 60) if finished else None
        out = self._requeue(
            keys={"dlq": k.dlq, "dlq_entry": k.dlq_entry(job_id), "job": k.job(job_id),
                  "counts": k.counts, "leases": k.leases, "audit": k.audit,
                  "campaign_counts": k.campaign_counts(campaign or NO_CAMPAIGN),
                  "campaign_progress": k.campaign_progress(campaign or NO_CAMPAIGN),
                  "campaign": k.campaign(campaign or NO_CAMPAIGN),
                  "view": k.producer_job(producer, job_id),
                  "rate": k.rate(int(now // 60) if minute is None else minute)},
            args={"job_id": job_id, "now": repr(now), "lease_seconds": repr(lease_seconds),
                  "by": by, "audit_maxlen": self._audit_maxlen, "campaign": campaign,
                  "producer": producer, "minute": "" if minute is None else str(minute)})
        result = out.decode() if isinstance(out, bytes) else str(out)
        if result == "absent":
            raise DeadLetterError(f"job {job_id} is not in the dead-letter queue")
        if result == "no_record":
            raise DeadLetterError(f"job {job_id}: its record is gone; resolve it by hand")
        if result != "ok":
            raise DeadLetterError(f"job {job_id} is {result.split(':', 1)[-1]}, "
                                  "not dead_lettered")
        if republish(job_id, now):
            self._r.hset(k.job(job_id), "sent_at", repr(time.time()))

    def resolve(self, job_id: str, *, note: str, by: str) -> None:
        """Close the entry by hand, keeping who, when and why.

        Raises:
            DeadLetterError: not in the queue; NoteRequired: no note.
        """
        note = require_note("resolve", note)
        k = self._keys
        producer = self._producer(job_id)
        out = self._resolve(
            keys={"dlq": k.dlq, "dlq_entry": k.dlq_entry(job_id), "resolved": k.dlq_resolved,
                  "job": k.job(job_id), "audit": k.audit,
                  "view": k.producer_job(producer, job_id)},
            args={"job_id": job_id, "now": repr(time.time()), "by": by, "note": note,
                  "entry_ttl": RESOLVED_RETENTION_SECONDS, "job_ttl": JOB_RETENTION_SECONDS,
                  "audit_maxlen": self._audit_maxlen, "producer": producer})
        if (out.decode() if isinstance(out, bytes) else str(out)) == "absent":
            raise DeadLetterError(f"job {job_id} is not in the dead-letter queue")


    def _producer(self, job_id: str) -> str:
        """The producer named by the job's record ("" for none): the scripts keep its view."""
        found = self._r.hget(self._keys.job(job_id), "producer")
        return found.decode() if found else ""


def _decode(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
