"""Enqueueing a campaign's jobs: pipelined, batched, resumable, idempotent.

Jobs go in chunks. For each chunk, one pipeline reads every job's record, which sorts the jobs:

- no record: new; its record is written (one pipeline), then it is sent;
- record ``queued`` without ``sent_at``: an earlier run wrote it and stopped before sending
  (crash, Ctrl-C): it is sent now (a copy already in the broker is dropped by the worker);
- anything else: done or in flight: skipped.

After a chunk's messages are sent, one pipeline stamps ``sent_at`` on each job. Several jobs
share a message (``unsign_worker.unsign_batch``) so the broker sees few, large messages. Between
chunks the campaign's state is read: a cancelled campaign stops sending.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from unsign_worker.campaign.store import CampaignStore
from unsign_worker.job import Job
from unsign_worker.producer import Producer

#: Jobs looked up and recorded per pipeline.
CHUNK_SIZE = 2000
#: Jobs per broker message.
BATCH_SIZE = 100


@dataclass
class EnqueueResult:
    """What one run did; ``skipped`` counts jobs by the state they were found in."""

    new: int = 0
    resent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    stopped: str = ""

    @property
    def sent(self) -> int:
        return self.new + self.resent

    def as_dict(self) -> dict[str, object]:
        return {"new": self.new, "resent": self.resent,
                "skipped": sum(self.skipped.values()),
                "skipped_by_state": dict(sorted(self.skipped.items())),
                "stopped": self.stopped}


class CampaignEnqueuer:
    def __init__(self, producer: Producer, store: CampaignStore, *,
                 chunk_size: int = CHUNK_SIZE, batch_size: int = BATCH_SIZE) -> None:
        if chunk_size < 1 or batch_size < 1:
            raise ValueError("chunk_size and batch_size must be at least 1")
        self.producer = producer
        self.store = store
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self._lines: Mapping[str, int] = {}

    def run(self, campaign_id: str, jobs: Sequence[Job], *,
            lines: Mapping[str, int] | None = None,
            on_chunk: Callable[[EnqueueResult, int], None] | None = None) -> EnqueueResult:
        """Enqueue ``jobs`` (all of campaign ``campaign_id``); ``lines`` maps job ids to their
        line in the file (kept in the record for the report); ``on_chunk(result, handled)`` is
        called after each chunk. Marks the campaign's enqueue complete unless stopped."""
        self._lines = lines or {}
        result = EnqueueResult()
        handled = 0
        for start in range(0, len(jobs), self.chunk_size):
            chunk = jobs[start:start + self.chunk_size]
            state = self._chunk(campaign_id, chunk, result)
            handled += len(chunk)
            if on_chunk is not None:
                on_chunk(result, handled)
            if state == "cancelled":
                result.stopped = "cancelled"
                return result
        self.store.finish_enqueue(campaign_id)
        return result

    def _chunk(self, campaign_id: str, chunk: Sequence[Job], result: EnqueueResult) -> str:
        """Handle one chunk; returns the campaign's state as read before sending."""
        r, k = self.producer.redis, self.producer.keys
        pipe = r.pipeline(transaction=False)
        pipe.hget(k.campaign(campaign_id), "state")
        for job in chunk:
            pipe.hmget(k.job(job.job_id), "state", "sent_at")
        found = pipe.execute()
        state = (found[0] or b"").decode()
        if state == "cancelled":
            return state
        new: list[Job] = []
        resend: list[Job] = []
        for job, (job_state, sent_at) in zip(chunk, found[1:], strict=True):
            if job_state is None:
                new.append(job)
            elif job_state == b"queued" and sent_at is None:
                resend.append(job)
            else:
                result.skipped[job_state.decode()] += 1
        if new:
            pipe = r.pipeline(transaction=False)
            self.producer.write_records(new, pipe=pipe)
            for job in new:
                if job.job_id in self._lines:
                    pipe.hset(k.job(job.job_id), "line", self._lines[job.job_id])
            pipe.hincrby(k.campaign(campaign_id), "enqueued", len(new))
            pipe.execute()
        outgoing = new + resend
        self._send(outgoing)
        if outgoing:
            now = repr(time.time())
            pipe = r.pipeline(transaction=False)
            for job in outgoing:
                pipe.hset(k.job(job.job_id), "sent_at", now)
            pipe.execute()
        result.new += len(new)
        result.resent += len(resend)
        return state

    def _send(self, jobs: Sequence[Job]) -> None:
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start:start + self.batch_size]
            if len(batch) == 1:
                self.producer.send(batch[0])
            else:
                self.producer.send_batch(batch)
