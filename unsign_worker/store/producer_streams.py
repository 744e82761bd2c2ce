"""Reading the producers' streams ``P inbox:<name>`` inside Redis, so that no entry a producer
should not have written ever reaches a worker (``store/lua/inbox_read.lua``).

One call reads up to ``count`` new entries of each producer's stream for the consumer group:
an entry larger than the producer's ``max_entry_bytes``, or read while its stream holds more
than its ``max_pending`` entries, is refused inside the script (acknowledged, deleted, listed
in ``P producer:<name>:refused`` with the reason and counted in ``P producers:rejected``); the
worker receives only the others, and the list of what was refused, for its log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from unsign_worker.store.keys import INBOX_GROUP, Keys
from unsign_worker.store.producer_registry import REFUSED_MAXLEN, ProducerSettings
from unsign_worker.store.scripts import load

INBOX_READ = load("inbox_read")


@dataclass(frozen=True)
class Refusal:
    """An entry refused unread."""

    producer: str
    entry_id: str
    #: ``max_size`` or ``max_pending``
    reason: str
    detail: str


@dataclass(frozen=True)
class Read:
    """What one read returned: accepted entries as (producer, entry id, fields), and the
    refused ones."""

    accepted: list[tuple[str, str, dict[bytes, bytes]]]
    refused: list[Refusal]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProducerStreams:
    """Reads the producers' streams for one consumer."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._read = INBOX_READ.register(client)

    def read(self, producers: Sequence[ProducerSettings], *, consumer: str, count: int,
             pipe: redis.client.Pipeline | None = None) -> Read | None:
        """Read new entries of each producer's stream (with ``pipe``: queue the call there
        and return None; :meth:`parse` reads its reply)."""
        k = self._keys
        streams: list[str] = []
        for p in producers:
            streams += [k.inbox(p.name), k.producer_refused(p.name)]
        reply = self._read(
            keys={"rejected": k.producers_rejected, "streams": streams},
            args={"group": INBOX_GROUP, "consumer": consumer, "count": count,
                  "names": json.dumps([p.name for p in producers]),
                  "max_bytes": json.dumps([p.max_entry_bytes for p in producers]),
                  "max_pending": json.dumps([p.max_pending for p in producers]),
                  "refused_maxlen": REFUSED_MAXLEN},
            client=pipe)
        return None if pipe is not None else self.parse(producers, reply)

    @staticmethod
    def parse(producers: Sequence[ProducerSettings], reply: list) -> Read:
        accepted_raw, refused_raw = reply
        accepted = []
        for index, entry_id, flat in accepted_raw:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            accepted.append((producers[int(index) - 1].name, _text(entry_id), fields))
        refused = [Refusal(producers[int(index) - 1].name, _text(entry_id), _text(reason),
                           _text(detail))
                   for index, entry_id, reason, detail in refused_raw]
        return Read(accepted, refused)
