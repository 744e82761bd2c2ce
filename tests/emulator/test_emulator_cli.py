"""``unsign-worker emulator``: binding rules, configuration errors, and running as a process."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.plugins.emulator import PARTNER, SAMPLE_AGREEMENTS, VENV_CLI, write_agreements_file
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.cli.main import main
from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.server import check_bind
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer

KEY = "0123456789abcdefghijklmnopqrstuv"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean working directory (no .env) with a key and partner in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIPAY_KEY", KEY)
    monkeypatch.setenv("ALIPAY_PARTNER", PARTNER)
    return write_agreements_file(tmp_path / "agreements.json", SAMPLE_AGREEMENTS)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com", "::"])
@pytest.mark.parametrize("command", [["emulator"], ["emulator", "serve"]])
def test_a_non_loopback_host_is_refused_without_public(env, capsys, host, command):
    code = main([*command, "--host", host, "--agreements", str(env)])
    assert code == 1
    assert "only binds loopback addresses" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_allowed(host):
    check_bind(host, public=False)


def test_public_allows_any_host_to_be_bound():
    check_bind("0.0.0.0", public=True)
    with pytest.raises(EmulatorConfigError):
        check_bind("0.0.0.0", public=False)


def test_serving_requires_an_agreements_file(env, capsys):
    assert main(["emulator", "--port", "0"]) == 2
    assert "--agreements FILE is required" in capsys.readouterr().err


def test_a_bad_agreements_file_is_reported_with_the_field(env, capsys):
    env.write_text('{"agreements": [{"customer_code": "C00000000000000000000"}]}')
    assert main(["emulator", "--agreements", str(env)]) == 1
    assert "agreements[0].customer_code: longer than 20" in capsys.readouterr().err


def test_serving_without_any_key_is_refused(env, capsys, monkeypatch):
    monkeypatch.delenv("ALIPAY_KEY")
    monkeypatch.delenv("ALIPAY_KEY_FILE", raising=False)
    assert main(["emulator", "--agreements", str(env)]) == 1
    assert "ALIPAY_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_the_emulator_runs_as_a_process_and_serves_signed_requests(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(process=True)
    resp = emu.send(emu.signed(customer_code="C00000000001"))
    assert parse_response(resp.content, verifier=Md5Signer(emu.key)).is_success
    assert emu.admin.stats()["unsigns"] == 1


@pytest.mark.slow
def test_a_process_started_with_a_scenario_applies_it(emulator_factory: EmulatorFactory):
    emu = emulator_factory(process=True, scenario={"scripts": {"cae-1": ["ILLEGAL_SYSTEM"]}})
    resp = emu.send(emu.signed(customer_code="C00000000001"))
    assert parse_response(resp.content, verifier=Md5Signer(emu.key)).error == "ILLEGAL_SYSTEM"


@pytest.mark.slow
def test_answer_option_flags_override_the_scenario(emulator_factory: EmulatorFactory):
    # Given a scenario asking for gb2312 answers, and flags asking for signed errors and gbk
    emu = emulator_factory(process=True,
                           scenario={"options": {"charset": "gb2312", "sign_query": True}},
                           extra_args=["--sign-errors", "--answer-charset", "gbk"])
    assert emu.admin.options() == {"sign_errors": True, "sign_query": True, "charset": "gbk",
                                   "lenient": False}
    # Then an error answer is declared gbk and signed over its <error> node
    body = emu.send(emu.signed(customer_code="C99999999999")).content
    assert body.startswith(b'<?xml version="1.0" encoding="gbk"?>')
    parsed = parse_response(body, verifier=Md5Signer(emu.key))
    assert parsed.error == "NOT_EXIST_CUST_SIGN" and parsed.verified


def test_a_bad_answer_charset_flag_is_refused(env, capsys):
    assert main(["emulator", "--agreements", str(env), "--answer-charset", "latin-1"]) != 0
    assert "--answer-charset" in capsys.readouterr().err


def _wait_for_line(log: Path, process: subprocess.Popen[bytes], needle: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if needle in line:
                return line
        assert process.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never printed: {log.read_text(errors='replace')}")


@pytest.mark.slow
def test_serve_on_port_zero_prints_its_url_never_the_key_and_stops_on_sigterm(tmp_path):
    # Given `unsign-worker emulator serve --port 0` with the key in the environment
    agreements = write_agreements_file(tmp_path / "a.json", SAMPLE_AGREEMENTS)
    log = tmp_path / "emulator.log"
    env = dict(os.environ, ALIPAY_KEY=KEY, ALIPAY_PARTNER=PARTNER)
    with open(log, "wb") as out:
        process = subprocess.Popen([str(VENV_CLI), "emulator", "serve", "--port", "0",
                                    "--agreements", str(agreements)], cwd=tmp_path, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        # When it is ready, it prints the gateway URL and answers its health check
        line = _wait_for_line(log, process, "emulator: serving http://127.0.0.1:")
        url = line.split()[2]
        assert url.endswith("/gateway.do")
        assert EmulatorAdmin(url).wait_ready(30)["agreements"] == len(SAMPLE_AGREEMENTS)
    finally:
        # Then SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert KEY not in log.read_text(errors="replace")


@pytest.mark.slow
def test_agreements_loaded_into_a_running_process_are_unsigned_without_a_restart(
        emulator_factory: EmulatorFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # Given an emulator process serving the sample agreements, and a data set seeded after
    emu = emulator_factory(process=True)
    agreements, campaign = tmp_path / "new.json", tmp_path / "new.csv"
    assert main(["emulator", "seed", "--count", "5", "--mix", "clean", "--seed", "21",
                 "--partner", PARTNER, "--agreements", str(agreements),
                 "--campaign", str(campaign)]) == 0
    # When `emulator load` pushes it into the running process (HTTPS: it trusts the test CA)
    trust = ["--ca-bundle", emu.ca_bundle] if emu.ca_bundle else []
    assert main(["emulator", "load", str(agreements), "--url", emu.url, *trust]) == 0
    assert "loaded 5 agreements" in capsys.readouterr().out
    # Then signed requests for the new rows unsign their agreements
    with open(campaign, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        params = emu.signed(**{k: v for k, v in row.items() if k != "reference" and v})
        assert parse_response(emu.send(params).content,
                              verifier=Md5Signer(emu.key)).is_success, row
    assert emu.admin.stats()["unsigns"] == 5
    # and loading the same set again is refused as a whole
    assert main(["emulator", "load", str(agreements), "--url", emu.url, *trust]) == 1
    assert "used twice" in capsys.readouterr().err
    assert emu.admin.health()["agreements"] == len(SAMPLE_AGREEMENTS) + 5
