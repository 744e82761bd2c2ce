"""Where the tests find the project and their data, whichever folder a test lives in."""

from __future__ import annotations

from pathlib import Path

#: The project's root (the folder holding pyproject.toml).
ROOT = Path(__file__).resolve().parent.parent
#: tests/data: the documents, their samples and the fuzzers' corpora.
DATA = ROOT / "tests" / "data"
