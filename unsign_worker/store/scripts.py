"""The Lua scripts of the store, kept as ``.lua`` files in ``store/lua/`` beside it.

Each script names its keys and arguments once, in its header::

    -- KEYS: job, agreement, leases,
    --       breaker
    -- ARGV: job_id, now, renew_token

(a list that ends with a comma continues on the next comment line; ``(none)`` declares no
names; a last name written ``name...`` collects the rest as a Lua list). The loader prepends
``local K = {job = KEYS[1], ...}`` and ``local A = {job_id = ARGV[1], ...}``, so a body reads
``K.job`` and ``A.now`` and never a position; Python calls the script with mappings by name
(:meth:`Script.__call__`), checked against the declaration: a missing or unknown name raises
:class:`ScriptNameError` naming the script and the name.

A script is read once, when its module is imported (:func:`load`), and registered once per
client with ``register_script`` by its owner (:class:`~unsign_worker.store.claims.DedupStore`,
...): :meth:`ScriptSpec.register`. The list of terminal job states a script checks is not typed
in Lua: :func:`terminal_prelude` generates it from :class:`~unsign_worker.store.states.JobState`.
Files without a header are libraries (:data:`LIBRARIES`), a ``local function`` that scripts
include before their body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import redis

from unsign_worker.store.states import TERMINAL_STATES

#: Where the ``.lua`` files live.
LUA_DIR = Path(__file__).with_name("lua")

#: The ``.lua`` files that are not scripts but a function scripts include.
LIBRARIES = frozenset({"same_params", "job_ended", "create_absent", "mirror_view",
                       "server_time"})

_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.\.\.)?")
_DECLARATION = re.compile(r"--\s*(KEYS|ARGV)\b(.*)")
_POSITIONAL = re.compile(r"\b(KEYS|ARGV)\b")


class ScriptError(ValueError):
    """A ``.lua`` file whose header or body breaks the rules of this module."""


class ScriptNameError(KeyError):
    """A call that passes a key or an argument its script does not declare, or omits one."""

    def __str__(self) -> str:
        return str(self.args[0])


@cache
def lua(name: str) -> str:
    """The text of ``store/lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


def terminal_prelude() -> str:
    """``local TERMINAL = {...}``: the terminal states of :class:`JobState`, as a Lua set."""
    entries = ", ".join(f"{state.value} = true" for state in sorted(TERMINAL_STATES))
    return f"local TERMINAL = {{{entries}}}\n"


@dataclass(frozen=True)
class Names:
    """The names one script declares for ``KEYS`` (or ``ARGV``), in their order."""

    fixed: tuple[str, ...]
    #: the name of the trailing list of any length ("" if none)
    rest: str = ""

    @property
    def all(self) -> tuple[str, ...]:
        return self.fixed + ((self.rest,) if self.rest else ())

    def locals(self, table: str, source: str) -> str:
        """Lua making ``table`` map each name to its value in ``source`` (``KEYS``/``ARGV``)."""
        entries = ", ".join(f"{n} = {source}[{i}]" for i, n in enumerate(self.fixed, 1))
        out = f"local {table} = {{{entries}}}\n"
        if self.rest:
            out += (f"{table}.{self.rest} = {{}}\n"
                    f"for i = {len(self.fixed) + 1}, #{source} do "
                    f"{table}.{self.rest}[#{table}.{self.rest} + 1] = {source}[i] end\n")
        return out

    @cached_property
    def _set(self) -> frozenset[str]:
        return frozenset(self.all)

    def order(self, script: str, what: str, given: Mapping[str, Any]) -> list[Any]:
        """The values of ``given`` in declared order; the rest's list is spread at the end."""
        if given.keys() != self._set:
            unknown = sorted(set(given) - self._set)
            if unknown:
                raise ScriptNameError(f"script {script}: unknown {what} {unknown[0]!r}")
            missing = [n for n in self.all if n not in given]
            raise ScriptNameError(f"script {script}: missing {what} {missing[0]!r}")
        out = [given[n] for n in self.fixed]
        if self.rest:
            rest = given[self.rest]
            if isinstance(rest, (str, bytes)) or not isinstance(rest, Sequence):
                raise ScriptNameError(f"script {script}: {what} {self.rest!r} takes a list")
            out.extend(rest)
        return out


def parse_header(name: str, text: str) -> tuple[Names, Names, str]:
    """The declared key names, argument names and the body of a script's text.

    The header is the leading run of comment lines; it must hold exactly one ``KEYS`` and one
    ``ARGV`` declaration, and the body may not mention ``KEYS`` or ``ARGV`` at all."""
    lines = text.splitlines(keepends=True)
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("--"):
        m = _DECLARATION.match(lines[i])
        if m:
            kind, rest = m.groups()
            if not rest.startswith(": ") and rest.strip() != ":":
                raise ScriptError(f"{name}.lua: write '-- {kind}: name, name'")
            if kind in found:
                raise ScriptError(f"{name}.lua: {kind} declared twice")
            listed = rest[1:].strip()
            while listed.endswith(","):
                i += 1
                if i >= len(lines) or not lines[i].startswith("--") or _DECLARATION.match(
                        lines[i]):
                    raise ScriptError(f"{name}.lua: the {kind} list ends with a comma")
                listed += " " + lines[i][2:].strip()
            found[kind] = _names(name, kind, listed)
        elif _POSITIONAL.search(lines[i]):
            raise ScriptError(f"{name}.lua: a header line names {kind_of(lines[i])} "
                              f"outside a declaration")
        i += 1
    for kind in ("KEYS", "ARGV"):
        if kind not in found:
            raise ScriptError(f"{name}.lua: no '-- {kind}:' declaration in its header")
    body = "".join(lines[i:])
    for number, line in enumerate(lines[i:], i + 1):
        if _POSITIONAL.search(line):
            raise ScriptError(f"{name}.lua:{number}: the body names {kind_of(line)}; "
                              f"use the declared names (K.<key>, A.<argument>)")
    keys, args = (_declared(name, kind, found[kind]) for kind in ("KEYS", "ARGV"))
    return keys, args, body


def kind_of(line: str) -> str:
    m = _POSITIONAL.search(line)
    return m.group(1) if m else ""


def _names(script: str, kind: str, listed: str) -> list[str]:
    if listed == "(none)":
        return []
    names = [n.strip() for n in listed.split(",")]
    for n in names:
        if not _NAME.fullmatch(n):
            raise ScriptError(f"{script}.lua: {kind} name {n!r} is not a lower-case identifier")
    return names


def _declared(script: str, kind: str, names: list[str]) -> Names:
    bare = [n.removesuffix("...") for n in names]
    if len(set(bare)) != len(bare):
        raise ScriptError(f"{script}.lua: a {kind} name is declared twice")
    if any(n.endswith("...") for n in names[:-1]):
        raise ScriptError(f"{script}.lua: only the last {kind} name may be a list (name...)")
    if names and names[-1].endswith("..."):
        return Names(tuple(bare[:-1]), bare[-1])
    return Names(tuple(bare))


@dataclass(frozen=True)
class ScriptSpec:
    """One script as loaded: its declared names and its full source (preludes included)."""

    name: str
    keys: Names
    args: Names
    source: str

    def register(self, client: redis.Redis) -> Script:
        """This script registered on ``client`` (once per client: keep the result)."""
        return Script(self, client.register_script(self.source))


class Script:
    """A registered script, called with its keys and arguments by name."""

    def __init__(self, spec: ScriptSpec, registered: Any) -> None:
        self.spec = spec
        self._registered = registered

    def __call__(self, *, keys: Mapping[str, Any], args: Mapping[str, Any] | None = None,
                 client: Any = None) -> Any:
        """Run the script (or, with ``client`` a pipeline, queue it there): ``keys`` and
        ``args`` map every declared name to its value, a rest name to a list."""
        spec = self.spec
        return self._registered(keys=spec.keys.order(spec.name, "key", keys),
                                args=spec.args.order(spec.name, "argument", args or {}),
                                client=client)


def load(name: str, *, terminal: bool = False, libraries: Sequence[str] = ()) -> ScriptSpec:
    """Read ``store/lua/<name>.lua``: ``terminal`` prepends :func:`terminal_prelude`,
    ``libraries`` the named library files, then the locals ``K`` and ``A`` of its names."""
    for library in libraries:
        if library not in LIBRARIES:
            raise ScriptError(f"{name}.lua: {library!r} is not a library")
    keys, args, body = parse_header(name, lua(name))
    source = ((terminal_prelude() if terminal else "")
              + "".join(lua(library) for library in libraries)
              + keys.locals("K", "KEYS") + args.locals("A", "ARGV") + body)
    return ScriptSpec(name, keys, args, source)
