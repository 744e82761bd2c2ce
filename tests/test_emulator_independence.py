"""The emulator is a witness, not a mirror: it imports nothing of the worker it checks.

The contract lives in ``.importlinter`` (``make lint`` runs ``lint-imports``); these tests run
it too, so ``make test`` enforces it, and show that it catches a planted import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACT = "emulator-independent"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), "lint-imports is missing: install the test extra (make)"
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--contract", CONTRACT],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_emulator_imports_no_other_module_of_the_project() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_breaks_when_the_emulator_imports_worker_code(tmp_path: Path) -> None:
    # Given a copy of the project whose emulator borrows the worker's signing, in a function
    shutil.copytree(ROOT / "unsign_worker", tmp_path / "unsign_worker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    stats = tmp_path / "unsign_worker" / "emulator" / "stats.py"
    stats.write_text(stats.read_text(encoding="utf-8") + (
        "\n\ndef _borrowed() -> object:\n"
        "    from unsign_worker.protocol.signing import string_to_sign\n"
        "    return string_to_sign\n"), encoding="utf-8")
    # When the contract is checked
    result = lint_imports(tmp_path)
    # Then it is broken, naming the import
    assert result.returncode != 0
    assert "unsign_worker.emulator.stats -> unsign_worker.protocol.signing" in result.stdout
