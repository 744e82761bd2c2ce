"""requirements.lock, what ``make test`` installs: it pins every dependency pyproject.toml names
(every extra) to one version inside the range pyproject.toml allows."""

from __future__ import annotations

import tomllib

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import ROOT


def _pins() -> dict[str, list[tuple[str, Requirement]]]:
    pins: dict[str, list[tuple[str, Requirement]]] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            pins.setdefault(canonicalize_name(requirement.name), []).append(
                (version, requirement))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        names.extend(extra)
    return [Requirement(name) for name in names]


def test_every_line_of_the_lock_pins_exactly_one_version() -> None:
    assert _pins()  # and _pins() raised on any line without a single == pin


def test_every_dependency_of_pyproject_is_pinned_inside_its_declared_range() -> None:
    pins, environment = _pins(), default_environment()
    for declared in _declared():
        if declared.marker is not None and not declared.marker.evaluate(environment):
            continue
        found = pins.get(canonicalize_name(declared.name))
        assert found, f"{declared.name} is not pinned in requirements.lock (make lock)"
        for version, pin in found:
            if pin.marker is not None and not pin.marker.evaluate(environment):
                continue  # a pin for another Python or platform
            assert declared.specifier.contains(version, prereleases=True), (
                f"requirements.lock pins {declared.name}=={version}, outside {declared} "
                "(make lock)")
