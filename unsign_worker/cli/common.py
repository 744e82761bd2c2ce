"""Helpers shared by the command modules: settings, Redis, errors."""

from __future__ import annotations

from typing import NoReturn

import click
import redis

from unsign_worker.exceptions import ConfigError
from unsign_worker.sentinel import connect
from unsign_worker.settings import Settings


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
        fail(f"Redis at {_safe_url(settings.redis_url)} is not reachable: {exc}")
    return client


def _safe_url(url: str) -> str:
    """The URL without a password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)
