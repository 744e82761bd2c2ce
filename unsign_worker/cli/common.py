"""Helpers shared by the command modules: settings, Redis, errors."""

from __future__ import annotations

from typing import NoReturn, TextIO

import click
import redis

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.hosts import redact_url
from unsign_worker.settings import Settings
from unsign_worker.store.sentinel import connect


def load_settings() -> Settings:
    """Settings from the environment; a bad setting ends the command with its message."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(str(exc))


def redis_for(settings: Settings) -> redis.Redis:
    client = connect(settings.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        fail(f"Redis at {redact_url(settings.redis_url)} is not reachable: {exc}")
    return client


def output_file(path: str) -> TextIO:
    """``--out PATH`` opened private (0600) and never through a symlink, or the command ends
    with the reason."""
    from unsign_worker.producers.reports import OutputFileError, open_output

    try:
        return open_output(path)
    except OutputFileError as exc:
        fail(f"--out: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)
