"""The merchant's business step after an unsign, run once per agreement.

``UNSIGN_SUCCESS_HOOK=package.module:function`` names a callable taking one ``dict`` (the event:
``idempotency_key``, ``job_id``, ``outcome``, ``params``, ``reference``, ``campaign``,
``customer``, ``unsigned_at``). The settle script records ``P hook:<identity>`` as ``pending`` in
the same atomic step that marks the agreement unsigned, so a crash right after cannot skip it.
Running it claims the record (``running`` with a lease); success marks it ``done``, and a done
hook never runs again, whatever is redelivered. If it raises, it is retried on its own (the
``unsign_worker.run_hook`` task, with backoff), never by unsigning again. The idempotency key is
stable per agreement, so a merchant whose step was interrupted after its own commit can tell.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.store.hook_records import HookRecords
from unsign_worker.store.keys import Keys
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage, ride_out

log = logging.getLogger(__name__)

HookFn = Callable[[dict[str, Any]], object]

#: Retry delays of a failing hook: base and cap, seconds.
HOOK_RETRY_BASE_SECONDS = 5.0
HOOK_RETRY_CAP_SECONDS = 600.0
#: A running hook's lease.
HOOK_LEASE_SECONDS = 120.0


def load_hook(spec: str) -> HookFn | None:
    """Import ``package.module:function``; empty spec -> None.

    Raises:
        ConfigError: malformed spec, module or attribute missing, not callable.
    """
    if not spec:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"UNSIGN_SUCCESS_HOOK: {spec!r} is not package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"UNSIGN_SUCCESS_HOOK: cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"UNSIGN_SUCCESS_HOOK: {module_name}.{attr} is not a callable")
    return fn  # type: ignore[no-any-return]


class HookRunStatus(StrEnum):
    """How one run of the hook ended."""

    DONE = "done"
    FAILED = "failed"
    #: not run: no hook configured, or its record is done already, running elsewhere or missing
    SKIPPED = "skipped"
    #: ran, but Redis stayed away for its whole lease: it may run again
    UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class HookRun:
    status: HookRunStatus
    attempts: int = 0
    retry_in: float = 0.0
    error: str = ""


class HookRunner:
    """Runs the success hook for one agreement, at most once successfully."""

    def __init__(self, client: redis.Redis, keys: Keys, fn: HookFn | None) -> None:
        self.records = HookRecords(client, keys)
        self.fn = fn

    def run(self, identity: str) -> HookRun:
        if self.fn is None:
            return HookRun(HookRunStatus.SKIPPED)
        started = time.monotonic()  # the lease itself runs on the Redis server's clock
        claim = self.records.claim(identity, lease_seconds=HOOK_LEASE_SECONDS)
        if claim.event is None:
            return HookRun(HookRunStatus.SKIPPED)
        attempts, event = claim.attempts, claim.event
        try:
            self.fn(event)
        except Exception as exc:  # the merchant's code: any failure is retried on its own
            delay = min(HOOK_RETRY_CAP_SECONDS, HOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1))
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.records.mark_failed(identity, error=error, retry_in=delay)
            log.warning("success hook failed (attempt %d, key %s): %s; retrying in %.0fs",
                        attempts, event.get("idempotency_key"), type(exc).__name__, delay)
            return HookRun(HookRunStatus.FAILED, attempts=attempts, retry_in=delay, error=error)
        # The merchant's step is done: a Redis blip must not make it run again, so the "done"
        # mark is retried for as long as this run's lease keeps another run away.
        try:
            ride_out(lambda: self.records.mark_done(identity),
                     Outage("Redis (recording a success hook as done)"),
                     deadline=started + HOOK_LEASE_SECONDS)
        except OUTAGE_ERRORS as exc:
            log.error("success hook ran (key %s) but Redis stayed unavailable for its whole "
                      "lease (%s): it may run again; the idempotency key lets the merchant "
                      "tell", event.get("idempotency_key"), type(exc).__name__)
            return HookRun(HookRunStatus.UNRECORDED, attempts=attempts, error=type(exc).__name__)
        return HookRun(HookRunStatus.DONE, attempts=attempts)
