"""The emulator over HTTPS: the standard library verifies its chain and host names against the
sandbox root alone, and the gateway, the admin API and the faults work as over plain HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.plugins.emulator import KEY, PARTNER, SAMPLE_AGREEMENTS
from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.agreements import agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread, server_base_url
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.tls import SandboxPki, make_sandbox_pki, server_ssl_context
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer, sign_params

CAE_1 = {"customer_code": "C00000000001"}


def sample_state() -> EmulatorState:
    agreements = [agreement_from_entry(dict(entry), f"agreements[{i}]")
                  for i, entry in enumerate(SAMPLE_AGREEMENTS)]
    return EmulatorState(build_config(partner=PARTNER, key=KEY), agreements)


@pytest.fixture
def pki(tmp_path: Path) -> SandboxPki:
    return make_sandbox_pki(tmp_path / "tls")


@pytest.fixture
def https_emulator(pki: SandboxPki) -> Iterator[EmulatorThread]:
    context = server_ssl_context(pki.cert_file, pki.key_file)
    with EmulatorThread(sample_state(), ssl_context=context) as thread:
        yield thread


@pytest.fixture
def session(pki: SandboxPki) -> Iterator[requests.Session]:
    """A client that trusts the sandbox root alone."""
    with requests.Session() as client:
        client.trust_env = False
        client.verify = str(pki.ca_file)
        yield client


def client_context(pki: SandboxPki) -> ssl.SSLContext:
    """The standard library's verifying context, trusting only ca.pem, strict X.509 checks."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def signed_form(**business: str) -> str:
    params = {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "utf-8",
              **business}
    return urlencode(sign_params(params, Md5Signer(KEY), "utf-8"))


def unsign(client: requests.Session, emulator: EmulatorThread, *,
           timeout_seconds: float = 10.0, **business: str) -> str:
    """POST a signed unsign; the answer's code (``T`` on success)."""
    resp = client.post(f"{emulator.url}?_input_charset=utf-8", data=signed_form(**business),
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       timeout=timeout_seconds)
    assert resp.status_code == 200
    parsed = parse_response(resp.content, verifier=Md5Signer(KEY))
    return "T" if parsed.is_success else parsed.error


def agreement_status(emulator: EmulatorThread, agreement_id: str) -> str:
    return emulator.call(lambda: emulator.state.agreement(agreement_id).status)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_standard_library_verifies_the_chain_and_the_host_name(pki, https_emulator, host):
    # Given a client that trusts ca.pem alone, with OpenSSL's strict X.509 checks
    connection = http.client.HTTPSConnection(host, https_emulator.port,
                                             context=client_context(pki), timeout=10)
    try:
        # When it asks for the health check by that host name
        connection.request("GET", "/_emulator/health")
        answer = connection.getresponse()
        # Then the chain and the name verified, and the emulator answered
        assert answer.status == 200
        assert json.loads(answer.read())["partner"] == PARTNER
    finally:
        connection.close()


def test_a_name_the_certificate_does_not_carry_fails_verification(pki, https_emulator):
    with socket.create_connection(("127.0.0.1", https_emulator.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            client_context(pki).wrap_socket(raw, server_hostname="gateway.example")


def test_a_client_that_does_not_trust_the_sandbox_root_refuses_the_emulator(https_emulator):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_emulator.admin_url + "/health", timeout=10)


def test_https_urls_name_localhost_and_plain_ones_keep_the_address(https_emulator):
    assert https_emulator.url == f"https://localhost:{https_emulator.port}/gateway.do"
    assert server_base_url("127.0.0.1", 8010, tls=False) == "http://127.0.0.1:8010"
    assert server_base_url("localhost", 8010, tls=True) == "https://localhost:8010"
    # an address the name localhost does not reach keeps its literal
    assert server_base_url("127.0.0.77", 8010, tls=True) == "https://127.0.0.77:8010"
    assert server_base_url("::2", 8010, tls=True) == "https://[::2]:8010"


def test_a_signed_unsign_over_https_succeeds_and_unsigns_the_agreement(session, https_emulator):
    assert unsign(session, https_emulator, **CAE_1) == "T"
    assert agreement_status(https_emulator, "cae-1") == "unsigned"
    assert unsign(session, https_emulator, **CAE_1) == "STATUS_CUSTOMER_SIGN"


def test_the_admin_client_works_over_https_with_the_ca_bundle(pki, https_emulator):
    admin = EmulatorAdmin(https_emulator.url, ca_bundle=str(pki.ca_file))
    try:
        assert admin.wait_ready(10)["agreements"] == len(SAMPLE_AGREEMENTS)
        admin.script("cae-1", ["SYSTEM_ERROR"])
        assert admin.scripts() == {"cae-1": ["SYSTEM_ERROR"]}
    finally:
        admin.close()


def test_the_admin_api_accepts_its_own_https_origin_only(session, https_emulator):
    host = f"localhost:{https_emulator.port}"
    url = f"{https_emulator.admin_url}/faults"
    own = session.post(url, json={"latency_ms": 1}, headers={"Origin": f"https://{host}"},
                       timeout=10)
    assert own.status_code == 200 and own.json()["latency_ms"] == 1
    plain = session.post(url, json={"latency_ms": 2}, headers={"Origin": f"http://{host}"},
                         timeout=10)
    assert plain.status_code == 403


def test_a_lost_answer_over_https_unsigns_then_drops_the_connection(session, https_emulator):
    https_emulator.call(lambda: https_emulator.state.set_script("cae-1", ["LOST_ANSWER"]))
    with pytest.raises(requests.ConnectionError):
        unsign(session, https_emulator, **CAE_1)
    assert agreement_status(https_emulator, "cae-1") == "unsigned"
    assert unsign(session, https_emulator, **CAE_1) == "STATUS_CUSTOMER_SIGN"


def test_a_reset_over_https_drops_the_connection_before_any_processing(session,
                                                                       https_emulator):
    https_emulator.call(lambda: https_emulator.state.set_script("cae-1", ["RESET"]))
    with pytest.raises(requests.ConnectionError):
        unsign(session, https_emulator, **CAE_1)
    assert agreement_status(https_emulator, "cae-1") == "signed"
    assert https_emulator.call(lambda: https_emulator.state.stats.faults["SCRIPTED"]) == 1


def test_a_hang_over_https_outlasts_the_client_timeout_and_is_not_processed(session,
                                                                            https_emulator):
    https_emulator.call(lambda: https_emulator.state.set_script("cae-1", ["HANG"]))
    with pytest.raises(requests.ReadTimeout):
        unsign(session, https_emulator, timeout_seconds=0.3, **CAE_1)
    assert agreement_status(https_emulator, "cae-1") == "signed"
