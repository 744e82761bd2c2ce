"""What the sweeper needs to find jobs the broker has hidden or lost.

Two gaps the job leases (``P leases``) do not close by themselves:

- **Messages a dead worker had received.** A worker prefetches messages (a campaign batch
  carries up to 200 jobs); if it is SIGKILLed, those messages sit in the broker's ``unacked``
  hash until the visibility timeout (one hour by default), their jobs ``queued``, with no claim.
  So a worker records every message it receives (``P held``: message id -> lease expiry, and
  ``P held:<id>``: the message's job ids; one pipelined round trip per message, not per job)
  and renews the leases of the messages it still holds from its loop thread. A message whose
  lease expired belongs to a worker that stopped renewing: the sweeper re-publishes its jobs
  that are still ``queued`` (from their records) and drops the record. The claim drops the
  original message, should it come back later (the job is then in flight or finished).
- **Messages that vanished.** A Redis restart can lose the last writes (the broker's queue
  included). The sweeper remembers the run id (``P redis_run``) of the state store and of the
  broker's Redis (when it is a separate one); when either changes, every
  ``queued`` job in ``P leases`` is checked at once against the broker's queue, the held
  messages and the intake stream (``P intake``), and those found in none are re-published.
  The same check runs for every queued job when its turn in ``P leases`` comes (shortly after
  its record, then every lease): a message a worker popped just as it was cut from Redis is in
  neither the queue nor ``unacked`` nor ``P held``, and comes back this way; a long backlog is
  never re-published blindly.
- **Messages left unacknowledged.** A worker cut off after it received messages leaves them in
  the broker's ``unacked`` hash until the visibility timeout; once their jobs have all ended
  the sweeper drops them (:func:`unacked_messages`, :func:`forget_unacked`).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import redis

from unsign_worker.store.keys import QUEUE, Keys
from unsign_worker.store.scripts import load
from unsign_worker.store.states import TERMINAL_STATES

log = logging.getLogger(__name__)

#: kombu's Redis transport keeps a queue's messages of priority p > 0 in ``<queue>\x06\x16<p>``.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
#: Messages read per LRANGE when scanning the broker's queue.
SCAN_CHUNK = 500

HELD_RECORD = load("held_record", libraries=("server_time",))

HELD_RENEW = load("held_renew", libraries=("server_time",))


def job_ids_of(task_name: str, kwargs: Mapping[str, Any]) -> list[str]:
    """The job ids a task message carries (none for a hook message)."""
    if isinstance(kwargs.get("job"), Mapping):
        return [str(kwargs["job"].get("job_id", ""))]
    jobs = kwargs.get("jobs")
    if isinstance(jobs, list):
        return [str(j.get("job_id", "")) for j in jobs if isinstance(j, Mapping)]
    return []


class HeldMessages:
    """The message leases of one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys, *, lease_seconds: float) -> None:
        self._r = client
        self._keys = keys
        self.lease_seconds = lease_seconds
        self._record = HELD_RECORD.register(client)
        self._renew = HELD_RENEW.register(client)

    def record(self, message_id: str, job_ids: list[str]) -> None:
        """A worker received ``message_id``: lease it (one round trip; the lease runs on the
        Redis server's clock)."""
        if not job_ids:
            return
        self._record(keys={"held": self._keys.held,
                           "message": self._keys.held_message(message_id)},
                     args={"message_id": message_id, "job_ids": json.dumps(job_ids),
                           "lease_seconds": repr(self.lease_seconds)})

    def renew(self, message_ids: Iterable[str]) -> int:
        """Extend the leases of messages this worker still holds (only those recorded), on
        the Redis server's clock."""
        ids = list(message_ids)
        changed = 0
        for start in range(0, len(ids), SCAN_CHUNK):  # a script's arguments unpack on its stack
            changed += int(self._renew(keys={"held": self._keys.held},
                                       args={"lease_seconds": repr(self.lease_seconds),
                                             "message_ids": ids[start:start + SCAN_CHUNK]})
                           or 0)
        return changed

    def release(self, message_id: str) -> None:
        """The message was handled: its jobs have their own state now."""
        pipe = self._r.pipeline(transaction=False)
        pipe.zrem(self._keys.held, message_id)
        pipe.delete(self._keys.held_message(message_id))
        pipe.execute()

    def expired(self, now: float, limit: int) -> list[tuple[str, list[str]]]:
        """Messages whose lease ran out, with their job ids."""
        ids = [x.decode() for x in self._r.zrangebyscore(self._keys.held, "-inf", now,
                                                          start=0, num=limit)]
        if not ids:
            return []
        raw = self._r.mget([self._keys.held_message(i) for i in ids])
        return [(i, json.loads(r) if r else []) for i, r in zip(ids, raw, strict=True)]

    def live_job_ids(self, now: float) -> set[str]:
        """Job ids of the messages held under a live lease."""
        ids = [x.decode() for x in self._r.zrangebyscore(self._keys.held, now, "+inf")]
        out: set[str] = set()
        for start in range(0, len(ids), SCAN_CHUNK):
            part = ids[start:start + SCAN_CHUNK]
            for raw in self._r.mget([self._keys.held_message(i) for i in part]):
                if raw:
                    out.update(json.loads(raw))
        return out


def queued_in_broker(client: redis.Redis, keys: Keys, queue: str = QUEUE) -> set[str]:
    """The job ids of every message waiting in the broker's ``queue`` (all priorities)."""
    out: set[str] = set()
    for suffix in PRIORITY_SUFFIXES:
        name = keys.queue(queue) + suffix
        start = 0
        while True:
            chunk = client.lrange(name, start, start + SCAN_CHUNK - 1)
            for raw in chunk:
                out.update(_message_job_ids(raw))
            if len(chunk) < SCAN_CHUNK:
                break
            start += SCAN_CHUNK
    return out


def queued_in_intake(client: redis.Redis, keys: Keys) -> set[str]:
    """The job ids of every entry of ``P intake`` (not yet read, or read and not yet handed to
    the pool): their jobs are waiting, not lost."""
    out: set[str] = set()
    start = "-"
    while True:
        chunk = client.xrange(keys.intake, min=start, max="+", count=SCAN_CHUNK)
        for _entry_id, fields in chunk:
            try:
                out.add(str(json.loads(fields[b"job"])["job_id"]))
            except (KeyError, ValueError, TypeError):
                continue
        if len(chunk) < SCAN_CHUNK:
            return out
        last = chunk[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def unacked_messages(client: redis.Redis, keys: Keys, *, delivered_before: float
                     ) -> Iterator[tuple[str, list[str]]]:
    """The delivery tag and job ids of each message in the broker's ``unacked`` hash that its
    consumer received before ``delivered_before`` (kombu scores ``unacked_index`` with the
    consumer's clock: this only chooses which entries to look at). Read a page at a time."""
    start = 0
    while True:
        tags = client.zrangebyscore(keys.unacked_index, "-inf", delivered_before, start=start,
                                    num=SCAN_CHUNK)
        if not tags:
            return
        for tag, raw in zip(tags, client.hmget(keys.unacked, tags), strict=True):
            if raw:
                yield tag.decode(), _unacked_job_ids(raw)
        start += len(tags)


def forget_unacked(client: redis.Redis, keys: Keys, tags: list[str]) -> None:
    """Drop messages from the broker's ``unacked`` hash and index, as kombu's acknowledgement
    does (an acknowledgement that comes later finds nothing and changes nothing)."""
    if tags:
        pipe = client.pipeline(transaction=False)
        pipe.hdel(keys.unacked, *tags)
        pipe.zrem(keys.unacked_index, *tags)
        pipe.execute()


def _unacked_job_ids(raw: bytes) -> list[str]:
    """Job ids of one entry of ``unacked`` (kombu stores ``[message, exchange, routing_key]``)."""
    try:
        return _payload_job_ids(json.loads(raw)[0])
    except (ValueError, KeyError, TypeError, IndexError):
        return []


def _message_job_ids(raw: bytes) -> list[str]:
    """Job ids of one kombu message as the Redis transport stores it; [] if unreadable."""
    try:
        return _payload_job_ids(json.loads(raw))
    except ValueError:
        return []


def _payload_job_ids(message: Any) -> list[str]:
    """Job ids of one decoded kombu message; [] if unreadable."""
    try:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded = json.loads(body)
        kwargs = decoded[1] if isinstance(decoded, list) else decoded.get("kwargs", {})
        name = message.get("headers", {}).get("task", "")
        return job_ids_of(name, kwargs if isinstance(kwargs, Mapping) else {})
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return []


def redis_restarted(client: redis.Redis, keys: Keys) -> bool:
    """True once per Redis restart (or the first time ever): the run id differs from the one
    recorded, which is then recorded."""
    try:
        run_id = str(client.info("server").get("run_id", ""))
    except redis.ResponseError:  # INFO refused (an ACL user limited to its keys): only a
        run_id = "unknown"  # restart that lost the key itself is seen
    previous = client.getset(keys.redis_run, run_id)
    return previous is None or previous.decode() != run_id


def message_from_record(client: redis.Redis, keys: Keys, job_id: str, now: float
                        ) -> dict[str, Any] | None:
    """The job's task message rebuilt from its record, or None if the job has ended (or has no
    record): what the sweeper and an operator's requeue publish again."""
    fields = client.hmget(keys.job(job_id), "state", "params", "campaign", "reference",
                          "producer")
    state = (fields[0] or b"").decode()
    if not state or state in TERMINAL_STATES:
        return None
    message = {"job_id": job_id, "params": json.loads(fields[1] or b"{}"),
               "campaign": (fields[2] or b"").decode(),
               "reference": (fields[3] or b"").decode(), "enqueued_at": now}
    if fields[4]:
        message["producer"] = fields[4].decode()
    return message
