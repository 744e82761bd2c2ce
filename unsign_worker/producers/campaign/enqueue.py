"""Enqueueing a campaign's jobs: pipelined, batched, resumable, idempotent.

Jobs go in chunks. For each chunk, one script call reads every job's record, which sorts the
jobs:

- no record: new; its record is written (one script call for the chunk), then it is sent;
- record ``queued`` without ``sent_at``: an earlier run wrote it and stopped before sending
  (crash, Ctrl-C): it is sent now (a copy already in the broker is dropped by the worker);
- anything else: done or in flight: skipped.

After a chunk's messages are sent, one script call stamps ``sent_at`` on each job (the three
calls are ``store/job_records.py: JobRecords``'s). Several jobs share a message
(``unsign_worker.unsign_batch``) so the broker sees few, large messages. Between chunks the
campaign's state is read: a cancelled campaign stops sending.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kombu.exceptions import KombuError

from unsign_worker.producers.producer import Producer
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.job import Job
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage, ride_out
from unsign_worker.store.states import CampaignState, JobState

#: Jobs looked up and recorded per pipeline.
CHUNK_SIZE = 2000
#: Most jobs per broker message. A message's jobs run one after another in one pool slot, so
#: the batch adapts to the campaign (:func:`batch_size_for`): big enough that the broker costs
#: little per job, small enough that a campaign spreads over at least ``MESSAGES_AT_LEAST``
#: messages, i.e. over as many worker slots.
BATCH_SIZE = 200
#: A campaign of more jobs than this is cut into at least this many messages.
MESSAGES_AT_LEAST = 200


def batch_size_for(jobs: int, *, most: int = BATCH_SIZE) -> int:
    """Jobs per message for a campaign of ``jobs`` jobs: at most ``most``, and at least
    ``MESSAGES_AT_LEAST`` messages when there are that many jobs."""
    return max(1, min(most, jobs // MESSAGES_AT_LEAST))


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
        self._fresh = False
        #: says "Redis unavailable since …, retrying" once per outage (a log warning)
        self.outage = Outage("Redis")
        self._records = producer.records

    def run_chunks(self, campaign_id: str,
                   chunks: Iterable[tuple[Sequence[Job], Mapping[str, int]]], *,
                   fresh: bool = False,
                   on_chunk: Callable[[EnqueueResult, int], None] | None = None
                   ) -> EnqueueResult:
        """Enqueue the jobs of ``chunks``, taken one at a time (so a caller can stream them):
        each is a chunk of jobs of campaign ``campaign_id`` and a mapping of their ids to their
        line in the file (kept in the record for the report). ``fresh`` says the campaign was
        just created, so no job can have a record yet; ``on_chunk(result, handled)`` is called
        after each chunk. A cancelled campaign stops the run between chunks (no further chunk
        is taken); otherwise, once ``chunks`` is exhausted, the campaign's enqueue is marked
        complete."""
        self._fresh = fresh
        result = EnqueueResult()
        handled = 0
        for chunk, lines in chunks:
            self._lines = lines
            state = ride_out(lambda c=chunk: self._attempt(campaign_id, c, result), self.outage)
            handled += len(chunk)
            if on_chunk is not None:
                on_chunk(result, handled)
            if state == CampaignState.CANCELLED:
                result.stopped = str(CampaignState.CANCELLED)
                return result
        self.store.finish_enqueue(campaign_id)
        return result

    def _attempt(self, campaign_id: str, chunk: Sequence[Job], result: EnqueueResult) -> str:
        """One try at a chunk. A Redis or broker outage midway is waited out and the chunk
        tried again: part of it may be recorded (and sent) already, so it is looked up first;
        a job sent twice is dropped by the worker."""
        try:
            return self._chunk(campaign_id, chunk, result)
        except OUTAGE_ERRORS:
            self._fresh = False
            raise

    def _chunk(self, campaign_id: str, chunk: Sequence[Job], result: EnqueueResult) -> str:
        """Handle one chunk; returns the campaign's state as read before sending."""
        if self._fresh:  # a campaign created by this run has no job records to look up
            raw = self.producer.redis.hget(self.producer.keys.campaign(campaign_id), "state")
            found = [raw.decode() if raw else "", *[""] * (2 * len(chunk))]
        else:
            found = self._records.campaign_states(campaign_id, [j.job_id for j in chunk])
        state = found[0]
        if state == CampaignState.CANCELLED:
            return state
        new: list[Job] = []
        resend: list[Job] = []
        for i, job in enumerate(chunk):
            job_state, sent_at = found[1 + 2 * i], found[2 + 2 * i]
            if not job_state:
                new.append(job)
            elif job_state == JobState.QUEUED and not sent_at:
                resend.append(job)
            else:
                result.skipped[job_state] += 1
        if new:
            taken = self._records.write_campaign_jobs(campaign_id, new, self._lines)
            if taken:  # recorded meanwhile (a concurrent run): theirs to send
                result.skipped["recorded_meanwhile"] += len(taken)
                new = [job for i, job in enumerate(new) if i not in taken]
        outgoing = new + resend
        self._send(outgoing)
        if outgoing:
            self._records.mark_sent([j.job_id for j in outgoing], now=time.time())
        result.new += len(new)
        result.resent += len(resend)
        return state

    def _send(self, jobs: Sequence[Job]) -> None:
        """Send the chunk's messages, together (one broker round trip where the broker allows
        it). A failure that is an outage is raised as such, for :meth:`run_chunks` to wait it
        out and take the chunk again."""
        try:
            with self.producer.batched():
                for start in range(0, len(jobs), self.batch_size):
                    batch = jobs[start:start + self.batch_size]
                    if len(batch) == 1:
                        self.producer.send(batch[0])
                    else:
                        self.producer.send_batch(batch)
        except KombuError as exc:
            if isinstance(exc.__cause__, OUTAGE_ERRORS):  # the batch's pipeline failed
                raise exc.__cause__ from exc
            raise
