"""The verdicts of a campaign file's first read, kept on disk for the run that follows it.

A run reads its file once: the read (:func:`unsign_worker.producers.campaign.plan.scan_file`
with ``keep=True``) validates every row and names every job; each verdict goes here, in file
order (a valid row as its job id, line, reference and parameters; a refused row as the JSON
shape the campaign keeps of it). The run (:mod:`unsign_worker.producers.campaign.stream`) then
takes them back in the same order instead of reading and validating the file a second time.

Memory stays bounded: verdicts are written in blocks of :data:`BLOCK` to an anonymous
temporary file (mode 0600, unlinked from the start on Linux, gone when closed), each block a
length and its :mod:`marshal` form (lists, dicts, strings and numbers only; about 5x faster to
write and 2x to read than JSON, and read back only by the process that wrote it, so the format's
tie to the Python version does not matter). The file holds the rows' parameters (personal data)
only while the run lasts, as the campaign file itself does.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterator
from typing import Any, NamedTuple

from unsign_worker.producers.campaign.validate import RejectedRow

#: Verdicts per block of the spool file.
BLOCK = 1000
#: Bytes of a block's length, before the block.
_LENGTH = 8


class SpooledJob(NamedTuple):
    """A valid row, as the run enqueues it."""

    job_id: str
    line: int
    reference: str
    params: dict[str, str]


class SpooledReject(NamedTuple):
    """A refused row, as the campaign's rejected rows keep it (no values: no personal data)."""

    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.data


class Spool:
    """Verdicts in, in file order; :meth:`verdicts` gives them back once, in the same order."""

    def __init__(self, block: int = BLOCK) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._block: list[Any] = []
        self._size = block

    def job(self, job_id: str, line: int, reference: str, params: dict[str, str]) -> None:
        self._add([job_id, line, reference, params])

    def reject(self, reject: RejectedRow) -> None:
        self._add(reject.as_dict())

    def _add(self, entry: Any) -> None:
        self._block.append(entry)
        if len(self._block) >= self._size:
            self._flush()

    def _flush(self) -> None:
        if self._block:
            data = marshal.dumps(self._block)
            self._file.write(len(data).to_bytes(_LENGTH, "little") + data)
            self._block = []

    def verdicts(self) -> Iterator[SpooledJob | SpooledReject]:
        """Every verdict added, in order, read back block by block."""
        self._flush()
        self._file.seek(0)
        while size := int.from_bytes(self._file.read(_LENGTH), "little"):
            for entry in marshal.loads(self._file.read(size)):
                if isinstance(entry, list):
                    yield SpooledJob(*entry)
                else:
                    yield SpooledReject(entry)

    def close(self) -> None:
        self._block = []
        self._file.close()
