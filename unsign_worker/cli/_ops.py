"""Helpers of the producer and operator commands: producer, republisher, output."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import redis
from rich.console import Console

from unsign_worker.cli.common import redis_for
from unsign_worker.producers.producer import Producer
from unsign_worker.settings import Settings

if TYPE_CHECKING:
    from unsign_worker.ops.operations import Operations


def producer_for(settings: Settings, client: redis.Redis | None = None) -> Producer:
    """A producer on the settings' broker and Redis (the caller closes ``producer.app``)."""
    from unsign_worker.ops.operations import producer_for as make

    return make(settings, client or redis_for(settings))


def operations(settings: Settings) -> Operations:
    """The operator's actions on the settings' deployment (Redis checked first)."""
    from unsign_worker.ops.operations import Operations

    return Operations(settings, redis_for(settings))


def operator() -> str:
    """Who runs the command, for the record: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


#: Width of tables written to a file or pipe (a terminal uses its own width).
PIPE_WIDTH = 160
#: Width of a console that never wraps (:func:`console` with ``whole_rows``): tables keep their
#: natural width, one line per row.
UNBOUNDED_WIDTH = 100_000


def console(*, err: bool = False, whole_rows: bool = False) -> Console:
    """A rich console on the current standard stream (click's test runner swaps them).

    Written to a file or pipe, it is :data:`PIPE_WIDTH` wide, or with ``whole_rows`` as wide as
    what it prints (tables of ids: a row is never wrapped or cut, so it can be grepped)."""
    stream = sys.stderr if err else sys.stdout
    width = None if stream.isatty() else UNBOUNDED_WIDTH if whole_rows else PIPE_WIDTH
    return Console(file=stream, highlight=False, soft_wrap=False, width=width)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=False))


def when(epoch: float | None) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS``; '-' for nothing."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
