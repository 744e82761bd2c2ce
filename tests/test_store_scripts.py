"""The store's Lua lives in ``unsign_worker/store/lua/*.lua``, and the terminal states the
scripts check come from ``JobState``, never typed twice."""

from __future__ import annotations

import re

from unsign_worker.store.claims import CLAIM_LUA, FINISH_UNCLAIMED_LUA
from unsign_worker.store.scripts import LUA_DIR, terminal_prelude
from unsign_worker.store.states import TERMINAL_STATES, JobState


def test_the_lua_terminal_set_is_generated_from_job_state() -> None:
    names = set(re.findall(r"(\w+) = true", terminal_prelude()))

    assert names == {str(s) for s in TERMINAL_STATES}
    assert JobState.RETRYING.value not in names and JobState.PARKED.value not in names


def test_the_scripts_that_refuse_ended_jobs_use_the_generated_set() -> None:
    for script in (CLAIM_LUA, FINISH_UNCLAIMED_LUA):
        assert script.startswith(terminal_prelude())
        assert "TERMINAL[st]" in script


def test_no_lua_file_spells_out_the_terminal_states() -> None:
    # a chain like st == 'unsigned' or st == 'rejected' ... would drift from JobState (a
    # campaign's own state 'cancelled' compared alone is not such a chain)
    for path in LUA_DIR.glob("*.lua"):
        text = path.read_text(encoding="utf-8")
        named = {str(s) for s in TERMINAL_STATES if f"st == '{s}'" in text}
        assert len(named) <= 1, f"{path.name} spells out terminal states {sorted(named)}"
