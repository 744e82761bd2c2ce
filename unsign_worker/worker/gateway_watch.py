"""The thread that acts when this worker cannot reach the gateway (see
:mod:`unsign_worker.worker.reachability`).

While the gateway answers, the watch looks every second whether requests have waited with no
answer for a few seconds (:meth:`Reachability.stalled`); if so it probes the gateway, and a
failed handshake declares it unreachable, without waiting for the requests' read timeouts.

When the gateway becomes unreachable from this process it says so once at WARNING (the host,
since when, the fault), stops the Celery consumer of the job queue (``pause``: no new message
is taken; the messages already received are handed back by the tasks, see
:mod:`unsign_worker.worker.processor`), gives up on the requests still in flight (``abort``:
they fail at once and go back too), and probes the gateway with a handshake that sends
nothing, every ``base_seconds`` doubling up to ``cap_seconds``. When a probe completes it
resumes the consumer and says so once, with how long the gateway was unreachable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from unsign_worker.protocol.handshake import handshake, host_and_port
from unsign_worker.store.gateway_reach import UnreachableWorkers
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.reachability import STALL_SECONDS, Reachability

log = logging.getLogger(__name__)

#: First wait before probing an unreachable gateway, seconds (doubles after each failure).
PROBE_BASE_SECONDS = 1.0
#: Longest wait between two probes, seconds.
PROBE_CAP_SECONDS = 10.0
#: How often a watch with nothing to do looks whether it was asked to stop, seconds.
IDLE_SECONDS = 1.0


def utc_time(epoch: float) -> str:
    """``HH:MM:SS`` of ``epoch`` in UTC, for log lines."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


class GatewayWatch(threading.Thread):
    """Stops taking jobs while the gateway is unreachable from here, probes, resumes.

    Parameters:
        reachability: the process's reachability, tripped by the requests' faults.
        probe: raises ``OSError`` while the gateway cannot be reached (a handshake).
        pause: stop taking jobs (cancel the consumer of the job queue).
        resume: take jobs again.
        base_seconds / cap_seconds: the probes' backoff.
        clock: epoch seconds (injected for tests).
    """

    def __init__(self, reachability: Reachability, *, probe: Callable[[], object],
                 pause: Callable[[], object], resume: Callable[[], object],
                 abort: Callable[[], object] = lambda: None,
                 base_seconds: float = PROBE_BASE_SECONDS, cap_seconds: float = PROBE_CAP_SECONDS,
                 stall_seconds: float = STALL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="unsign-gateway-watch", daemon=True)
        self.reachability = reachability
        self._probe, self._pause, self._resume, self._abort = probe, pause, resume, abort
        self._base, self._cap, self._clock = base_seconds, cap_seconds, clock
        self._stall = stall_seconds
        self._stall_probed_at = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            if self.reachability.tripped.wait(IDLE_SECONDS):
                if not self._stop_event.is_set():
                    self._ride_out()
            else:
                self.check_stall()

    def check_stall(self) -> None:
        """Probe once if requests wait with no answer; a failed handshake declares the gateway
        unreachable. A probe that succeeds (a slow gateway) is not repeated for a stall's
        length."""
        now = self._clock()
        quiet = self.reachability.stalled(now, self._stall)
        if quiet is None or now - self._stall_probed_at < self._stall:
            return
        self._stall_probed_at = now
        try:
            self._probe()
        except OSError as exc:
            self.reachability.declare(f"no answer for {quiet:.0f}s and no handshake: {exc}",
                                      now - quiet)

    def _ride_out(self) -> None:
        outage = self.reachability.outage
        if outage is None:
            return
        host = self.reachability.host
        log.warning("gateway %s unreachable from this worker since %s UTC (%s), not taking "
                    "jobs until it answers", host, utc_time(outage.since), outage.cause)
        self._pause()
        self._abort()
        wait, probes = self._base, 0
        while not self._stop_event.wait(wait):
            probes += 1
            try:
                self._probe()
            except OSError as exc:
                log.debug("gateway %s: probe %d failed: %s", host, probes, exc)
                wait = min(self._cap, wait * 2)
                continue
            down = self.reachability.probe_succeeded(self._clock())
            self._resume()
            log.warning("gateway %s reachable again after %.0f s (%d probe(s)), taking jobs "
                        "again", host, down, probes)
            return

    def stop(self) -> None:
        self._stop_event.set()


def watch_consumer(ctx: WorkerContext, consumer: Any, queue: str) -> GatewayWatch:
    """Give ``ctx`` a reachability and start the watch that stops and resumes ``consumer`` (a
    Celery worker's consumer) on ``queue``. Celery's own way to change a worker's queues from
    outside its loop is ``call_soon`` (what the ``cancel_consumer`` and ``add_consumer`` remote
    commands do): the change runs in the consumer's loop, between two reads of the broker.
    The outage is also recorded for ``status`` and the exporter (``P gateway_unreachable``)."""
    s = ctx.settings
    reach = ctx.reachability = Reachability(host_and_port(s.gateway_url)[0])
    record, hostname = UnreachableWorkers(ctx.redis, ctx.keys), str(consumer.hostname)
    _quietly(lambda: record.clear(hostname))  # a record left by an earlier run of this name

    def probe() -> object:
        return handshake(s.gateway_url, timeout_seconds=s.connect_timeout_seconds,
                         ca_bundle=s.ca_bundle)

    def pause() -> None:
        consumer.call_soon(consumer.cancel_task_queue, queue)
        outage = reach.outage
        if outage is not None:
            _quietly(lambda: record.mark(hostname, since=outage.since, cause=outage.cause))

    def resume() -> None:
        consumer.call_soon(consumer.add_task_queue, queue)
        _quietly(lambda: record.clear(hostname))

    watch = GatewayWatch(reach, probe=probe, pause=pause, resume=resume,
                         abort=ctx.gateway.abort_in_flight)
    watch.start()
    return watch


def _quietly(write: Callable[[], object]) -> None:
    """A bookkeeping write that must not stop the watch (Redis may be away too)."""
    try:
        write()
    except Exception as exc:
        log.warning("could not record the gateway's reachability from this worker: %s", exc)
