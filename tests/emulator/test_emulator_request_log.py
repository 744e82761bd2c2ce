"""The request log: one JSON line per gateway request, what was asked and answered and whether
it unsigned, never a parameter or a signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.emulator.request_log import RequestLog

CAE_1 = {"customer_code": "C00000000001"}


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def logged(emulator_factory: EmulatorFactory, path: Path) -> Emulator:
    emu = emulator_factory(start=False)
    assert emu.state is not None
    emu.state.request_log = RequestLog(path)
    return emu.start()


def test_each_request_is_logged_with_its_answer_and_whether_it_unsigned(
        emulator_factory, tmp_path):
    path = tmp_path / "requests.jsonl"
    emu = logged(emulator_factory, path)
    # Given an unsign, the same again, an unknown agreement, a bad signature and a lost answer
    emu.send(emu.signed(**CAE_1))
    emu.send(emu.signed(**CAE_1))
    emu.send(emu.signed(customer_code="C99999999999"))
    emu.send({**emu.signed(**CAE_1), "sign": "0" * 32})
    emu.script("cae-2", ["LOST_ANSWER"])
    with pytest.raises(requests.ConnectionError):
        emu.send(emu.signed(customer_code="C00000000002"))
    # Then the log holds one line per request, in order, naming what the gateway did
    found = lines(path)
    assert [(e["service"], e["agreement"], e["code"], e["action"], e["applied"])
            for e in found] == [
        ("customer_unsign", "cae-1", "T", "answer", True),
        ("customer_unsign", "cae-1", "STATUS_CUSTOMER_SIGN", "answer", False),
        ("customer_unsign", "", "NOT_EXIST_CUST_SIGN", "answer", False),
        ("customer_unsign", "", "ILLEGAL_SIGN", "answer", False),
        ("customer_unsign", "cae-2", "T", "LOST_ANSWER", True),
    ]
    for entry in found:
        assert entry["peer"] == "127.0.0.1"
        assert entry["received_at"] <= entry["answered_at"]
        # and no parameter, identity or signature
        assert set(entry) == {"received_at", "answered_at", "peer", "service", "agreement",
                              "code", "action", "applied"}
    text = path.read_text(encoding="utf-8")
    for secret in ("C00000000001", emu.signed(**CAE_1)["sign"]):
        assert secret not in text


def test_transport_faults_are_logged_without_an_answer(emulator_factory, tmp_path):
    path = tmp_path / "requests.jsonl"
    emu = logged(emulator_factory, path)
    emu.faults(http_error_rate=1.0, http_statuses=[503])
    emu.send(emu.signed(**CAE_1))
    assert [(e["code"], e["action"], e["applied"]) for e in lines(path)] == [
        ("", "HTTP_503", False)]


@pytest.mark.slow
def test_the_emulator_command_writes_its_request_log(emulator_factory, tmp_path):
    path = tmp_path / "requests.jsonl"
    emu = emulator_factory(process=True, extra_args=["--request-log", str(path)])
    emu.send(emu.signed(**CAE_1))
    assert [(e["agreement"], e["code"]) for e in lines(path)] == [("cae-1", "T")]
