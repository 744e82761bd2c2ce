"""Faults on demand over real HTTP: scripts, transport faults, spoiled answers, global switch."""

from __future__ import annotations

import time

import pytest
import requests

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.protocol.exceptions import BadSignatureError, ResponseError
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer

CAE_1 = {"customer_code": "C00000000001"}


def code_of(emu: Emulator, business: dict[str, str] | None = None) -> str:
    resp = emu.send(emu.signed(**(business or CAE_1)))
    assert resp.status_code == 200
    parsed = parse_response(resp.content, verifier=Md5Signer(emu.key))
    return "T" if parsed.is_success else parsed.error


def test_a_scripted_sequence_answers_step_by_step_then_behaves_normally(emulator):
    emulator.admin.script("cae-1", ["SYSTEM_ERROR", "SYSTEM_ERROR", "OK"])
    assert [code_of(emulator) for _ in range(4)] == [
        "SYSTEM_ERROR", "SYSTEM_ERROR", "T", "STATUS_CUSTOMER_SIGN"]
    assert emulator.admin.scripts() == {}
    assert emulator.admin.agreement("cae-1")["unsigns"] == 1


def test_a_scripted_error_leaves_the_agreement_signed(emulator):
    emulator.admin.script("cae-1", ["TOO_MUCH_TYPE_CODE"])
    assert code_of(emulator) == "TOO_MUCH_TYPE_CODE"
    assert emulator.admin.agreement("cae-1")["status"] == "signed"


def test_scripts_come_from_the_agreements_and_the_scenario(emulator_factory: EmulatorFactory):
    emu = emulator_factory(
        agreements=[{"id": "a", "customer_code": "C1", "script": ["ILLEGAL_SYSTEM"]},
                    {"id": "b", "customer_code": "C2", "script": ["ILLEGAL_SYSTEM"]}],
        scenario={"scripts": {"b": ["FAIL_UNFREEZE_STANDARD_BAIL"]}})
    assert code_of(emu, {"customer_code": "C1"}) == "ILLEGAL_SYSTEM"
    assert code_of(emu, {"customer_code": "C2"}) == "FAIL_UNFREEZE_STANDARD_BAIL"


def test_a_script_step_replaces_the_random_faults_for_that_request(emulator):
    emulator.admin.set_faults(error_rate=1.0)
    emulator.admin.script("cae-1", ["OK"])
    assert code_of(emulator) == "T"
    assert code_of(emulator, {"customer_code": "C00000000002"}) == "SYSTEM_ERROR"


def test_scripts_are_matched_whatever_identity_the_request_uses(emulator):
    emulator.admin.script("cae-1", ["ILLEGAL_SYSTEM"])
    pair = {"type_code": "BUSI003100021000301", "trans_account_out": "20880020070189160156"}
    assert code_of(emulator, pair) == "ILLEGAL_SYSTEM"


def test_a_lost_answer_unsigns_and_then_drops_the_connection(emulator):
    # Given the next answer for cae-1 is lost
    emulator.admin.script("cae-1", ["LOST_ANSWER"])
    # When the client sends the unsign, it sees the connection drop without an answer
    with pytest.raises(requests.ConnectionError):
        emulator.send(emulator.signed(**CAE_1))
    # Then the unsign happened all the same
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"
    stats = emulator.admin.stats()
    assert stats["unsigns"] == 1 and stats["faults"]["LOST_ANSWER"] == 1
    # And re-sending the original request answers STATUS_CUSTOMER_SIGN, counted as after_success
    assert code_of(emulator) == "STATUS_CUSTOMER_SIGN"
    assert emulator.admin.agreement("cae-1")["after_success"] == 1


def test_the_lost_answer_rate_drops_processed_requests(emulator):
    emulator.admin.set_faults(lost_answer_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        emulator.send(emulator.signed(**CAE_1))
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"


def test_a_connection_reset_happens_before_any_processing(emulator):
    emulator.admin.set_faults(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        emulator.send(emulator.signed(**CAE_1))
    emulator.admin.clear()
    assert emulator.admin.agreement("cae-1")["status"] == "signed"
    assert emulator.admin.stats()["faults"] == {"RESET": 1}


def test_a_scripted_reset_is_a_reset_and_leaves_the_agreement_signed(emulator):
    emulator.admin.script("cae-1", ["RESET"])
    with pytest.raises(requests.ConnectionError):
        emulator.send(emulator.signed(**CAE_1))
    assert code_of(emulator) == "T"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_errors_answer_the_chosen_status_without_processing(emulator, status):
    emulator.admin.set_faults(http_error_rate=1.0, http_statuses=[status])
    resp = emulator.send(emulator.signed(**CAE_1))
    assert resp.status_code == status
    emulator.admin.clear()
    assert emulator.admin.agreement("cae-1")["status"] == "signed"


def test_a_scripted_http_error(emulator):
    emulator.admin.script("cae-1", ["HTTP_502", "OK"])
    assert emulator.send(emulator.signed(**CAE_1)).status_code == 502
    assert code_of(emulator) == "T"


def test_a_hanging_request_outlasts_the_client_timeout_and_is_not_processed(emulator):
    emulator.admin.set_faults(hang_rate=1.0, hang_seconds=30)
    with pytest.raises(requests.ReadTimeout):
        emulator.send(emulator.signed(**CAE_1), timeout_seconds=0.3)
    emulator.admin.clear()
    assert emulator.admin.agreement("cae-1")["status"] == "signed"
    assert emulator.admin.stats()["in_flight"] == 1  # still held by the emulator


def test_latency_delays_the_answer(emulator):
    emulator.admin.set_faults(latency_ms=300)
    started = time.monotonic()
    assert code_of(emulator) == "T"
    assert time.monotonic() - started >= 0.3


def test_a_malformed_answer_is_truncated_xml_but_the_unsign_is_applied(emulator):
    emulator.admin.script("cae-1", ["MALFORMED"])
    body = emulator.send(emulator.signed(**CAE_1)).content
    with pytest.raises(ResponseError) as info:
        parse_response(body)
    assert info.value.reason == "malformed"
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"


def test_an_oversized_answer_has_the_configured_size(emulator):
    emulator.admin.set_faults(oversized_rate=1.0, oversized_bytes=100_000)
    body = emulator.send(emulator.signed(**CAE_1)).content
    assert len(body) == 100_000
    with pytest.raises(ResponseError) as info:
        parse_response(body)
    assert info.value.reason == "too_large"
    assert parse_response(body, max_bytes=200_000).is_success


def test_a_wrong_signature_does_not_verify(emulator):
    emulator.admin.set_faults(wrong_sign_rate=1.0)
    body = emulator.send(emulator.signed(**CAE_1)).content
    assert parse_response(body).is_success
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=Md5Signer(emulator.key))


def test_the_error_rate_answers_one_of_the_chosen_codes_without_processing(emulator):
    emulator.admin.set_faults(error_rate=1.0, error_codes=["ILLEGAL_SYSTEM"])
    assert code_of(emulator) == "ILLEGAL_SYSTEM"
    assert emulator.admin.agreement("cae-1")["status"] == "signed"


def test_the_global_switch_answers_every_request_with_its_code(emulator):
    # Given the stop-the-line switch set to ILLEGAL_SIGN
    emulator.admin.set_faults(global_code="ILLEGAL_SIGN")
    # Then correct requests, and even requests for another service, get ILLEGAL_SIGN (unsigned,
    # as every error answer by default)
    assert code_of(emulator) == "ILLEGAL_SIGN"
    assert code_of(emulator, {"customer_code": "C00000000002"}) == "ILLEGAL_SIGN"
    resp = emulator.send(emulator.signed(service="nothing", **CAE_1))
    assert parse_response(resp.content, verifier=Md5Signer(emulator.key)).error == "ILLEGAL_SIGN"
    assert emulator.admin.agreement("cae-1")["status"] == "signed"
    # And once switched off, requests are served again
    emulator.admin.set_faults(global_code="")
    assert code_of(emulator) == "T"


def test_faults_can_start_from_the_scenario(emulator_factory: EmulatorFactory):
    emu = emulator_factory(scenario={"faults": {"error_rate": 1.0,
                                                "error_codes": ["SESSION_TIMEOUT"]}})
    assert code_of(emu) == "SESSION_TIMEOUT"
    assert emu.admin.faults()["error_rate"] == 1.0


def test_a_seeded_scenario_draws_the_same_faults_every_run(emulator_factory: EmulatorFactory):
    agreements = [{"id": f"a{i}", "customer_code": f"C{i}"} for i in range(30)]
    scenario = {"seed": 11, "faults": {"error_rate": 0.5}}
    runs = []
    for _ in range(2):
        emu = emulator_factory(agreements=agreements, scenario=scenario)
        runs.append([code_of(emu, {"customer_code": f"C{i}"}) for i in range(30)])
    assert runs[0] == runs[1]
    assert {"T", "SYSTEM_ERROR"} == set(runs[0])
