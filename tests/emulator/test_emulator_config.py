"""Loading the emulator: agreements, scenario, fault knobs and keys (pure, no server)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.emulator.agreements import AgreementBook, agreement_from_entry
from unsign_worker.emulator.config import build_config, load_agreements_file, parse_agreements
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.faults import FaultSettings, check_step
from unsign_worker.emulator.rules import identity
from unsign_worker.emulator.scenario import load_scenario_file, parse_scenario
from unsign_worker.emulator.state import EmulatorState

PARTNER = "2088101568338364"
KEY = "0123456789abcdefghijklmnopqrstuv"


def test_an_agreements_file_is_read_with_its_partner(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"partner": PARTNER, "agreements": [
        {"customer_code": "C1"}, {"biz_type": "10004", "user_email": "a@b.com"}]}))
    loaded = load_agreements_file(path)
    assert loaded.partner == PARTNER
    assert [a.id for a in loaded.agreements] == ["C1", "10004:a@b.com"]


def test_an_unreadable_agreements_file_names_the_option(tmp_path):
    with pytest.raises(EmulatorConfigError, match="--agreements"):
        load_agreements_file(tmp_path / "missing.json")


def test_invalid_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"agreements": [\n,]}')
    with pytest.raises(EmulatorConfigError, match="a.json: not valid JSON.*line 2"):
        load_agreements_file(path)


@pytest.mark.parametrize(("entry", "message"), [
    ({"customer_code": "C" + "0" * 20}, r"agreements\[0\].customer_code: longer than 20"),
    ({"customer_code": 12}, r"agreements\[0\].customer_code: must be a string"),
    ({"customer_code": "C1", "status": "gone"}, r"agreements\[0\].status"),
    ({"customer_code": "C1", "colour": "red"}, r"agreements\[0\].colour: unknown field"),
    ({"type_code": "T1"}, r"agreements\[0\]: give customer_code"),
    ({"biz_type": "10005", "user_email": "a@b.com"}, r"agreements\[0\]: give customer_code"),
    ({"customer_code": "C1", "user_id": "1234"}, r"agreements\[0\].user_id"),
    ({"customer_code": "C1", "script": ["ok"]}, r"agreements\[0\].script: 'ok' is not a step"),
])
def test_a_bad_agreement_is_refused_with_its_position_and_field(entry, message):
    with pytest.raises(EmulatorConfigError, match=message):
        parse_agreements({"agreements": [entry]})


def test_unknown_top_level_fields_are_refused():
    with pytest.raises(EmulatorConfigError, match="unknown top-level field"):
        parse_agreements({"agreements": [], "agreement": []})


def test_two_agreements_with_one_identity_are_refused():
    entries = [agreement_from_entry({"id": "a", "customer_code": "C1"}, "x"),
               agreement_from_entry({"id": "b", "customer_code": "C1"}, "x")]
    with pytest.raises(EmulatorConfigError, match=r"agreements\[1\]: identity customer_code"):
        AgreementBook.build(entries)


def test_two_agreements_with_one_id_are_refused():
    entries = [agreement_from_entry({"id": "a", "customer_code": "C1"}, "x"),
               agreement_from_entry({"id": "a", "customer_code": "C2"}, "x")]
    with pytest.raises(EmulatorConfigError, match="used twice"):
        AgreementBook.build(entries)


def _book() -> AgreementBook:
    return AgreementBook.build([
        agreement_from_entry({"id": "cae", "customer_code": "C1", "type_code": "T1",
                              "trans_account_out": "20880000000000010156",
                              "user_email": "Cae@Example.com"}, "x"),
        agreement_from_entry({"id": "pp", "biz_type": "10004", "user_email": "Pp@Example.com",
                              "user_id": "2088000000000002"}, "x"),
    ])


@pytest.mark.parametrize(("business", "expected"), [
    ({"customer_code": "C1"}, "cae"),
    ({"type_code": "T1", "trans_account_out": "20880000000000010156"}, "cae"),
    # both pairs complete (the one mix the rules allow): type_code + trans_account_out wins
    ({"type_code": "T1", "trans_account_out": "20880000000000010156", "biz_type": "10004",
      "user_email": "pp@example.com"}, "cae"),
    ({"biz_type": "10004", "user_email": "PP@example.COM"}, "pp"),
    ({"customer_code": "C9"}, None),
])
def test_requests_find_agreements_with_the_gateways_priorities(business, expected):
    found = _book().find(identity(business))
    assert (found.id if found else None) == expected


def test_partner_protocol_agreements_are_found_by_user_id_or_email():
    book = _book()
    assert book.find_partner_protocol(user_id="2088000000000002").id == "pp"
    assert book.find_partner_protocol(user_email="PP@EXAMPLE.COM").id == "pp"
    assert book.find_partner_protocol(user_email="cae@example.com") is None


def test_a_scenario_is_read_with_its_faults_scripts_and_seed(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"seed": 3, "faults": {"latency_ms": 50, "http_statuses": [503]},
                                "scripts": {"a": ["SYSTEM_ERROR", "OK"]}}))
    scenario = load_scenario_file(path)
    assert scenario.seed == 3 and scenario.faults.latency_ms == 50
    assert scenario.faults.http_statuses == (503,)
    assert scenario.scripts == {"a": ("SYSTEM_ERROR", "OK")}


@pytest.mark.parametrize(("data", "message"), [
    ({"faults": {"latency": 1}}, r"scenario.faults.latency: unknown fault setting"),
    ({"faults": {"jitter_ms": -1}}, r"scenario.faults.jitter_ms: must not be negative"),
    ({"faults": {"reset_rate": "0.5"}}, r"scenario.faults.reset_rate: must be a number"),
    ({"faults": {"http_statuses": [404]}}, r"scenario.faults.http_statuses"),
    ({"faults": {"error_codes": []}}, r"scenario.faults.error_codes"),
    ({"faults": {"global_code": "ok"}}, r"scenario.faults.global_code"),
    ({"faults": {"oversized_bytes": 10}}, r"scenario.faults.oversized_bytes"),
    ({"scripts": {"a": "OK"}}, r"scenario.scripts.a: must be a list"),
    ({"seed": "x"}, r"scenario.seed"),
    ({"fault": {}}, r"unknown field"),
])
def test_a_bad_scenario_is_refused_naming_the_field(data, message):
    with pytest.raises(EmulatorConfigError, match=message):
        parse_scenario(data)


def test_a_script_for_an_agreement_that_does_not_exist_is_refused_at_start_up():
    config = build_config(partner=PARTNER, key=KEY)
    with pytest.raises(EmulatorConfigError, match="scenario.scripts.nope"):
        EmulatorState(config, [], parse_scenario({"scripts": {"nope": ["OK"]}}))


@pytest.mark.parametrize("step", ["OK", "SYSTEM_ERROR", "LOST_ANSWER", "HTTP_503", "RESET"])
def test_valid_steps_pass(step):
    assert check_step(step, "x") == step


@pytest.mark.parametrize("step", ["ok", "", 3, "A", "HTTP 500"])
def test_invalid_steps_are_refused(step):
    with pytest.raises(EmulatorConfigError, match="not a step"):
        check_step(step, "x")


def test_fault_settings_round_trip_through_their_dict():
    faults = FaultSettings.from_mapping({"latency_ms": 5, "error_codes": ["ILLEGAL_SYSTEM"]})
    assert FaultSettings.from_mapping(faults.as_dict()) == faults


def test_healthy_settings_draw_no_fault_and_no_delay():
    faults, rand = FaultSettings(), random.Random(1)
    assert faults.delay_seconds(rand) == 0
    assert (faults.draw_transport(rand), faults.draw_error(rand), faults.draw_body(rand)) == (
        None, None, None)


@given(latency=st.floats(0, 5000), jitter=st.floats(0, 5000), seed=st.integers())
def test_the_delay_lies_between_the_latency_and_the_latency_plus_jitter(latency, jitter, seed):
    faults = FaultSettings(latency_ms=latency, jitter_ms=jitter)
    delay = faults.delay_seconds(random.Random(seed))
    assert latency / 1000 <= delay <= (latency + jitter) / 1000


@given(rate=st.floats(0, 1), seed=st.integers())
def test_the_same_seed_draws_the_same_faults(rate, seed):
    faults = FaultSettings(error_rate=rate, lost_answer_rate=rate, reset_rate=rate)

    def draws(rand: random.Random) -> list[object]:
        return [(faults.draw_transport(rand), faults.draw_error(rand), faults.draw_body(rand))
                for _ in range(20)]

    assert draws(random.Random(seed)) == draws(random.Random(seed))


def test_a_rate_of_one_always_fires():
    faults = FaultSettings(http_error_rate=1.0, http_statuses=(502,))
    assert faults.draw_transport(random.Random()) == "HTTP_502"


def test_the_config_needs_a_valid_partner():
    with pytest.raises(EmulatorConfigError, match="ALIPAY_PARTNER"):
        build_config(partner="1234", key=KEY)


def test_the_config_needs_some_key():
    with pytest.raises(EmulatorConfigError, match="ALIPAY_KEY"):
        build_config(partner=PARTNER)


def test_the_asymmetric_keys_go_together():
    with pytest.raises(EmulatorConfigError, match="go together"):
        build_config(partner=PARTNER, key=KEY, merchant_public_key_pem="x")


def test_an_unreadable_public_key_is_refused():
    with pytest.raises(EmulatorConfigError, match="--merchant-public-key"):
        build_config(partner=PARTNER, merchant_public_key_pem="garbage",
                     alipay_private_key_pem="garbage")


def test_the_config_repr_never_shows_the_key():
    config = build_config(partner=PARTNER, key=KEY)
    assert KEY not in repr(config) and KEY not in repr(config.keys)


def test_a_scenario_may_set_the_answer_options_and_names_a_bad_one():
    scenario = parse_scenario({"options": {"sign_errors": True, "charset": "gb18030"}})
    assert scenario.options.sign_errors and scenario.options.charset == "gb18030"
    assert not parse_scenario({}).options.sign_query
    with pytest.raises(EmulatorConfigError, match=r"scenario.options.charset"):
        parse_scenario({"options": {"charset": "big5"}})
    with pytest.raises(EmulatorConfigError, match=r"scenario.options: must be an object"):
        parse_scenario({"options": ["sign_errors"]})


def test_an_agreement_with_the_answer_samples_thirteen_digit_code_is_accepted():
    agreement = agreement_from_entry({"customer_code": "1118400000013"}, "agreements[0]")
    assert agreement.customer_block() == {"customer_code": "1118400000013", "type_code": ""}
