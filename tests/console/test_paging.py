"""Pages of a list: the rows of a page and its neighbours, whatever number a URL asks for."""

from __future__ import annotations

import pytest

from unsign_worker.console.paging import Page


@pytest.mark.parametrize(("asked", "total", "number", "start", "stop", "previous", "next_"), [
    (None, 0, 1, 0, 0, None, None),
    ("1", 45, 1, 0, 20, None, 2),
    ("2", 45, 2, 20, 40, 1, 3),
    ("3", 45, 3, 40, 45, 2, None),
    ("99", 45, 3, 40, 45, 2, None),
    ("0", 45, 1, 0, 20, None, 2),
    ("-4", 45, 1, 0, 20, None, 2),
    ("two", 45, 1, 0, 20, None, 2),
    ("", 20, 1, 0, 20, None, None),
    (2, 21, 2, 20, 21, 1, None),
])
def test_a_page_shows_its_rows_and_links_to_the_pages_that_exist(
        asked: str | int | None, total: int, number: int, start: int, stop: int,
        previous: int | None, next_: int | None) -> None:
    page = Page.of(asked, total, size=20)
    assert (page.number, page.start, page.stop) == (number, start, stop)
    assert (page.previous, page.next) == (previous, next_)
    assert page.pages == max(1, -(-total // 20))
