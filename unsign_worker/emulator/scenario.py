"""Scenario files: the faults an emulator starts with and the scripts of some agreements.

Format (JSON, every field optional)::

    {
      "seed": 7,                                   # seeds the random draws (reproducible runs)
      "faults": {"latency_ms": 50, "jitter_ms": 20, "error_rate": 0.02,
                 "error_codes": ["SYSTEM_ERROR", "ILLEGAL_SYSTEM"]},
      "scripts": {"ag-000001": ["SYSTEM_ERROR", "SYSTEM_ERROR", "OK"],
                  "ag-000002": ["LOST_ANSWER"]},
      "options": {"sign_errors": true, "sign_query": true, "charset": "gbk"}
    }

The fault knobs are those of :class:`~unsign_worker.emulator.faults.FaultSettings`; a script
given here replaces the agreement's own ``script`` from the agreements file; the answer options
are those of :class:`~unsign_worker.emulator.options.AnswerOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unsign_worker.emulator.config import read_json_file
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.faults import FaultSettings, check_step
from unsign_worker.emulator.options import AnswerOptions


@dataclass(frozen=True)
class Scenario:
    """Starting faults and answer options, scripts by agreement id, and the random seed (None:
    unseeded)."""

    faults: FaultSettings = field(default_factory=FaultSettings)
    options: AnswerOptions = field(default_factory=AnswerOptions)
    scripts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    seed: int | None = None


def parse_scripts(data: object, where: str) -> dict[str, tuple[str, ...]]:
    """``{agreement id: [step, ...]}``, every step checked. Raises: EmulatorConfigError."""
    if not isinstance(data, Mapping):
        raise EmulatorConfigError(f"{where}: must be an object of agreement id -> list of steps")
    scripts: dict[str, tuple[str, ...]] = {}
    for agreement_id, steps in data.items():
        if not isinstance(steps, list):
            raise EmulatorConfigError(f"{where}.{agreement_id}: must be a list of steps")
        scripts[str(agreement_id)] = tuple(check_step(s, f"{where}.{agreement_id}")
                                           for s in steps)
    return scripts


def parse_scenario(data: object, *, source: str = "scenario") -> Scenario:
    """Check and build a scenario from decoded JSON.

    Raises:
        EmulatorConfigError: naming the field.
    """
    if not isinstance(data, Mapping):
        raise EmulatorConfigError(f"{source}: must be a JSON object")
    unknown = set(data) - {"seed", "faults", "scripts", "options", "note"}
    if unknown:
        raise EmulatorConfigError(f"{source}: unknown field(s) {', '.join(sorted(unknown))} "
                                  "(allowed: seed, faults, scripts, options, note)")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise EmulatorConfigError(f"{source}.seed: must be an integer")
    faults_data = data.get("faults", {})
    if not isinstance(faults_data, Mapping):
        raise EmulatorConfigError(f"{source}.faults: must be an object")
    options_data = data.get("options", {})
    if not isinstance(options_data, Mapping):
        raise EmulatorConfigError(f"{source}.options: must be an object")
    return Scenario(faults=FaultSettings.from_mapping(faults_data, where=f"{source}.faults"),
                    options=AnswerOptions.from_mapping(options_data, where=f"{source}.options"),
                    scripts=parse_scripts(data.get("scripts", {}), f"{source}.scripts"),
                    seed=seed)


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and check a scenario file. Raises: EmulatorConfigError naming the file."""
    data = read_json_file(path, "--scenario")
    return parse_scenario(data, source=str(path))
