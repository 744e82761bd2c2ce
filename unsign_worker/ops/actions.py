"""The operators' journal: every human action (who, when, what, on what, why), append-only.

Each action is one entry of the stream ``P actions`` (trimmed only at ``ACTIONS_MAXLEN``) and one
of ``P actions:<target>`` (the history of one job, campaign or the breaker, kept
``TARGET_RETENTION_SECONDS`` after its last action), so a dead-letter entry or a campaign shows
its own history without a scan. Nothing here edits or deletes an entry.

Notes are the operator's words: they are shown as typed, so the console and the CLI tell people
not to write personal data in them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from unsign_worker.store.keys import Keys

#: Approximate length kept in the global journal.
ACTIONS_MAXLEN = 1_000_000
#: A target's own history outlives a resolved dead-letter entry (30 days).
TARGET_RETENTION_SECONDS = 90 * 86400
#: Longest note kept, characters.
MAX_NOTE = 2000


@dataclass(frozen=True)
class Action:
    time: float
    by: str
    action: str
    target: str
    note: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "by": self.by, "action": self.action, "target": self.target,
                "note": self.note, "detail": self.detail}


def actions_key(keys: Keys) -> str:
    return f"{keys.prefix}actions"


def target_key(keys: Keys, target: str) -> str:
    return f"{keys.prefix}actions:{target}"


class ActionLog:
    """Appends and reads the operators' journal."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def record(self, *, by: str, action: str, target: str, note: str = "",
               detail: str = "") -> Action:
        entry = Action(time=time.time(), by=by, action=action, target=target,
                       note=note.strip()[:MAX_NOTE], detail=detail)
        data = {"data": json.dumps(entry.as_dict(), ensure_ascii=False)}
        pipe = self._r.pipeline(transaction=True)
        pipe.xadd(actions_key(self._keys), data, maxlen=ACTIONS_MAXLEN, approximate=True)
        pipe.xadd(target_key(self._keys, target), data)
        pipe.expire(target_key(self._keys, target), TARGET_RETENTION_SECONDS)
        pipe.execute()
        return entry

    def for_target(self, target: str) -> list[Action]:
        """A target's actions, oldest first."""
        return [_decode(f) for _, f in self._r.xrange(target_key(self._keys, target))]

    def for_targets(self, targets: list[str]) -> dict[str, list[Action]]:
        pipe = self._r.pipeline(transaction=False)
        for target in targets:
            pipe.xrange(target_key(self._keys, target))
        return {t: [_decode(f) for _, f in rows]
                for t, rows in zip(targets, pipe.execute(), strict=True)}

    def recent(self, count: int = 100) -> list[Action]:
        """The newest actions, newest first."""
        return [_decode(f) for _, f in self._r.xrevrange(actions_key(self._keys), count=count)]


def _decode(fields: dict[bytes, bytes]) -> Action:
    data = json.loads(fields[b"data"])
    return Action(time=float(data.get("time", 0)), by=str(data.get("by", "")),
                  action=str(data.get("action", "")), target=str(data.get("target", "")),
                  note=str(data.get("note", "")), detail=str(data.get("detail", "")))
