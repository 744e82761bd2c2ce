"""The packages' layering is a contract: protocol <- store <- producers <- worker | ops <-
console | demo <- cli (ARCHITECTURE.md). ``make lint`` runs it; these tests run it too, so
``make test`` enforces it, and show that it catches a planted upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_layers(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), "lint-imports is missing: install the test extra (make)"
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--contract", "layers"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_every_import_points_down_the_layers() -> None:
    result = lint_layers(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_breaks_when_the_store_imports_the_worker(tmp_path: Path) -> None:
    # Given a copy of the project whose store borrows the worker's processor, in a function
    shutil.copytree(ROOT / "unsign_worker", tmp_path / "unsign_worker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    breaker = tmp_path / "unsign_worker" / "store" / "breaker.py"
    breaker.write_text(breaker.read_text(encoding="utf-8") + (
        "\n\ndef _borrowed() -> object:\n"
        "    from unsign_worker.worker.processor import process_job\n"
        "    return process_job\n"), encoding="utf-8")
    # When the contract is checked
    result = lint_layers(tmp_path)
    # Then it is broken, naming the import
    assert result.returncode != 0
    assert "unsign_worker.store.breaker -> unsign_worker.worker.processor" in result.stdout
