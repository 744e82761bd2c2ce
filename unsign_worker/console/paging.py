"""Pages of a list: which rows one page shows and the links to its neighbours. Pure."""

from __future__ import annotations

from dataclasses import dataclass

#: Rows on one page of a list (escalations of one code).
PAGE_SIZE = 20


@dataclass(frozen=True)
class Page:
    """Page ``number`` (1-based) of ``total`` rows, ``size`` a page."""

    number: int
    size: int
    total: int

    @classmethod
    def of(cls, asked: str | int | None, total: int, size: int = PAGE_SIZE) -> Page:
        """The page asked for in a URL (``?page=3``), kept within the pages there are: a
        missing, malformed or too large number shows the nearest page that exists."""
        try:
            number = int(asked or 1)
        except (TypeError, ValueError):
            number = 1
        return cls(min(max(number, 1), cls.count(total, size)), size, total)

    @staticmethod
    def count(total: int, size: int) -> int:
        """Pages needed for ``total`` rows (one, empty, when there are none)."""
        return max(1, -(-total // size))

    @property
    def pages(self) -> int:
        return self.count(self.total, self.size)

    @property
    def start(self) -> int:
        """Index of the page's first row."""
        return (self.number - 1) * self.size

    @property
    def stop(self) -> int:
        """Index after the page's last row."""
        return min(self.start + self.size, self.total)

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None
