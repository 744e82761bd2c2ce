"""The emulator fixture: ``emulator_factory(...)`` starts a :class:`~tests.plugins.emulator.
Emulator` (in process by default, ``process=True`` for an ``unsign-worker emulator`` subprocess,
``start=False`` to start it later on its chosen port); every emulator a test started is stopped
after it. ``emulator`` is one in-process emulator with the sample agreements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.plugins.emulator import Emulator


class EmulatorFactory(Protocol):
    def __call__(self, agreements: Any = ..., **options: Any) -> Emulator: ...


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[EmulatorFactory]:
    """Start emulators with options (see :class:`Emulator`); all are stopped after the test."""
    made: list[Emulator] = []

    def make(*args: Any, start: bool = True, **options: Any) -> Emulator:
        if options.get("process"):
            options.setdefault("workdir", tmp_path)
        emulator = Emulator(*args, **options)
        made.append(emulator)
        return emulator.start() if start else emulator

    yield make
    for emulator in made:
        emulator.close()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """An in-process emulator with the sample agreements."""
    return emulator_factory()
