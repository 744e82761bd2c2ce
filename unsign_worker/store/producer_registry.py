"""The producers the workers read, and their limits.

``P producers`` maps each producer's name to its settings (JSON); the workers read the streams
``P inbox:<name>`` of the producers listed there (re-read every few seconds, so adding one needs
no restart). Each producer also finds its own limits in ``P producer:<name>:settings``, a key it
may read: ``max_pending`` (entries its stream may hold before the workers refuse the surplus)
and ``max_entry_bytes`` (the largest entry read). ``P producers:rejected`` counts each
producer's refused entries by reason (the metric ``unsign_producer_rejected_total``).

Written by the operator (``unsign-worker producer add``); read by the workers and the exporter.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from unsign_worker.store.keys import Keys, producer_name_error

#: Entries a producer's stream may hold (not yet taken) before the surplus is refused.
DEFAULT_MAX_PENDING = 10_000
#: Largest entry read (field names and values together), bytes: a job is a few hundred.
DEFAULT_MAX_ENTRY_BYTES = 16_384
#: A producer's limit on its entries' size may not be set above this, bytes (the default: a
#: limit may only be lowered; the workers' parser reads no more either).
MAX_ENTRY_BYTES_LIMIT = DEFAULT_MAX_ENTRY_BYTES
#: Approximate length kept of a producer's refused stream.
REFUSED_MAXLEN = 10_000


class ProducerError(ValueError):
    """A producer name or setting that breaks a rule, or an unknown producer."""


@dataclass(frozen=True)
class ProducerSettings:
    """One producer's entry in ``P producers``."""

    name: str
    max_pending: int = DEFAULT_MAX_PENDING
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    added_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_limits(max_pending: int, max_entry_bytes: int) -> None:
    """Raises ProducerError naming the setting and its rule."""
    if max_pending < 1:
        raise ProducerError(f"max_pending: {max_pending} must be 1 or more")
    if not 256 <= max_entry_bytes <= MAX_ENTRY_BYTES_LIMIT:
        raise ProducerError(f"max_entry_bytes: {max_entry_bytes} must be between 256 and "
                            f"{MAX_ENTRY_BYTES_LIMIT}")


def parse(name: str, raw: bytes | str) -> ProducerSettings:
    """One entry of ``P producers``; a damaged one gets the defaults."""
    try:
        data = json.loads(raw)
        return ProducerSettings(name=name, max_pending=int(data["max_pending"]),
                                max_entry_bytes=int(data["max_entry_bytes"]),
                                added_at=float(data.get("added_at") or 0))
    except (ValueError, TypeError, KeyError):
        return ProducerSettings(name=name)


class ProducerRegistry:
    """Adds, lists and removes producers."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def add(self, name: str, *, max_pending: int = DEFAULT_MAX_PENDING,
            max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES) -> ProducerSettings:
        """Add producer ``name``, or change its limits (its ``added_at`` is kept).

        Raises:
            ProducerError: a name or limit that breaks its rule.
        """
        if (error := producer_name_error(name)) is not None:
            raise ProducerError(error)
        check_limits(max_pending, max_entry_bytes)
        known = self.get(name)
        settings = ProducerSettings(name=name, max_pending=max_pending,
                                    max_entry_bytes=max_entry_bytes,
                                    added_at=known.added_at if known else time.time())
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._keys.producers, name, json.dumps(
            {"max_pending": max_pending, "max_entry_bytes": max_entry_bytes,
             "added_at": settings.added_at}))
        pipe.hset(self._keys.producer_settings(name),
                  mapping={"max_pending": max_pending, "max_entry_bytes": max_entry_bytes})
        pipe.execute()
        return settings

    def remove(self, name: str) -> bool:
        """Stop reading producer ``name``'s stream (its entries and jobs stay); returns whether
        it was listed."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(self._keys.producers, name)
        pipe.delete(self._keys.producer_settings(name))
        return bool(pipe.execute()[0])

    def get(self, name: str) -> ProducerSettings | None:
        raw = self._r.hget(self._keys.producers, name)
        return parse(name, raw) if raw is not None else None

    def all(self) -> dict[str, ProducerSettings]:
        """Every producer, by name (sorted)."""
        raw = self._r.hgetall(self._keys.producers)
        named = {k.decode(): v for k, v in raw.items()}
        return {name: parse(name, named[name]) for name in sorted(named)
                if producer_name_error(name) is None}

    def waiting(self, names: list[str]) -> dict[str, int]:
        """Entries in each named producer's stream (not yet taken, or being taken)."""
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            pipe.xlen(self._keys.inbox(name))
        return {name: int(n) for name, n in zip(names, pipe.execute(), strict=True)}

    def rejected(self) -> dict[tuple[str, str], int]:
        """Refused entries by (producer, reason), all time."""
        out: dict[tuple[str, str], int] = {}
        for field, value in self._r.hgetall(self._keys.producers_rejected).items():
            name, _, reason = field.decode().partition(":")
            out[(name, reason)] = int(value)
        return out

    def legacy_waiting(self) -> int:
        """Entries in ``P inbox``, the stream every producer shared before each had its own:
        no worker reads it any more (:meth:`adopt_legacy` moves them)."""
        return int(self._r.xlen(self._keys.legacy_inbox))

    def adopt_legacy(self, name: str, *, chunk: int = 500) -> int:
        """Move every entry of the shared ``P inbox`` to producer ``name``'s stream (each one
        added there and deleted here in one transaction, so none is lost or doubled); returns
        how many moved.

        Raises:
            ProducerError: ``name`` is not a registered producer.
        """
        if self.get(name) is None:
            raise ProducerError(f"no producer {name!r}: add it first (unsign-worker producer "
                                f"add {name})")
        moved = 0
        while entries := self._r.xrange(self._keys.legacy_inbox, count=chunk):
            pipe = self._r.pipeline(transaction=True)
            for _, fields in entries:
                pipe.xadd(self._keys.inbox(name), fields)
            pipe.xdel(self._keys.legacy_inbox, *[entry_id for entry_id, _ in entries])
            pipe.execute()
            moved += len(entries)
        return moved
