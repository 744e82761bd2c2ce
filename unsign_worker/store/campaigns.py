"""A campaign's record in Redis: its meta hash, its job list, its rejected rows, its progress.

Meta (``P campaign:<id>``): ``id``, ``name``, ``source`` (file name), ``state`` (running |
paused | cancelled | done), ``rate`` (jobs/s, 0 = unlimited; enforced by the workers' claim),
``total`` (valid rows), ``rejected`` (rows refused by the validator), ``enqueued`` (jobs
recorded), ``enqueue_complete`` (0/1), ``created_at``, ``updated_at``, ``finished_at`` and
``<state>_at`` for each operator action (epoch seconds). Its run: ``run_finished_at`` and
``run_done`` (jobs ended then), written the first time it is done and kept when a requeue makes
it ``running`` again (which takes ``finished_at`` away); ``requeued_after_run`` counts those
requeues. Outcome counts are kept by the workers in ``P campaign:<id>:counts``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from unsign_worker.store.keys import Keys
from unsign_worker.store.scripts import load
from unsign_worker.store.states import FAILURE_STATES, TERMINAL_STATES, CampaignState, JobState

#: Outcomes in the order tables and JSON list them.
OUTCOMES = tuple(str(s) for s in JobState if s in TERMINAL_STATES)
#: Ids written per pipeline when the job list is rebuilt.
LIST_CHUNK = 5000

BEGIN = load("campaign_begin")

TRANSITION = load("campaign_transition")



class Reject(Protocol):
    """A rejected row as the store keeps it (the validator's ``RejectedRow``)."""

    def as_dict(self) -> dict[str, object]: ...

class CampaignError(Exception):
    """An operation a campaign's state does not allow; the message says why."""


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign at a glance; :meth:`as_dict` is the stable JSON shape (docs/cli.md)."""

    campaign: str
    name: str = ""
    source: str = ""
    state: CampaignState = CampaignState.RUNNING
    rate: int = 0
    total: int = 0
    rejected_rows: int = 0
    enqueued: int = 0
    enqueue_complete: bool = False
    outcomes: dict[str, int] = field(default_factory=dict)
    parked: int = 0
    created_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    #: when the campaign was first done (its run's end; kept through requeues), epoch seconds
    run_finished_at: float | None = None
    #: jobs ended when the run ended
    run_done: int = 0
    #: dead letters requeued after the run ended (shown apart from the run)
    requeued_after_run: int = 0

    @property
    def done(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in OUTCOMES)

    @property
    def failures(self) -> int:
        return sum(self.outcomes.get(str(s), 0) for s in FAILURE_STATES)

    @property
    def finished(self) -> bool:
        """Every job that will ever run has ended."""
        if self.state == CampaignState.DONE:
            return True
        if self.state == CampaignState.CANCELLED:
            return self.done >= self.enqueued
        return self.enqueue_complete and self.done >= self.total

    def run_rate(self, now: float | None = None) -> float:
        """Jobs/s over the campaign's own run: from its start to when it was first done (to
        ``now`` while it runs), so a requeue after the run does not change it."""
        now = time.time() if now is None else now
        end = self.run_finished_at or self.finished_at or now
        done = self.run_done if self.run_finished_at else self.done
        elapsed = end - (self.created_at or end)
        return done / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "name": self.name, "source": self.source,
                "state": self.state, "rate": self.rate, "total": self.total,
                "rejected_rows": self.rejected_rows, "enqueued": self.enqueued,
                "enqueue_complete": self.enqueue_complete, "done": self.done,
                "remaining": max(0, self.total - self.done), "finished": self.finished,
                "failures": self.failures, "parked": self.parked,
                "outcomes": {o: self.outcomes.get(o, 0) for o in OUTCOMES},
                "created_at": self.created_at, "updated_at": self.updated_at,
                "finished_at": self.finished_at, "run_finished_at": self.run_finished_at,
                "run_done": self.run_done, "requeued_after_run": self.requeued_after_run}


def _num(raw: dict[str, str], name: str) -> float | None:
    try:
        return float(raw[name]) if raw.get(name) else None
    except ValueError:
        return None


class CampaignStore:
    """Reads and writes campaign records."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._begin = BEGIN.register(client)
        self._transition = TRANSITION.register(client)

    def begin(self, campaign_id: str, *, name: str, source: str, total: int, rejected: int,
              rate: int | None, now: float | None = None) -> str:
        """Create the campaign or take it up again; returns ``new`` or its former state.

        Raises:
            CampaignError: the campaign was cancelled.
        """
        k = self.keys
        out = self._begin(keys={"meta": k.campaign(campaign_id), "campaigns": k.campaigns},
                          args={"id": campaign_id, "name": name, "source": source,
                                "total": total, "rejected": rejected,
                                "rate": "" if rate is None else rate,
                                "now": repr(now or time.time())})
        state = out.decode() if isinstance(out, bytes) else str(out)
        if state == CampaignState.CANCELLED:
            raise CampaignError(f"campaign {campaign_id} was cancelled; run the file under a "
                                "new --id to start again")
        return state

    def set_jobs(self, campaign_id: str, job_ids: Sequence[str]) -> None:
        """Replace the campaign's job list (input order), atomically for readers."""
        self.open_job_list(campaign_id)
        for start in range(0, len(job_ids), LIST_CHUNK):
            self.append_jobs(campaign_id, job_ids[start:start + LIST_CHUNK])
        self.close_job_list(campaign_id)

    def open_job_list(self, campaign_id: str) -> None:
        """Start building the campaign's job list anew (``:jobs:new``, appended to by
        :meth:`append_jobs`, renamed over ``:jobs`` by :meth:`close_job_list`). The list of a
        run that stopped before closing it, if no complete list exists, is kept as ``:jobs``
        first: it names every job that run recorded, which cancel and the report need."""
        k = self.keys
        building, done = k.campaign_jobs_new(campaign_id), k.campaign_jobs(campaign_id)
        if not self.redis.exists(done) and self.redis.exists(building):
            self.redis.rename(building, done)
        self.redis.delete(building)

    def append_jobs(self, campaign_id: str, job_ids: Sequence[str]) -> None:
        """Append ids to the list being built (call before recording those jobs, so the list
        always names every recorded job)."""
        building = self.keys.campaign_jobs_new(campaign_id)
        for start in range(0, len(job_ids), LIST_CHUNK):
            self.redis.rpush(building, *job_ids[start:start + LIST_CHUNK])

    def close_job_list(self, campaign_id: str) -> None:
        """The list being built is complete: it replaces the campaign's job list."""
        k = self.keys
        building, done = k.campaign_jobs_new(campaign_id), k.campaign_jobs(campaign_id)
        if self.redis.exists(building):
            self.redis.rename(building, done)
        else:
            self.redis.delete(done)

    def set_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        """Replace the campaign's rejected rows."""
        self.clear_rejects(campaign_id)
        self.append_rejects(campaign_id, rejects)

    def clear_rejects(self, campaign_id: str) -> None:
        """Forget the rejected rows (a run lists them again as it reads its file)."""
        self.redis.delete(self.keys.campaign_rejects(campaign_id))

    def append_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        key = self.keys.campaign_rejects(campaign_id)
        for start in range(0, len(rejects), LIST_CHUNK):
            self.redis.rpush(key, *[json.dumps(r.as_dict(), ensure_ascii=False)
                                    for r in rejects[start:start + LIST_CHUNK]])

    def rejects(self, campaign_id: str) -> list[dict[str, Any]]:
        raw = self.redis.lrange(self.keys.campaign_rejects(campaign_id), 0, -1)
        return [json.loads(item) for item in raw]

    def job_ids(self, campaign_id: str, *, chunk: int = LIST_CHUNK) -> Iterator[list[str]]:
        """The campaign's job ids in input order, ``chunk`` at a time (while a first run has not
        completed its list: the ids listed so far)."""
        done = self.keys.campaign_jobs(campaign_id)
        # a first run still enqueueing (or stopped) has only the list it is building
        key = done if self.redis.exists(done) else self.keys.campaign_jobs_new(campaign_id)
        start = 0
        while True:
            part = self.redis.lrange(key, start, start + chunk - 1)
            if not part and key != done and self.redis.exists(done):
                key = done  # completed meanwhile: read on from the complete list
                continue
            if not part:
                return
            yield [j.decode() for j in part]
            start += chunk

    def finish_enqueue(self, campaign_id: str) -> None:
        self.redis.hset(self.keys.campaign(campaign_id),
                        mapping={"enqueue_complete": 1, "updated_at": repr(time.time())})

    def progress(self, campaign_id: str) -> dict[int, dict[str, int]]:
        """The campaign's progress over time: the start of each step of
        ``PROGRESS_STEP_SECONDS`` (epoch seconds) -> outcome -> its jobs that reached that
        outcome in that step and hold it (``P campaign:<id>:progress``, written where its counts
        are)."""
        out: dict[int, dict[str, int]] = {}
        for field_raw, count in self.redis.hgetall(self.keys.campaign_progress(campaign_id)
                                                   ).items():
            step, _, outcome = field_raw.decode().partition(":")
            if step.isdigit() and int(count):
                out.setdefault(int(step), {})[outcome] = int(count)
        return dict(sorted(out.items()))

    def status(self, campaign_id: str) -> CampaignStatus | None:
        """The campaign's status, or None; a running campaign found finished becomes
        ``done``."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(k.campaign(campaign_id))
        pipe.hgetall(k.campaign_counts(campaign_id))
        pipe.zcard(k.campaign_parked(campaign_id))
        meta_raw, counts_raw, parked = pipe.execute()
        meta = {a.decode(): b.decode("utf-8", "replace") for a, b in meta_raw.items()}
        if meta.get("state") not in set(CampaignState):  # no campaign (as the scripts see it)
            return None
        counts = {a.decode(): int(b) for a, b in counts_raw.items()}
        status = CampaignStatus(
            campaign=campaign_id, name=meta.get("name", ""), source=meta.get("source", ""),
            state=CampaignState(meta["state"]), rate=int(float(meta.get("rate") or 0)),
            total=int(meta.get("total") or 0), rejected_rows=int(meta.get("rejected") or 0),
            enqueued=int(meta.get("enqueued") or 0),
            enqueue_complete=meta.get("enqueue_complete") == "1", outcomes=counts,
            parked=int(parked), created_at=_num(meta, "created_at"),
            updated_at=_num(meta, "updated_at"), finished_at=_num(meta, "finished_at"),
            run_finished_at=_num(meta, "run_finished_at"),
            run_done=int(meta.get("run_done") or 0),
            requeued_after_run=int(meta.get("requeued_after_run") or 0))
        if status.state == CampaignState.RUNNING and status.finished:
            now = time.time()
            if self._transition(keys={"meta": k.campaign(campaign_id)},
                                args={"to": CampaignState.DONE, "now": repr(now),
                                      "from": [CampaignState.RUNNING]}
                                ) in (b"ok", "ok"):
                pipe = self.redis.pipeline(transaction=True)
                pipe.hset(k.campaign(campaign_id), "finished_at", repr(now))
                # The first time only: the run's end stays when a requeue reopens it.
                pipe.hsetnx(k.campaign(campaign_id), "run_finished_at", repr(now))
                pipe.hsetnx(k.campaign(campaign_id), "run_done", status.done)
                pipe.execute()
                return self.status(campaign_id)
        return status

    def list(self) -> list[CampaignStatus]:
        """Every campaign, newest first."""
        ids = [i.decode() for i in self.redis.zrevrange(self.keys.campaigns, 0, -1)]
        return [s for s in (self.status(i) for i in ids) if s is not None]

    def transition(self, campaign_id: str, to: CampaignState, *allowed: CampaignState) -> None:
        """Move the campaign to state ``to`` if it is in one of ``allowed``.

        Raises:
            CampaignError: no such campaign, or its state does not allow it.
        """
        out = self._transition(keys={"meta": self.keys.campaign(campaign_id)},
                               args={"to": to, "now": repr(time.time()), "from": allowed})
        result = out.decode() if isinstance(out, bytes) else str(out)
        if result == "absent":
            raise CampaignError(f"no campaign {campaign_id}")
        if result != "ok":
            raise CampaignError(f"campaign {campaign_id} is {result}; it must be "
                                f"{' or '.join(allowed)} to become {to}")
