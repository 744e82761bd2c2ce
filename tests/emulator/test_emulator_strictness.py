"""Over real HTTPS, and as an ``unsign-worker emulator`` process: what the gateway refuses in the
shape of a request. A parameter outside the service's request table is ``ILLEGAL_SIGN`` (usage
rules, 接口构造: "禁止出现商户自行命名, 不在接口技术文档请求参数列表中的其他数据"); a parameter
sent with an empty value is ``ILLEGAL_ARGUMENT`` in strict mode, the default (usage rules, 签名:
"参数值必须不能为空或空值"), and let through with ``--lenient``.

Requests are signed here from the documents' rule (technical document 7.1.2 and 7.2.1: every
parameter but sign/sign_type, empty values left out, sorted, joined with ``&``, MD5 of the
string followed by the key) and answers read with ElementTree, so neither the emulator's nor the
worker's code builds what is expected.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import pytest

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory

CAE_1 = {"customer_code": "C00000000001"}
CAE_1_PAIR = {"type_code": "BUSI003100021000301", "trans_account_out": "20880020070189160156"}
PP_1 = {"biz_type": "10004", "user_email": "li.wei@example.com"}
QUERY = "query_customer_protocol"


def signed(emu: Emulator, business: Mapping[str, str], *, service: str = "customer_unsign",
           unsigned_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The request, signed by the documents' rule; ``unsigned_extra`` is added after signing."""
    params = {"service": service, "partner": emu.partner, "_input_charset": "utf-8",
              **business}
    kept = sorted((k, v) for k, v in params.items() if v)
    text = "&".join(f"{k}={v}" for k, v in kept)
    params["sign"] = hashlib.md5((text + emu.key).encode("utf-8")).hexdigest()
    params["sign_type"] = "MD5"
    params.update(unsigned_extra or {})
    return params


def answer(emu: Emulator, params: Mapping[str, str], *, method: str = "POST") -> str:
    """``T`` or the error code of the answer."""
    resp = emu.send(params, method=method)
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.content)
    if root.findtext("is_success") == "T":
        return "T"
    return root.findtext("error") or "?"


def status(emu: Emulator, agreement_id: str) -> str:
    return str(emu.admin.agreement(agreement_id)["status"])


# --- parameters outside the request table: ILLEGAL_SIGN, in both modes --------------------

@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("extra", [
    {"foo": "bar"},                              # a name of the merchant's own
    {"return_url": "https://shop.example/back"},  # a MAPI parameter other interfaces take
    {"account_no": "2088102002723983"},         # query_customer_protocol's, not this table's
])
def test_a_correctly_signed_unsign_with_a_parameter_outside_table_4_1_is_illegal_sign(
        emulator, method, extra):
    # Given a request that signs every parameter it sends, one of them not in table 4-1
    params = signed(emulator, {**CAE_1, **extra})
    # When it is sent, Then the gateway's answer to it is ILLEGAL_SIGN and nothing changes
    assert answer(emulator, params, method=method) == "ILLEGAL_SIGN"
    assert status(emulator, "cae-1") == "signed"
    stats = emulator.admin.stats()
    assert (stats["unknown_parameters"], stats["bad_signatures"], stats["unsigns"]) == (1, 0, 0)
    # and without the extra parameter the same request unsigns
    assert answer(emulator, signed(emulator, CAE_1), method=method) == "T"


def test_an_extra_parameter_left_out_of_the_signature_is_illegal_sign_too(emulator):
    params = signed(emulator, CAE_1, unsigned_extra={"foo": "bar"})
    assert answer(emulator, params) == "ILLEGAL_SIGN"
    assert status(emulator, "cae-1") == "signed"
    # refused for the parameter itself, before its signature is even looked at
    stats = emulator.admin.stats()
    assert (stats["unknown_parameters"], stats["bad_signatures"]) == (1, 0)


def test_every_parameter_of_table_4_1_is_in_the_table(emulator):
    # all five business parameters at once, as the request sample of section 4.3 sends them:
    # whatever the parameter rules make of the combination, none of them is unknown
    params = signed(emulator, {"customer_code": "C00000000002", **CAE_1_PAIR, **PP_1})
    assert answer(emulator, params) != "ILLEGAL_SIGN"
    assert emulator.admin.stats()["unknown_parameters"] == 0
    # while one parameter more is refused
    params = signed(emulator, {"customer_code": "C00000000003", "memo": "x"})
    assert answer(emulator, params) == "ILLEGAL_SIGN"
    assert emulator.admin.stats()["unknown_parameters"] == 1


@pytest.mark.parametrize(("extra", "expected"), [
    ({"account_no": "2088102002723983"}, "T"),     # its table (3-1), as its sample spells it
    ({"customer_code": "C00000000101"}, "ILLEGAL_SIGN"),   # customer_unsign's, not the query's
    ({"acount_no": "2088102002723983"}, "ILLEGAL_SIGN"),   # the table's misprint, never sent
    ({"foo": "bar"}, "ILLEGAL_SIGN"),
])
def test_query_customer_protocol_accepts_its_own_table_only(emulator, extra, expected):
    params = signed(emulator, {**PP_1, **extra}, service=QUERY)
    assert answer(emulator, params) == expected
    assert emulator.admin.stats()["unknown_parameters"] == (expected != "T")


# --- empty values: ILLEGAL_ARGUMENT in strict mode (the default) ----------------------------

@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(("business", "empty"), [
    (CAE_1, "type_code"),
    (CAE_1, "biz_type"),
    (CAE_1, "trans_account_out"),
    (CAE_1, "user_email"),
    (CAE_1_PAIR, "customer_code"),
    (PP_1, "trans_account_out"),
])
def test_a_correctly_signed_request_with_an_empty_value_is_illegal_argument(
        emulator, method, business, empty):
    # Given a request naming an agreement, correctly signed, that also sends an empty parameter
    params = signed(emulator, {**business, empty: ""})
    # Then strict mode refuses it with ILLEGAL_ARGUMENT and unsigns nothing
    assert answer(emulator, params, method=method) == "ILLEGAL_ARGUMENT"
    stats = emulator.admin.stats()
    assert (stats["empty_values"], stats["unsigns"]) == (1, 0)
    # and the same request without the empty parameter unsigns
    assert answer(emulator, signed(emulator, business), method=method) == "T"


def test_an_empty_query_parameter_is_illegal_argument(emulator):
    params = signed(emulator, {**PP_1, "account_no": ""}, service=QUERY)
    assert answer(emulator, params) == "ILLEGAL_ARGUMENT"


def test_the_signature_is_checked_before_empty_values(emulator):
    params = signed(emulator, {**CAE_1, "type_code": ""})
    params["sign"] = "0" * 32
    assert answer(emulator, params) == "ILLEGAL_SIGN"
    stats = emulator.admin.stats()
    assert (stats["bad_signatures"], stats["empty_values"]) == (1, 0)


def test_the_tests_emulators_are_strict(emulator_factory: EmulatorFactory):
    # the suite's emulators (tests/plugins/emulator.py) never opt into lenient mode, so every
    # test against them shows the client never sends an empty parameter
    assert emulator_factory().admin.options()["lenient"] is False
    assert emulator_factory(agreements=[], scenario={}).admin.options()["lenient"] is False


# --- lenient mode: empty values let through, unknown parameters still refused ---------------

def test_lenient_mode_from_the_scenario_accepts_an_empty_value_as_not_sent(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(scenario={"options": {"lenient": True}})
    assert answer(emu, signed(emu, {**CAE_1, "type_code": ""})) == "T"
    assert status(emu, "cae-1") == "unsigned"
    assert emu.admin.stats()["empty_values"] == 1  # still counted
    assert answer(emu, signed(emu, {"customer_code": "C00000000002", "foo": "bar"})
                  ) == "ILLEGAL_SIGN"


def test_lenient_mode_is_switched_through_the_admin_api_and_reset_restores_strict(emulator):
    emulator.admin.set_options(lenient=True)
    assert answer(emulator, signed(emulator, {**CAE_1, "user_email": ""})) == "T"
    emulator.admin.reset()
    assert emulator.admin.options()["lenient"] is False
    assert answer(emulator, signed(emulator, {"customer_code": "C00000000002",
                                              "user_email": ""})) == "ILLEGAL_ARGUMENT"


# --- the emulator process: `unsign-worker emulator` and `--lenient` -------------------------

@pytest.mark.slow
def test_the_emulator_process_is_strict_by_default(emulator_factory: EmulatorFactory):
    emu = emulator_factory(process=True)
    assert answer(emu, signed(emu, {**CAE_1, "foo": "bar"})) == "ILLEGAL_SIGN"
    assert answer(emu, signed(emu, {**CAE_1, "type_code": ""})) == "ILLEGAL_ARGUMENT"
    assert emu.admin.options()["lenient"] is False
    assert emu.admin.agreement("cae-1")["status"] == "signed"
    assert answer(emu, signed(emu, CAE_1)) == "T"


@pytest.mark.slow
def test_the_emulator_process_with_lenient_accepts_empty_values_but_no_unknown_parameter(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(process=True, extra_args=["--lenient"])
    assert emu.admin.options()["lenient"] is True
    assert answer(emu, signed(emu, {**CAE_1, "foo": "bar"})) == "ILLEGAL_SIGN"
    assert answer(emu, signed(emu, {**CAE_1, "type_code": ""}), method="GET") == "T"
    assert emu.admin.agreement("cae-1")["status"] == "unsigned"
    stats = emu.admin.stats()
    assert (stats["unknown_parameters"], stats["empty_values"], stats["unsigns"]) == (1, 1, 1)
