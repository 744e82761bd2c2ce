"""The admin API and its client: stats, reset, clear, scripts, statuses, refusals."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tests.plugins.emulator import Emulator
from unsign_worker.emulator.admin import EmulatorAdmin, EmulatorAdminError
from unsign_worker.emulator.seed import generate
from unsign_worker.emulator.server import make_handler
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer

CAE_1 = {"customer_code": "C00000000001"}


def code_of(emu: Emulator, **business: str) -> str:
    parsed = parse_response(emu.send(emu.signed(**(business or CAE_1))).content,
                            verifier=Md5Signer(emu.key))
    return "T" if parsed.is_success else parsed.error


def test_health_answers_with_the_partner_and_the_number_of_agreements(emulator):
    assert emulator.admin.health() == {"status": "ok", "partner": emulator.partner,
                                       "agreements": 6}


def test_the_admin_client_accepts_the_gateway_url(emulator):
    assert EmulatorAdmin(emulator.url).base_url == emulator.base_url


def test_stats_count_requests_per_agreement_and_bad_signatures(emulator):
    # Given one success, one repeat, one unknown agreement and one bad signature
    code_of(emulator)
    code_of(emulator)
    code_of(emulator, customer_code="C99999999999")
    bad = emulator.signed(customer_code="C00000000002")
    bad["sign"] = "0" * 32
    emulator.send(bad)
    # Then
    stats = emulator.admin.stats()
    assert stats["requests"] == 4 and stats["unsign_requests"] == 3
    assert stats["bad_signatures"] == 1
    assert stats["answers"] == {"T": 1, "STATUS_CUSTOMER_SIGN": 1, "NOT_EXIST_CUST_SIGN": 1,
                                "ILLEGAL_SIGN": 1}
    assert stats["agreements"] == {"cae-1": {"requests": 2, "unsigns": 1, "after_success": 1}}
    assert "agreements" not in emulator.admin.stats(per_agreement=False)


def test_an_agreement_re_signed_by_hand_and_unsigned_again_counts_as_a_duplicate(emulator):
    assert code_of(emulator) == "T"
    emulator.admin.set_status("cae-1", "signed")
    assert code_of(emulator) == "T"
    stats = emulator.admin.stats()
    assert (stats["unsigns"], stats["duplicates"], stats["after_success"]) == (2, 1, 0)


def test_reset_stats_zeroes_the_counters_but_keeps_the_agreements(emulator):
    code_of(emulator)
    emulator.admin.reset_stats()
    assert emulator.admin.stats()["requests"] == 0
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"


def test_reset_returns_statuses_scripts_faults_and_counters_to_start_up(emulator_factory):
    emu = emulator_factory(scenario={"faults": {"latency_ms": 1},
                                     "scripts": {"cae-2": ["SYSTEM_ERROR"]}})
    code_of(emu)
    emu.admin.set_status("cae-unsigned", "signed")
    emu.admin.script("cae-3", ["HTTP_500"])
    emu.admin.set_faults(latency_ms=5)
    emu.admin.reset()
    assert emu.admin.agreement("cae-1")["status"] == "signed"
    assert emu.admin.agreement("cae-unsigned")["status"] == "unsigned"
    assert emu.admin.scripts() == {"cae-2": ["SYSTEM_ERROR"]}
    assert emu.admin.faults()["latency_ms"] == 1
    assert emu.admin.stats()["requests"] == 0


def test_clear_removes_faults_and_scripts_but_keeps_statuses_and_counters(emulator):
    code_of(emulator)
    emulator.admin.set_faults(global_code="ILLEGAL_PARTNER", latency_ms=20)
    emulator.admin.script("cae-2", ["SYSTEM_ERROR"])
    emulator.admin.clear()
    assert emulator.admin.faults()["global_code"] == ""
    assert emulator.admin.faults()["latency_ms"] == 0
    assert emulator.admin.scripts() == {}
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"
    assert emulator.admin.stats()["unsigns"] == 1


def test_set_faults_changes_only_the_knobs_given(emulator):
    emulator.admin.set_faults(latency_ms=10)
    faults = emulator.admin.set_faults(jitter_ms=5)
    assert (faults["latency_ms"], faults["jitter_ms"]) == (10, 5)


def test_an_unknown_fault_knob_is_refused_with_its_name(emulator):
    with pytest.raises(EmulatorAdminError) as info:
        emulator.admin.set_faults(latency=10)
    assert info.value.status == 400 and "faults.latency" in str(info.value)


def test_a_rate_above_one_is_refused(emulator):
    with pytest.raises(EmulatorAdminError, match="faults.error_rate"):
        emulator.admin.set_faults(error_rate=1.5)


def test_a_script_for_an_unknown_agreement_is_a_404(emulator):
    with pytest.raises(EmulatorAdminError) as info:
        emulator.admin.script("nope", ["OK"])
    assert info.value.status == 404


def test_a_bad_script_step_is_refused(emulator):
    with pytest.raises(EmulatorAdminError, match="not a step"):
        emulator.admin.script("cae-1", ["system_error"])


def test_an_empty_script_removes_the_agreements_script(emulator):
    emulator.admin.script("cae-1", ["SYSTEM_ERROR"])
    emulator.admin.script("cae-1", [])
    assert emulator.admin.scripts() == {}
    assert code_of(emulator) == "T"


def test_a_bad_status_is_refused(emulator):
    with pytest.raises(EmulatorAdminError, match="status"):
        emulator.admin.set_status("cae-1", "frozen")


def test_an_unreachable_emulator_is_an_admin_error():
    with pytest.raises(EmulatorAdminError):
        EmulatorAdmin("http://127.0.0.1:9", timeout_seconds=1).stats()


def test_wait_ready_gives_up_after_its_deadline():
    with pytest.raises(TimeoutError):
        EmulatorAdmin("http://127.0.0.1:9", timeout_seconds=0.2).wait_ready(0.3)


def test_the_admin_api_refuses_clients_that_are_not_on_loopback(emulator):
    # Given the handler of a running emulator and a request that comes from another host
    handler = make_handler(emulator.state)

    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("10.1.2.3", 40000) if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    request = make_mocked_request("GET", "/_emulator/stats", transport=Transport())
    # Then it is refused
    response = asyncio.run(handler(request))
    assert isinstance(response, web.Response) and response.status == 403


def test_unknown_admin_paths_and_methods_are_404(emulator):
    for method, path in (("GET", "/_emulator/nothing"), ("DELETE", "/_emulator/stats"),
                         ("GET", "/elsewhere")):
        resp = emulator.http.request(method, emulator.base_url + path, timeout=10)
        assert resp.status_code == 404


def test_the_gateway_path_accepts_only_get_and_post(emulator):
    resp = emulator.http.put(emulator.url, timeout=10)
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, POST"


def test_agreement_ids_with_reserved_characters_are_reachable(emulator):
    assert emulator.admin.agreement("cae-1")["id"] == "cae-1"
    with pytest.raises(EmulatorAdminError) as info:
        emulator.admin.agreement("10004:a b/c@example.com")
    assert info.value.status == 404 and "a b/c@example.com" in str(info.value)


# --- cross-site requests: a web page the operator visits also runs on a loopback client -----


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_post_that_is_not_json_changes_nothing(emulator, content_type):
    # Given a POST as a cross-site form or text/plain fetch sends it (no CORS preflight)
    headers = {"Content-Type": content_type} if content_type else {}
    resp = emulator.http.post(f"{emulator.base_url}/_emulator/faults",
                              data='{"global_code": "ILLEGAL_SIGN"}', headers=headers,
                              timeout=10)
    # Then it is refused and the faults are untouched
    assert resp.status_code == 415
    assert emulator.admin.faults()["global_code"] == ""


def test_a_foreign_origin_is_refused_even_with_a_json_body(emulator):
    for path, body in (("/faults", {"global_code": "ILLEGAL_SIGN"}), ("/reset", {}),
                       ("/agreements/cae-1", {"status": "unsigned"})):
        resp = emulator.http.post(f"{emulator.base_url}/_emulator{path}", json=body,
                                  headers={"Origin": "https://evil.example"}, timeout=10)
        assert resp.status_code == 403, path
    assert emulator.admin.faults()["global_code"] == ""
    assert emulator.admin.agreement("cae-1")["status"] == "signed"
    resp = emulator.http.get(f"{emulator.base_url}/_emulator/stats",
                             headers={"Origin": "http://127.0.0.1.evil.example"}, timeout=10)
    assert resp.status_code == 403


def test_the_emulators_own_origin_and_plain_clients_are_served(emulator):
    resp = emulator.http.post(f"{emulator.base_url}/_emulator/faults",
                              json={"latency_ms": 1}, headers={"Origin": emulator.base_url},
                              timeout=10)
    assert resp.status_code == 200 and resp.json()["latency_ms"] == 1
    # the admin client sends JSON on every POST, also those without a body
    emulator.admin.clear()
    emulator.admin.reset()
    assert emulator.admin.faults()["latency_ms"] == 0


def test_a_host_name_that_is_not_loopback_is_refused(emulator):
    # DNS rebinding: a page of rebind.example whose name now resolves to 127.0.0.1
    resp = emulator.http.post(f"{emulator.base_url}/_emulator/reset", json={},
                              headers={"Host": "rebind.example:80"}, timeout=10)
    assert resp.status_code == 403


def test_answer_options_are_read_and_changed_through_the_api(emulator):
    assert emulator.admin.options() == {"sign_errors": False, "sign_query": False,
                                        "charset": "utf-8", "lenient": False}
    assert emulator.admin.set_options(charset="GB2312")["charset"] == "gb2312"
    with pytest.raises(EmulatorAdminError, match="options.charset"):
        emulator.admin.set_options(charset="latin-1")
    with pytest.raises(EmulatorAdminError, match="options.sign_errors"):
        emulator.admin.set_options(sign_errors="yes")
    emulator.admin.clear()  # clear is about faults and scripts: options stay
    assert emulator.admin.options()["charset"] == "gb2312"
    emulator.admin.reset()
    assert emulator.admin.options()["charset"] == "utf-8"


def business_of(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k != "reference" and v}


def test_agreements_loaded_while_serving_are_unsigned_and_scripted(emulator):
    # Given a data set the emulator did not start with
    data = generate(6, {"success": 1, "transient": 1}, partner=emulator.partner, seed=11)
    # When it is loaded through the admin API
    result = emulator.admin.load_agreements({"partner": data.partner,
                                             "agreements": data.agreements})
    # Then its rows reach their agreements, scripts included
    assert result == {"added": 6, "agreements": 12}
    for row in data.rows:
        first = code_of(emulator, **business_of(row))
        if data.outcomes[row["reference"]] == "transient":
            assert first in ("SYSTEM_ERROR", "ILLEGAL_SYSTEM")
        else:
            assert first == "T"
    # and a reset keeps them, in the status they were loaded with
    emulator.admin.reset()
    assert emulator.admin.health()["agreements"] == 12
    assert code_of(emulator, **business_of(data.rows[0])) in ("T", "SYSTEM_ERROR",
                                                              "ILLEGAL_SYSTEM")


def test_a_load_repeating_an_identity_or_for_another_partner_adds_nothing(emulator):
    data = generate(3, {"success": 1}, partner=emulator.partner, seed=12)
    emulator.admin.load_agreements({"agreements": data.agreements})
    clash = [*generate(2, {"success": 1}, seed=13).agreements, data.agreements[0]]
    with pytest.raises(EmulatorAdminError, match="used twice") as refused:
        emulator.admin.load_agreements({"agreements": clash})
    assert refused.value.status == 400
    with pytest.raises(EmulatorAdminError, match="not the partner") as other:
        emulator.admin.load_agreements({"partner": "2088000000000001",
                                        "agreements": generate(1, {"success": 1},
                                                               seed=14).agreements})
    assert other.value.status == 400
    with pytest.raises(EmulatorAdminError, match="unknown field"):
        emulator.admin.load_agreements({"agreements": [{"id": "x", "colour": "red"}]})
    assert emulator.admin.health()["agreements"] == 9
    assert code_of(emulator, customer_code=str(clash[0]["customer_code"])) == "NOT_EXIST_CUST_SIGN"
