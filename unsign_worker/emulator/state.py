"""The emulator's whole mutable state: agreements, faults, answer options, scripts, stats and the
random source.

Touched only from the server's event loop (gateway and admin handlers alike), so it needs no
locks. :meth:`EmulatorState.reset` returns to the state at start-up (with the agreements loaded
since, in the status they were loaded with); :meth:`clear` removes every fault and script but
keeps agreements, answer options and stats.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from unsign_worker.emulator.agreements import SIGNED, UNSIGNED, Agreement, AgreementBook
from unsign_worker.emulator.config import EmulatorConfig
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.faults import FaultSettings, check_step
from unsign_worker.emulator.options import AnswerOptions
from unsign_worker.emulator.request_log import RequestLog
from unsign_worker.emulator.scenario import Scenario
from unsign_worker.emulator.stats import Stats


class EmulatorState:
    """Everything a request can read or change."""

    def __init__(self, config: EmulatorConfig, agreements: Iterable[Agreement],
                 scenario: Scenario | None = None) -> None:
        scenario = scenario or Scenario()
        self.config = config
        self.book = AgreementBook.build(list(agreements))
        scripts = {a.id: a.script for a in self.book.agreements.values() if a.script}
        for agreement_id in scenario.scripts:
            if agreement_id not in self.book.agreements:
                raise EmulatorConfigError(f"scenario.scripts.{agreement_id}: no agreement has "
                                          "this id")
        scripts.update(scenario.scripts)
        self._initial_scripts = scripts
        self._initial_faults = scenario.faults
        self._initial_options = scenario.options
        self.options: AnswerOptions = scenario.options
        self._seed = scenario.seed
        self.faults = scenario.faults
        self.scripts: dict[str, deque[str]] = {}
        self.stats = Stats()
        #: gateway requests being handled right now
        self.in_flight = 0
        #: where each gateway request is recorded, if anywhere (``--request-log``)
        self.request_log: RequestLog | None = None
        self.rand = random.Random(self._seed)
        self.reset()

    def reset(self) -> None:
        """Back to start-up: statuses, scripts, faults, stats and the random sequence."""
        self.book.restore()
        self.scripts = {k: deque(v) for k, v in self._initial_scripts.items() if v}
        self.faults = self._initial_faults
        self.options = self._initial_options
        self.stats = Stats(max_in_flight=self.in_flight)
        self.rand = random.Random(self._seed)

    def clear(self) -> None:
        """No faults and no scripts from now on; agreements and stats are kept."""
        self.faults = FaultSettings()
        self.scripts = {}

    def reset_stats(self) -> None:
        self.stats = Stats(max_in_flight=self.in_flight)

    def add_agreements(self, agreements: Iterable[Agreement]) -> int:
        """Load more agreements while serving, all or none; their scripts start now and are
        kept by :meth:`reset` like those of the files loaded at start-up. Returns how many.

        Raises:
            EmulatorConfigError: an id or identity already loaded, or repeated.
        """
        added = list(agreements)
        self.book.add(added)
        for agreement in added:
            if agreement.script:
                self._initial_scripts[agreement.id] = agreement.script
                self.scripts[agreement.id] = deque(agreement.script)
        return len(added)

    def agreement(self, agreement_id: str) -> Agreement:
        """Raises: KeyError if no agreement has this id."""
        return self.book.agreements[agreement_id]

    def set_script(self, agreement_id: str, steps: Iterable[object]) -> list[str]:
        """Replace the script of one agreement. Raises: KeyError, EmulatorConfigError."""
        self.agreement(agreement_id)
        checked = [check_step(step, f"script.{agreement_id}") for step in steps]
        if checked:
            self.scripts[agreement_id] = deque(checked)
        else:
            self.scripts.pop(agreement_id, None)
        return checked

    def next_step(self, agreement_id: str) -> str | None:
        """Consume the next script step of this agreement, or None when it has none left."""
        steps = self.scripts.get(agreement_id)
        if not steps:
            return None
        step = steps.popleft()
        if not steps:
            del self.scripts[agreement_id]
        return step

    def set_status(self, agreement_id: str, status: str) -> Agreement:
        """Sign or unsign an agreement by hand (not counted as an unsign). Raises: KeyError,
        EmulatorConfigError."""
        if status not in (SIGNED, UNSIGNED):
            raise EmulatorConfigError("status: must be 'signed' or 'unsigned'")
        agreement = self.agreement(agreement_id)
        agreement.status = status
        agreement.unsigned_here = False
        return agreement
