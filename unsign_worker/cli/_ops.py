"""Helpers of the producer and operator commands: producer, republisher, output."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
import redis
from rich.console import Console

from unsign_worker.cli.common import redis_for
from unsign_worker.job import Job
from unsign_worker.keys import Keys
from unsign_worker.producer import Producer, producer_app
from unsign_worker.settings import Settings


def producer_for(settings: Settings, client: redis.Redis | None = None) -> Producer:
    """A producer on the settings' broker and Redis (the caller closes ``producer.app``)."""
    client = client or redis_for(settings)
    app = producer_app(settings.broker_url, settings.key_prefix,
                       visibility_timeout_seconds=int(settings.visibility_timeout_seconds))
    return Producer(app, client, Keys(settings.key_prefix))


def republisher(settings: Settings, producer: Producer) -> Callable[[str, float], bool]:
    """``republish(job_id, now) -> bool``: send a job again from its record, unless ended."""
    from unsign_worker.sweeper import Sweeper

    sweeper = Sweeper(producer.redis, producer.keys, lease_seconds=settings.lease_seconds,
                      probe_after_seconds=settings.breaker_probe_after_seconds,
                      publish_job=lambda message: producer.send(Job.from_message(message)),
                      publish_hook=lambda _identity: None)
    return sweeper.republish


def operator() -> str:
    """Who runs the command, for the record: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


#: Width of tables written to a file or pipe (a terminal uses its own width).
PIPE_WIDTH = 160


def console(*, err: bool = False) -> Console:
    """A rich console on the current standard stream (click's test runner swaps them)."""
    stream = sys.stderr if err else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(file=stream, highlight=False, soft_wrap=False, width=width)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=False))


def when(epoch: float | None) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS``; '-' for nothing."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
