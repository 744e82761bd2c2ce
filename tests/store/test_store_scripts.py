"""The store's Lua lives in ``unsign_worker/store/lua/*.lua``, and the terminal states the
scripts check come from ``JobState``, never typed twice."""

from __future__ import annotations

import json
import re

from unsign_worker.store.claims import CLAIM, FINISH_UNCLAIMED
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.scripts import LUA_DIR, terminal_prelude
from unsign_worker.store.states import TERMINAL_STATES, JobState


def test_the_lua_terminal_set_is_generated_from_job_state() -> None:
    names = set(re.findall(r"(\w+) = true", terminal_prelude()))

    assert names == {str(s) for s in TERMINAL_STATES}
    assert JobState.RETRYING.value not in names and JobState.PARKED.value not in names


def test_the_scripts_that_refuse_ended_jobs_use_the_generated_set() -> None:
    for script in (CLAIM, FINISH_UNCLAIMED):
        assert script.source.startswith(terminal_prelude())
        assert "TERMINAL[st]" in script.source


def test_no_lua_file_spells_out_the_terminal_states() -> None:
    # a chain like st == 'unsigned' or st == 'rejected' ... would drift from JobState (a
    # campaign's own state 'cancelled' compared alone is not such a chain)
    for path in LUA_DIR.glob("*.lua"):
        text = path.read_text(encoding="utf-8")
        named = {str(s) for s in TERMINAL_STATES if f"st == '{s}'" in text}
        assert len(named) <= 1, f"{path.name} spells out terminal states {sorted(named)}"


def _fields_read(script: str) -> set[str]:
    return set(re.findall(r"\ba\.(\w+)", (LUA_DIR / script).read_text(encoding="utf-8")))


def test_a_settle_request_carries_every_field_the_settle_script_reads() -> None:
    request = SettleRequest(
        job_id="j1", identity="k", campaign="c", token="1", now=1.0, state=JobState.UNSIGNED,
        code="", reason="unsigned", attempts=1, reached=True, audit={}, retention_seconds=60,
        audit_maxlen=10, events_maxlen=10, hook_delay=2.0, event={}, hook={}, dlq={})

    sent = json.loads(request.script_arg())

    assert _fields_read("settle.lua") <= set(sent)
    assert sent["terminal"] is True and sent["success"] is True and sent["reached"] == "1"


def test_a_finish_request_carries_every_field_the_finish_script_reads() -> None:
    request = FinishRequest(
        job_id="j1", identity="", identity_masked="", campaign="", reference="r",
        params_json="{}", now=1.0, state=JobState.REJECTED, code="INVALID_JOB", reason="bad",
        audit={}, retention_seconds=60, audit_maxlen=10)

    assert _fields_read("finish_unclaimed.lua") <= set(json.loads(request.script_arg()))
