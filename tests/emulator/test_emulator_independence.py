"""The emulator is a witness, not a mirror: it imports nothing of the worker it checks.

The contract lives in ``.importlinter`` (``make lint`` runs ``lint-imports``); these tests run
it too, so ``make test`` enforces it, and show that it catches a planted import.
"""

from __future__ import annotations

from pathlib import Path

from tests.import_contracts import ROOT, copy_with_planted_import, lint_imports

CONTRACT = "emulator-independent"


def test_the_emulator_imports_no_other_module_of_the_project() -> None:
    result = lint_imports(ROOT, CONTRACT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_breaks_when_the_emulator_imports_worker_code(tmp_path: Path) -> None:
    # Given a copy of the project whose emulator borrows the worker's signing, in a function
    copy = copy_with_planted_import(tmp_path, "emulator/stats.py",
                                    "from unsign_worker.protocol.signing import string_to_sign")
    # When the contract is checked
    result = lint_imports(copy, CONTRACT)
    # Then it is broken, naming the import
    assert result.returncode != 0
    assert "unsign_worker.emulator.stats -> unsign_worker.protocol.signing" in result.stdout
