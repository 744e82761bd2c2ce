"""Which line first named each row key: a compact index, so a million-row file costs a few
tens of megabytes, not hundreds. Pure.

Keys are kept as 64-bit BLAKE2b digests in two flat arrays (open addressing, linear probing,
at most half full): 12 bytes a row plus the free slots, instead of a Python ``dict`` of strings
(over 100 bytes a row). Two different keys share a digest with a probability of about
``rows² / 2**64`` (3 in 100 million for a million rows); the row would then be refused as a
repeat, never silently merged.
"""

from __future__ import annotations

import hashlib
from array import array

#: Slots allocated at first; doubled whenever the index is half full.
INITIAL_SLOTS = 1024


def digest(key: str) -> int:
    """A non-zero 64-bit digest of ``key`` (zero marks a free slot)."""
    raw = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little") | 1


class FirstLines:
    """``first_line(key, line)``: the line that first named ``key``, remembering ``line`` if
    none did."""

    def __init__(self, slots: int = INITIAL_SLOTS) -> None:
        size = 1
        while size < slots:
            size *= 2
        self._allocate(size)
        self._count = 0

    def _allocate(self, size: int) -> None:
        self._mask = size - 1
        self._digests = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))

    def __len__(self) -> int:
        return self._count

    def first_line(self, key: str, line: int) -> int:
        return self._first(digest(key), line)

    def _first(self, h: int, line: int) -> int:
        digests, mask = self._digests, self._mask
        slot = h & mask
        while True:
            found = digests[slot]
            if found == h:
                return int(self._lines[slot])
            if found == 0:
                digests[slot] = h
                self._lines[slot] = line
                self._count += 1
                if 2 * self._count > len(digests):
                    self._grow()
                return line
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old_digests, old_lines = self._digests, self._lines
        self._allocate(2 * len(old_digests))
        self._count = 0
        for h, line in zip(old_digests, old_lines, strict=True):
            if h:
                self._first(h, line)
