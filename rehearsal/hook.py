"""The round's success hook (``UNSIGN_SUCCESS_HOOK=rehearsal.hook:record``): the merchant's
business step, which records each call in a file the product never writes
(``REHEARSAL_HOOK_FILE``, on the producer host's file system): one JSON line with the
idempotency key the worker passes, the job, its reference (the agreement) and the time.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any


def record(event: dict[str, Any]) -> None:
    line = json.dumps({"key": event["idempotency_key"], "job_id": event.get("job_id", ""),
                       "reference": event.get("reference", ""), "at": time.time(),
                       "host": socket.gethostname()}, separators=(",", ":"))
    fd = os.open(os.environ["REHEARSAL_HOOK_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write: lines of concurrent calls never mix
    finally:
        os.close(fd)
