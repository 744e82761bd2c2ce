"""The Lua scripts of the store, kept as ``.lua`` files in ``store/lua/`` beside it.

Each script is read once, when its module is imported, and registered once per client with
``register_script`` by its owner (:class:`~unsign_worker.store.claims.DedupStore`, ...). The
list of terminal job states a script checks is not typed in Lua: :func:`terminal_prelude`
generates it from :class:`~unsign_worker.store.states.JobState`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from unsign_worker.store.states import TERMINAL_STATES

#: Where the ``.lua`` files live.
LUA_DIR = Path(__file__).with_name("lua")


@cache
def lua(name: str) -> str:
    """The text of ``store/lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


def terminal_prelude() -> str:
    """``local TERMINAL = {...}``: the terminal states of :class:`JobState`, as a Lua set."""
    entries = ", ".join(f"{state.value} = true" for state in sorted(TERMINAL_STATES))
    return f"local TERMINAL = {{{entries}}}\n"
