"""Running the ``.importlinter`` contracts from tests, on the project or on a copy of it with one
import planted (to show that a contract catches what it forbids)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, contract: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports --contract CONTRACT`` on the package under ``cwd``."""
    assert LINT_IMPORTS.exists(), "lint-imports is missing: install the test extra (make)"
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--contract", contract],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def copy_with_planted_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package and its contracts in ``tmp_path`` where ``module`` (a path under
    ``unsign_worker/``) gains a function importing ``line`` (``from x import y``); returns it."""
    shutil.copytree(ROOT / "unsign_worker", tmp_path / "unsign_worker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / "unsign_worker" / module
    name = line.rsplit(" ", 1)[-1]
    target.write_text(target.read_text(encoding="utf-8") + (
        f"\n\ndef _borrowed() -> object:\n    {line}\n    return {name}\n"), encoding="utf-8")
    return tmp_path
