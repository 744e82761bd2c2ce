"""``make_ctx``: a worker context (real Redis, the test's key prefix) towards a gateway URL.

``make_ctx(gateway, **overrides)`` builds a :class:`WorkerContext` for anything with a ``url``
(the emulator, a scripted server) with short timeouts: towards an HTTPS gateway with production
settings (the tests' CA, ``localhost`` allowed), towards plain HTTP in sandbox mode; contexts are
closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from tests.plugins.emulator import KEY, PARTNER
from tests.plugins.pki import gateway_settings
from unsign_worker.settings import Secret, Settings
from unsign_worker.worker.context import WorkerContext, build_context


class HasUrl(Protocol):
    url: str


@pytest.fixture
def make_ctx(redis_url: str, key_prefix: str) -> Iterator[Callable[..., WorkerContext]]:
    made: list[WorkerContext] = []

    def make(gateway: HasUrl, **overrides: Any) -> WorkerContext:
        values: dict[str, Any] = dict(
            partner=PARTNER, key=Secret(KEY), **gateway_settings(gateway.url),
            redis_url=redis_url, broker_url=redis_url, key_prefix=key_prefix,
            connect_timeout_seconds=1, read_timeout_seconds=5, intask_retry_budget_seconds=0.5,
            retry_countdown_base_seconds=1, retry_countdown_cap_seconds=5, lease_seconds=20,
            visibility_timeout_seconds=60, retry_deadline_seconds=600, breaker_threshold=3)
        values.update(overrides)
        ctx = build_context(Settings(**values))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
