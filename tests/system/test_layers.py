"""The packages' layering is a contract: protocol <- store <- producers <- worker | ops <-
console | demo <- cli (ARCHITECTURE.md). ``make lint`` runs it; these tests run it too, so
``make test`` enforces it, and show that it catches a planted upward import."""

from __future__ import annotations

from pathlib import Path

from tests.import_contracts import ROOT, copy_with_planted_import, lint_imports


def test_every_import_points_down_the_layers() -> None:
    result = lint_imports(ROOT, "layers")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_breaks_when_the_store_imports_the_worker(tmp_path: Path) -> None:
    # Given a copy of the project whose store borrows the worker's processor, in a function
    copy = copy_with_planted_import(tmp_path, "store/breaker.py",
                                    "from unsign_worker.worker.processor import process_job")
    # When the contract is checked
    result = lint_imports(copy, "layers")
    # Then it is broken, naming the import
    assert result.returncode != 0
    assert "unsign_worker.store.breaker -> unsign_worker.worker.processor" in result.stdout
