"""The lease sweeper: nothing is lost even when the broker forgets.

Redelivery alone is not trusted: ``task_reject_on_worker_lost`` requeues a message once, a
second crash acks it, an ETA message can vanish with a Redis restart. Every job that is not
terminal and not plainly queued sits in ``P leases`` with the time its claim expires. Each
worker runs a sweeper thread; one at a time (lock ``P sweeper``) it re-publishes the jobs whose
lease expired, from their record in Redis, and the tasks' claim logic drops any copy that turns
out to be redundant. Due success hooks (``P hooks``) are re-run the same way. It also records a
heartbeat per worker (``P workers``).

Jobs that are merely ``queued`` are checked before they are re-published: those of a message a
dead worker had received (``P held``, see :mod:`unsign_worker.store.recovery`) come back within one
lease; those whose message is still waiting in the broker, or held by a live worker, are left
alone and looked for again a lease later; those whose message is nowhere (popped by a worker
cut off before it recorded it) are re-published; after a Redis restart, every queued job is
checked against the broker at once. Every time compared is the Redis server's
(:mod:`unsign_worker.store.clock`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from unsign_worker.store.clock import server_now
from unsign_worker.store.hook_records import HookRecords
from unsign_worker.store.keys import Keys
from unsign_worker.store.recovery import (
    HeldMessages,
    forget_unacked,
    message_from_record,
    queued_in_broker,
    queued_in_intake,
    redis_restarted,
    unacked_messages,
)
from unsign_worker.store.states import TERMINAL_STATES, BreakerStatus, JobState
from unsign_worker.worker.background import LoopThread

log = logging.getLogger(__name__)

#: Seconds between sweeps.
SWEEP_INTERVAL_SECONDS = 5.0
#: Most jobs re-published per sweep.
SWEEP_BATCH = 500
#: With RabbitMQ (whose queues are not scanned), how long a queued job is left alone before it
#: is looked at again.
QUEUED_RECHECK_SECONDS = 3600.0


@dataclass(frozen=True)
class _Scan:
    """Where the jobs' messages were at one time (the Redis server's): in the broker's queue,
    held by a live worker, or in ``P intake``."""

    at: float
    jobs: set[str] | _Everything


class Sweeper:
    def __init__(self, client: redis.Redis, keys: Keys, *, lease_seconds: float,
                 probe_after_seconds: float, publish_job: Callable[[dict[str, Any]], None],
                 publish_hook: Callable[[str], None], hostname: str | None = None,
                 held_ids: Callable[[], list[str]] | None = None,
                 broker: redis.Redis | None = None, broker_is_redis: bool = True,
                 interval_seconds: float = SWEEP_INTERVAL_SECONDS) -> None:
        self._r = client
        #: seconds between sweeps; the sweep lock lives 90% of it, so one sweeper at a time
        self.interval_seconds = interval_seconds
        #: the broker's Redis (its queue is scanned, its restarts noticed); None for RabbitMQ,
        #: which keeps its queues: a queued job is then never taken for lost before its grace
        self._broker = broker if broker is not None else (client if broker_is_redis else None)
        self.held = HeldMessages(client, keys, lease_seconds=lease_seconds)
        self.hooks = HookRecords(client, keys)
        #: ids of the messages this worker holds now (received, not finished)
        self._held_ids = held_ids
        self._keys = keys
        self._lease = lease_seconds
        self._probe_after = probe_after_seconds
        self._publish_job = publish_job
        self._publish_hook = publish_hook
        self.hostname = hostname or socket.gethostname()
        #: the last look for the queued jobs' messages (reused for up to one lease)
        self._scan: _Scan | None = None
        #: when the broker's unacknowledged messages were last looked through
        self._unacked_at = float("-inf")

    def sweep_once(self, now: float | None = None) -> dict[str, int]:
        """One pass; returns how many jobs and hooks were re-published. ``now`` is the Redis
        server's time (read with ``TIME`` when not given): every lease is compared on that one
        clock, never on this host's."""
        now = server_now(self._r) if now is None else now
        k = self._keys
        self._r.zadd(k.workers, {self.hostname: now})
        if self._held_ids is not None:
            self.held.renew(self._held_ids())
        if not self._r.set(k.sweeper, self.hostname, nx=True,
                           px=max(1, int(self.interval_seconds * 900))):
            return {"jobs": 0, "hooks": 0}
        restarted = redis_restarted(self._r, k)
        if self._broker is not None and self._broker is not self._r:
            restarted = redis_restarted(self._broker, k) or restarted
        if restarted:
            self._after_restart(now)
        jobs = self._recover_held(now) + self._expired_leases(now) + self._unpark(now)
        self._forget_finished_unacked(now)
        hooks = 0
        for identity in self.hooks.due(now, limit=SWEEP_BATCH):
            self.hooks.postpone(identity, now + self._lease)
            self._publish_hook(identity)
            hooks += 1
        return {"jobs": jobs, "hooks": hooks}

    def _states(self, job_ids: list[str]) -> list[str]:
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self._keys.job(job_id), "state")
        return [(x or b"").decode() for x in pipe.execute()]

    def _waiting(self, now: float) -> _Scan:
        """Jobs whose message waits in the broker or is held by a live worker, or whose entry
        waits in ``P intake`` (one look per sweep at most)."""
        if self._scan is None or self._scan.at != now:
            if self._broker is None:
                jobs: set[str] | _Everything = _Everything()
            else:
                jobs = (queued_in_broker(self._broker, self._keys)
                        | self.held.live_job_ids(now) | queued_in_intake(self._r, self._keys))
            self._scan = _Scan(now, jobs)
        return self._scan

    def _look_again_at(self, job_id: str, now: float) -> float | None:
        """When to look for a queued job's message again, or None if it is nowhere: lost.

        A message seen waiting at time S can only be lost after S (popped by a worker cut off
        before it recorded the message), so looking again one lease after S finds any loss
        within a lease of it. A look less than a lease old that saw the job is reused: a backlog
        costs one scan of the queue per lease, not one per sweep."""
        if self._broker is None:
            return now + QUEUED_RECHECK_SECONDS
        scan = self._scan
        if scan is not None and now - scan.at < self._lease and job_id in scan.jobs:
            return scan.at + self._lease
        scan = self._waiting(now)
        return now + self._lease if job_id in scan.jobs else None

    def _expired_leases(self, now: float) -> int:
        k = self._keys
        ids = [x.decode() for x in self._r.zrangebyscore(k.leases, "-inf", now, start=0,
                                                          num=SWEEP_BATCH)]
        count = 0
        for job_id, state in zip(ids, self._states(ids), strict=True):
            if state == JobState.QUEUED:
                again = self._look_again_at(job_id, now)
                if again is not None:  # a backlog, not a loss: look again later
                    self._r.zadd(k.leases, {job_id: again})
                    continue
            self._r.zadd(k.leases, {job_id: now + self._lease})
            if self.republish(job_id, now):
                count += 1
                log.warning("job %s had an expired lease: re-published", job_id)
            else:
                self._r.zrem(k.leases, job_id)
        return count

    def _recover_held(self, now: float) -> int:
        """Re-publish the queued jobs of messages whose holder stopped renewing them."""
        count = 0
        for message_id, job_ids in self.held.expired(now, SWEEP_BATCH):
            for job_id, state in zip(job_ids, self._states(job_ids), strict=True):
                if state == JobState.QUEUED and self.republish(job_id, now):
                    count += 1
            self.held.release(message_id)
            log.warning("message %s was held by a worker that stopped (%d job(s)): its queued "
                        "jobs were re-published", message_id, len(job_ids))
        return count

    def _after_restart(self, now: float) -> None:
        """Redis restarted: queued jobs found neither in the broker nor in a live worker's
        messages lost theirs; make them due now."""
        k = self._keys
        self._scan = None  # what was seen before the restart may be gone
        lost = 0
        pending = [x.decode() for x in self._r.zrangebyscore(k.leases, now, "+inf")]
        for start in range(0, len(pending), SWEEP_BATCH):  # read all first: scores change below
            page = pending[start:start + SWEEP_BATCH]
            for job_id, state in zip(page, self._states(page), strict=True):
                if state != JobState.QUEUED:
                    continue
                if job_id not in self._waiting(now).jobs:
                    self._r.zadd(k.leases, {job_id: now})
                    lost += 1
        if lost:
            log.warning("Redis restarted: %d queued job(s) had lost their message and will be "
                        "re-published", lost)

    def _forget_finished_unacked(self, now: float) -> None:
        """Once per lease: messages left in the broker's ``unacked`` hash for more than a lease
        (their worker was cut off or killed before it acknowledged them) whose jobs have all
        ended are dropped, instead of coming back after the visibility timeout (an hour) only
        to be dropped by the claim. Anything else there is left alone: a delayed retry waits
        there, and a job still to do comes back through its own lease."""
        if self._broker is None or now - self._unacked_at < self._lease:
            return
        self._unacked_at = now
        done = [tag for tag, job_ids in unacked_messages(self._broker, self._keys,
                                                         delivered_before=now - self._lease)
                if job_ids and all(s in TERMINAL_STATES for s in self._states(job_ids))]
        forget_unacked(self._broker, self._keys, done)
        if done:
            log.info("dropped %d unacknowledged broker message(s) whose jobs have all ended",
                     len(done))

    def republish(self, job_id: str, now: float) -> bool:
        """Send the job's message again from its record, unless it has ended."""
        message = message_from_record(self._r, self._keys, job_id, now)
        if message is None:
            return False
        self._publish_job(message)
        return True

    def _unpark(self, now: float) -> int:
        """Breaker closed: re-publish every parked job. Open past the probe delay: one, which
        the claim turns into the half-open probe."""
        k = self._keys
        state, opened_at = self._r.hmget(k.breaker, "state", "opened_at")
        if state == BreakerStatus.OPEN.value.encode():
            if now - float(opened_at or 0) < self._probe_after or self._r.exists(k.breaker_probe):
                return 0
            popped = self._r.zpopmin(k.parked, 1)
        else:
            popped = self._r.zpopmin(k.parked, SWEEP_BATCH)
        count = 0
        for raw_id, _ in popped:
            if self.republish(raw_id.decode(), now):
                count += 1
        if count:
            log.warning("re-published %d parked job(s) (breaker %s)", count,
                        (state or b"").decode() or BreakerStatus.CLOSED)
        return count


class _Everything:
    """Stands for "every job" when the broker's queue cannot be read (RabbitMQ)."""

    def __contains__(self, _: object) -> bool:
        return True


class SweeperThread(LoopThread):
    """Runs :meth:`Sweeper.sweep_once` every ``interval`` seconds until stopped."""

    def __init__(self, sweeper: Sweeper, interval: float | None = None) -> None:
        interval = sweeper.interval_seconds if interval is None else interval
        super().__init__("unsign-sweeper", sweeper.sweep_once, pause=interval, retry=interval,
                         what="sweep")
