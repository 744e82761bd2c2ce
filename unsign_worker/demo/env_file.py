"""The sandbox's env file: ``export`` lines a second shell sources (``. .dev/env``) to reach the
sandbox with the same settings as its workers.

It holds the Alipay key, so it is written private (mode 0600, never through a symlink) and in
one step (a reader never sees half of it). See :mod:`unsign_worker.cli.dev_cmds`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path


def export_lines(values: Mapping[str, str], *, path_dir: Path | None = None,
                 unset: Sequence[str] = (), comment: str = "") -> str:
    """The file's text: ``comment``, ``unset`` of the names that would contradict the others,
    ``path_dir`` put first on ``PATH``, then one ``export NAME=value`` per value, each quoted
    for the shell. Pure."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    if unset:
        lines.append(f"unset {' '.join(unset)}")
    if path_dir is not None:
        lines.append(f'export PATH={shlex.quote(str(path_dir))}:"$PATH"')
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing whatever was there in one step."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)
