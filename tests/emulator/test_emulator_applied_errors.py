"""Over real HTTPS: ``SYSTEM_ERROR`` / ``ILLEGAL_SYSTEM`` answers after which the unsign may have
happened. The usage rules ask to retry them with the original request because "支付宝系统未来得
及响应，用户可能未解约成功": the fault knob ``system_error_applied_share`` is the share of those
answers for which the agreement IS unsigned before the error is answered, so a retry then hears
``STATUS_CUSTOMER_SIGN``. Answers are read with ElementTree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.emulator.admin import EmulatorAdminError

CAE_1 = {"customer_code": "C00000000001"}
KNOB = "system_error_applied_share"


def code_of(emu: Emulator, business: dict[str, str] | None = None, *,
            service: str = "customer_unsign") -> str:
    resp = emu.send(emu.signed(service=service, **(business or CAE_1)))
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.content)
    return "T" if root.findtext("is_success") == "T" else root.findtext("error") or "?"


@pytest.mark.parametrize("code", ["SYSTEM_ERROR", "ILLEGAL_SYSTEM"])
def test_at_share_one_a_scripted_system_error_has_unsigned_the_agreement(emulator, code):
    # Given every system error applied, and cae-1 scripted to answer one
    emulator.admin.set_faults(**{KNOB: 1.0})
    emulator.admin.script("cae-1", [code])
    # When it is unsigned, Then the answer is the error but the agreement is unsigned, once
    assert code_of(emulator) == code
    view = emulator.admin.agreement("cae-1")
    assert (view["status"], view["unsigns"]) == ("unsigned", 1)
    assert emulator.admin.stats()["faults"]["ERROR_APPLIED"] == 1
    # And the retry the rules ask for hears that the agreement is no longer signed
    assert code_of(emulator) == "STATUS_CUSTOMER_SIGN"
    view = emulator.admin.agreement("cae-1")
    assert (view["unsigns"], view["after_success"]) == (1, 1)


def test_at_share_zero_a_system_error_changes_nothing_and_the_retry_unsigns(emulator):
    emulator.admin.set_faults(**{KNOB: 0.0})
    emulator.admin.script("cae-1", ["SYSTEM_ERROR"])
    assert code_of(emulator) == "SYSTEM_ERROR"
    assert emulator.admin.agreement("cae-1")["status"] == "signed"
    assert code_of(emulator) == "T"
    assert emulator.admin.agreement("cae-1")["unsigns"] == 1
    assert "ERROR_APPLIED" not in emulator.admin.stats()["faults"]


def test_the_share_applies_to_the_error_rate_draws_too(emulator):
    # Given every request answered SYSTEM_ERROR, all of them applied
    emulator.admin.set_faults(error_rate=1.0, error_codes=["SYSTEM_ERROR"], **{KNOB: 1.0})
    # Then a request for a signed agreement unsigns it, one for an unknown agreement does nothing
    assert code_of(emulator) == "SYSTEM_ERROR"
    assert code_of(emulator, {"customer_code": "C99999999999"}) == "SYSTEM_ERROR"
    assert code_of(emulator) == "SYSTEM_ERROR"  # already unsigned: nothing more to apply
    stats = emulator.admin.stats()
    assert (stats["unsigns"], stats["faults"]["ERROR_APPLIED"]) == (1, 1)
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"


@pytest.mark.parametrize("code", ["TOO_MUCH_TYPE_CODE", "SESSION_TIMEOUT", "STATUS_TYPE_CODE"])
def test_other_codes_are_never_applied(emulator, code):
    emulator.admin.set_faults(**{KNOB: 1.0})
    emulator.admin.script("cae-1", [code])
    assert code_of(emulator) == code
    assert emulator.admin.agreement("cae-1")["status"] == "signed"


def test_a_query_answered_with_a_system_error_unsigns_nothing(emulator):
    emulator.admin.set_faults(error_rate=1.0, **{KNOB: 1.0})
    pp = {"biz_type": "10004", "user_email": "li.wei@example.com"}
    assert code_of(emulator, pp, service="query_customer_protocol") == "SYSTEM_ERROR"
    assert emulator.admin.agreement("pp-1")["status"] == "signed"


def test_a_seeded_share_applies_some_and_the_same_ones_every_run(
        emulator_factory: EmulatorFactory):
    agreements = [{"id": f"a{i}", "customer_code": f"C{i}", "script": ["SYSTEM_ERROR"]}
                  for i in range(40)]
    runs = []
    for _ in range(2):
        emu = emulator_factory(agreements=agreements, scenario={"seed": 5, "faults": {KNOB: 0.5}})
        assert {code_of(emu, {"customer_code": f"C{i}"}) for i in range(40)} == {"SYSTEM_ERROR"}
        runs.append([emu.admin.agreement(f"a{i}")["status"] for i in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"signed", "unsigned"}


@pytest.mark.parametrize("bad", [1.5, -0.1, "half"])
def test_the_share_is_a_probability(emulator, bad):
    with pytest.raises(EmulatorAdminError, match=f"faults.{KNOB}") as refused:
        emulator.admin.set_faults(**{KNOB: bad})
    assert refused.value.status == 400
    assert emulator.admin.faults()[KNOB] == 0.0


@pytest.mark.slow
def test_the_emulator_process_takes_the_share_from_its_scenario_file(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(process=True, scenario={"faults": {KNOB: 1.0},
                                                   "scripts": {"cae-1": ["ILLEGAL_SYSTEM"]}})
    assert emu.admin.faults()[KNOB] == 1.0
    assert code_of(emu) == "ILLEGAL_SYSTEM"
    assert code_of(emu) == "STATUS_CUSTOMER_SIGN"
    assert emu.unsigns("cae-1") == 1
