"""``unsign-worker emulator tls DIR`` and serving HTTPS from the command line (``--tls-cert`` /
``--tls-key``, their variables, ``--tls-dir``): what is written and printed, and the errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from cryptography import x509

from tests.plugins.emulator import (
    KEY,
    PARTNER,
    PROCESS_READY_SECONDS,
    SAMPLE_AGREEMENTS,
    VENV_CLI,
    write_agreements_file,
)
from unsign_worker.cli.main import EXIT_ERROR, EXIT_USAGE, main
from unsign_worker.emulator.tls import make_sandbox_pki
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer, sign_params


@pytest.fixture
def agreements(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean working directory (no .env, no TLS variables), a key and partner, agreements."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIPAY_KEY", KEY)
    monkeypatch.setenv("ALIPAY_PARTNER", PARTNER)
    for name in ("EMULATOR_TLS_CERT_FILE", "EMULATOR_TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    return write_agreements_file(tmp_path / "agreements.json", SAMPLE_AGREEMENTS)


def test_emulator_tls_writes_the_pki_and_prints_how_to_trust_and_serve_it(tmp_path, capsys):
    directory = tmp_path / "tls"
    assert main(["emulator", "tls", str(directory)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote a sandbox PKI for localhost, 127.0.0.1, ::1 in {directory}")
    assert f"export ALIPAY_CA_BUNDLE={directory / 'ca.pem'}\n" in out
    assert "export ALIPAY_GATEWAY_URL=https://localhost:8010/gateway.do" in out
    assert (f"unsign-worker emulator --tls-cert {directory / 'gateway.pem'} "
            f"--tls-key {directory / 'gateway-key.pem'}") in out
    assert stat.S_IMODE((directory / "gateway-key.pem").stat().st_mode) == 0o600
    assert len(x509.load_pem_x509_certificates((directory / "gateway.pem").read_bytes())) == 2


def test_emulator_tls_keeps_files_still_valid_for_the_same_hosts(tmp_path, capsys):
    directory = tmp_path / "tls"
    assert main(["emulator", "tls", str(directory)]) == 0
    root = (directory / "ca.pem").read_bytes()
    capsys.readouterr()
    assert main(["emulator", "tls", str(directory)]) == 0
    assert capsys.readouterr().out.startswith(f"kept the sandbox PKI in {directory}")
    assert (directory / "ca.pem").read_bytes() == root


def test_emulator_tls_adds_the_hosts_given_to_the_loopback_names(tmp_path, capsys):
    directory = tmp_path / "tls"
    assert main(["emulator", "tls", str(directory), "--host", "gateway.test",
                 "--host", "10.0.0.5"]) == 0
    leaf = x509.load_pem_x509_certificates((directory / "gateway.pem").read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "gateway.test"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1", "::1", "10.0.0.5"]


def test_emulator_tls_refuses_a_host_the_certificate_cannot_name(tmp_path, capsys):
    assert main(["emulator", "tls", str(tmp_path / "tls"), "--host", "bad name"]) == EXIT_ERROR
    assert "--host 'bad name'" in capsys.readouterr().err


def test_a_certificate_without_its_key_is_refused_naming_both_options(agreements, tmp_path,
                                                                      capsys):
    pki = make_sandbox_pki(tmp_path / "tls")
    code = main(["emulator", "--agreements", str(agreements), "--tls-cert", str(pki.cert_file)])
    assert code == EXIT_USAGE
    assert "--tls-cert needs --tls-key" in capsys.readouterr().err
    code = main(["emulator", "--agreements", str(agreements), "--tls-key", str(pki.key_file)])
    assert code == EXIT_USAGE
    assert "--tls-key needs --tls-cert" in capsys.readouterr().err


def test_the_variables_go_together_the_same_way(agreements, tmp_path, capsys, monkeypatch):
    pki = make_sandbox_pki(tmp_path / "tls")
    monkeypatch.setenv("EMULATOR_TLS_CERT_FILE", str(pki.cert_file))
    assert main(["emulator", "--agreements", str(agreements)]) == EXIT_USAGE
    assert ("EMULATOR_TLS_CERT_FILE needs EMULATOR_TLS_KEY_FILE"
            in capsys.readouterr().err)


def test_a_certificate_that_cannot_be_read_is_named_with_its_option(agreements, tmp_path,
                                                                    capsys):
    pki = make_sandbox_pki(tmp_path / "tls")
    missing = tmp_path / "missing.pem"
    code = main(["emulator", "--agreements", str(agreements), "--tls-cert", str(missing),
                 "--tls-key", str(pki.key_file)])
    assert code == EXIT_ERROR
    assert f"--tls-cert '{missing}': cannot read" in capsys.readouterr().err


def test_a_variable_naming_a_bad_key_is_named_in_the_error(agreements, tmp_path, capsys,
                                                           monkeypatch):
    pki = make_sandbox_pki(tmp_path / "tls")
    monkeypatch.setenv("EMULATOR_TLS_CERT_FILE", str(pki.cert_file))
    monkeypatch.setenv("EMULATOR_TLS_KEY_FILE", str(pki.ca_file))
    assert main(["emulator", "--agreements", str(agreements)]) == EXIT_ERROR
    assert (f"EMULATOR_TLS_KEY_FILE '{pki.ca_file}': not an unencrypted PEM private key"
            in capsys.readouterr().err)


def test_tls_dir_and_tls_cert_exclude_each_other(agreements, tmp_path, capsys):
    pki = make_sandbox_pki(tmp_path / "tls")
    code = main(["emulator", "--agreements", str(agreements), "--tls-dir", str(tmp_path / "tls"),
                 "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)])
    assert code == EXIT_USAGE
    assert "--tls-dir" in capsys.readouterr().err


def test_a_tls_dir_that_cannot_be_written_is_named(agreements, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["emulator", "--agreements", str(agreements), "--tls-dir", str(blocker / "tls")])
    assert code == EXIT_ERROR
    assert (f"--tls-dir: cannot write the sandbox PKI in '{blocker / 'tls'}'"
            in capsys.readouterr().err)


def _ready_line(log: Path, process: subprocess.Popen[bytes]) -> str:
    """The emulator's ready line, polled until it appears (or the process ends)."""
    deadline = time.monotonic() + PROCESS_READY_SECONDS
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("emulator: serving "):
                return line
        assert process.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"never ready: {log.read_text(errors='replace')}")


@pytest.mark.slow
def test_tls_dir_serves_https_on_localhost_trusting_the_ca_it_names(tmp_path):
    # Given `unsign-worker emulator --tls-dir DIR --port 0` with the key in the environment
    agreements = write_agreements_file(tmp_path / "a.json", SAMPLE_AGREEMENTS)
    directory = tmp_path / "tls"
    log = tmp_path / "emulator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_TLS_")}
    env.update(ALIPAY_KEY=KEY, ALIPAY_PARTNER=PARTNER)
    with open(log, "wb") as out:
        process = subprocess.Popen([str(VENV_CLI), "emulator", "--port", "0", "--agreements",
                                    str(agreements), "--tls-dir", str(directory)],
                                   cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # When it is ready, its line gives an https://localhost URL and the CA to trust
        line = _ready_line(log, process)
        url = line.split()[2]
        assert url.startswith("https://localhost:") and url.endswith("/gateway.do")
        ca_file = directory / "ca.pem"
        assert line.endswith(f"; trust {ca_file} (ALIPAY_CA_BUNDLE)")
        # Then a client trusting that CA alone unsigns over one kept-alive TLS connection
        with requests.Session() as client:
            client.trust_env = False
            client.verify = str(ca_file)
            params = sign_params({"service": "customer_unsign", "partner": PARTNER,
                                  "_input_charset": "utf-8", "customer_code": "C00000000001"},
                                 Md5Signer(KEY), "utf-8")
            for expected in ("T", "STATUS_CUSTOMER_SIGN"):
                resp = client.post(f"{url}?_input_charset=utf-8", data=urlencode(params),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"},
                                   timeout=10)
                parsed = parse_response(resp.content, verifier=Md5Signer(KEY))
                assert ("T" if parsed.is_success else parsed.error) == expected
            stats = client.get(url.replace("/gateway.do", "/_emulator/stats"), timeout=10).json()
        assert stats["unsigns"] == 1 and stats["connections_opened"] == 1
    finally:
        # And SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert KEY not in log.read_text(errors="replace")
