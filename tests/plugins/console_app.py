"""The console's application in this process (aiohttp's test server, real Redis): pages read
without starting a console process."""

from __future__ import annotations

import asyncio

import redis
from aiohttp.test_utils import TestClient, TestServer

from unsign_worker.console.app import create_app
from unsign_worker.console.hosts import HostPolicy
from unsign_worker.settings import Settings


def get_pages(client: redis.Redis, key_prefix: str, *paths: str) -> list[tuple[int, str]]:
    """GET each path from a console on ``key_prefix`` (no credentials: loopback's ``local``
    user); the status and text of each answer."""
    hosts = HostPolicy("127.0.0.1")
    app = create_app(Settings(key_prefix=key_prefix), client, {}, hosts)

    async def fetch() -> list[tuple[int, str]]:
        async with TestServer(app, host="127.0.0.1") as server:
            hosts.listening([server.port])
            async with TestClient(server) as browser:
                out = []
                for path in paths:
                    answer = await browser.get(path, allow_redirects=False)
                    out.append((answer.status, await answer.text()))
                return out

    return asyncio.run(fetch())
