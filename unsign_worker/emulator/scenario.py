"""Scenario files: the faults an emulator starts with and the scripts of some agreements.

Format (JSON, every field optional)::

    {
      "seed": 7,                                   # seeds the random draws (reproducible runs)
      "faults": {"latency_ms": 50, "jitter_ms": 20, "error_rate": 0.02,
                 "error_codes": ["SYSTEM_ERROR", "ILLEGAL_SYSTEM"]},
      "scripts": {"ag-000001": ["SYSTEM_ERROR", "SYSTEM_ERROR", "OK"],
                  "ag-000002": ["LOST_ANSWER"]}
    }

The fault knobs are those of :class:`~unsign_worker.emulator.faults.FaultSettings`; a script
given here replaces the agreement's own ``script`` from the agreements file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unsign_worker.emulator.faults import FaultSettings, check_step
from unsign_worker.exceptions import ConfigError


@dataclass(frozen=True)
class Scenario:
    """Starting faults, scripts by agreement id, and the random seed (None: unseeded)."""

    faults: FaultSettings = field(default_factory=FaultSettings)
    scripts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    seed: int | None = None


def parse_scripts(data: object, where: str) -> dict[str, tuple[str, ...]]:
    """``{agreement id: [step, ...]}``, every step checked. Raises: ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be an object of agreement id -> list of steps")
    scripts: dict[str, tuple[str, ...]] = {}
    for agreement_id, steps in data.items():
        if not isinstance(steps, list):
            raise ConfigError(f"{where}.{agreement_id}: must be a list of steps")
        scripts[str(agreement_id)] = tuple(check_step(s, f"{where}.{agreement_id}")
                                           for s in steps)
    return scripts


def parse_scenario(data: object, *, source: str = "scenario") -> Scenario:
    """Check and build a scenario from decoded JSON. Raises: ConfigError naming the field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: must be a JSON object")
    unknown = set(data) - {"seed", "faults", "scripts", "note"}
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(sorted(unknown))} "
                          "(allowed: seed, faults, scripts, note)")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{source}.seed: must be an integer")
    faults_data = data.get("faults", {})
    if not isinstance(faults_data, Mapping):
        raise ConfigError(f"{source}.faults: must be an object")
    return Scenario(faults=FaultSettings.from_mapping(faults_data, where=f"{source}.faults"),
                    scripts=parse_scripts(data.get("scripts", {}), f"{source}.scripts"),
                    seed=seed)


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and check a scenario file. Raises: ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--scenario: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_scenario(data, source=str(path))
