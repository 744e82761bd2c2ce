"""docs/console.md lists every URL path the console serves, and nothing it does not."""

from __future__ import annotations

import re

import redis

from tests import paths
from unsign_worker.console.app import create_app
from unsign_worker.console.hosts import HostPolicy
from unsign_worker.settings import Settings

DOC = paths.ROOT / "docs" / "console.md"
ROW = re.compile(r"^\| `(GET|POST)` \| `(/[^`]*)` \|", re.M)


def documented() -> set[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## URL paths"):]
    table = table[:table.index("\n## ", 1)]
    return set(ROW.findall(table))


def test_the_url_paths_in_the_docs_are_the_routes_of_the_application() -> None:
    app = create_app(Settings(), redis.Redis(), {}, HostPolicy("127.0.0.1"))
    served = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None}
    assert documented() == served
    # every GET answers HEAD too, as the docs say
    heads = {path for method, path in served if method == "GET"}
    assert heads == {route.resource.canonical for route in app.router.routes()
                     if route.method == "HEAD" and route.resource is not None}
