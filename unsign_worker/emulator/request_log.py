"""The gateway's own record of every request it received: one JSON line per request to
``/gateway.do``, appended to a file as the answer goes out (``--request-log FILE``).

A line holds when the request arrived and was answered (epoch seconds), the client's address,
the service, the id of the agreement it reached, what the answer said (``T`` or the error code;
"" when none was written), what happened to the connection (``answer``, or the fault that took
its place: ``LOST_ANSWER``, ``RESET``, ``HANG``, ``HTTP_503``...) and whether this request
unsigned the agreement. Never a parameter, an identity or a signature. The rehearsal judges the
workers from it (docs/rehearsal.md). Each line is written whole and flushed at once, so a
killed emulator leaves every line it answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO


class RequestLog:
    """An open request log; :meth:`close` when done."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: TextIO = open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, *, received_at: float, answered_at: float, peer: str, service: str,
              agreement: str, code: str, action: str, applied: bool) -> None:
        line = json.dumps({"received_at": round(received_at, 6),
                           "answered_at": round(answered_at, 6), "peer": peer,
                           "service": service, "agreement": agreement, "code": code,
                           "action": action, "applied": applied},
                          ensure_ascii=False, separators=(",", ":"))
        self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()
