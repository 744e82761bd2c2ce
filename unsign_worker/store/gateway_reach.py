"""Which workers cannot reach the gateway right now, for ``status`` and the exporter.

A worker that finds the gateway unreachable from its host (:mod:`unsign_worker.worker.reachability`)
records it here, and removes the record when a probe gets through or when it starts. Key:
``P gateway_unreachable`` (hash: worker hostname -> JSON ``{"since": epoch seconds, "cause":
the fault}``). Only what workers say: a worker that died while cut leaves its record, which
readers ignore once its heartbeat (``P workers``) is stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from unsign_worker.store.keys import Keys


class UnreachableWorkers:
    """Reads and writes ``P gateway_unreachable``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.gateway_unreachable

    def mark(self, hostname: str, *, since: float, cause: str) -> None:
        """``hostname`` cannot reach the gateway since ``since`` (epoch seconds)."""
        self._r.hset(self._key, hostname, json.dumps({"since": since, "cause": cause}))

    def clear(self, hostname: str) -> None:
        """``hostname`` reaches the gateway (again)."""
        self._r.hdel(self._key, hostname)

    def read(self) -> dict[str, dict[str, Any]]:
        """Every record: hostname -> ``{"since", "cause"}``."""
        return parse(self._r.hgetall(self._key))


def parse(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    """The records of an ``HGETALL`` of the key (for a pipelined read); unreadable ones are
    skipped."""
    out: dict[str, dict[str, Any]] = {}
    for host, value in raw.items():
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict):
            out[host.decode() if isinstance(host, bytes) else str(host)] = record
    return out
