"""Transport security: which gateways production settings accept, and TLS verification that
fails closed and cannot be switched off (only widened to an explicit CA bundle)."""

from __future__ import annotations

import dataclasses
import inspect
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.plugins.scripted_http import Request, ScriptedServer, answer
from unsign_worker.protocol.exceptions import ConfigError, TransportError
from unsign_worker.protocol.gateway import GatewayClient
from unsign_worker.settings import Settings, check_gateway_url

OK_BODY = b"<alipay><is_success>T</is_success></alipay>"
PARAMS = {"service": "customer_unsign", "customer_code": "C1", "sign": "s", "sign_type": "MD5"}


def ok(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
    sock.sendall(answer(200, OK_BODY))
    return True


def tls_server(ca: trustme.CA, identity: str = "127.0.0.1") -> ScriptedServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(identity).configure_cert(context)
    return ScriptedServer(ok, ssl_context=context)


@pytest.fixture
def self_signed(ca: trustme.CA) -> Iterator[ScriptedServer]:
    with tls_server(ca) as server:
        yield server


def client_for(url: str, ca_bundle: str | None = None) -> GatewayClient:
    return GatewayClient(gateway_url=url, connect_timeout_seconds=5.0, read_timeout_seconds=10.0,
                         pool_size=2, max_response_bytes=65536, ca_bundle=ca_bundle)


# --- which gateway URLs the settings accept ------------------------------------------------

@pytest.mark.parametrize("url", ["https://mapi.alipay.com/gateway.do",
                                 "https://MAPI.alipay.com./gateway.do"])
def test_production_accepts_alipays_https_gateway_named_by_dns(url: str) -> None:
    check_gateway_url(url, sandbox=False)


@pytest.mark.parametrize("url", ["https://openapi.example.com:8443/gateway.do",
                                 "https://mapi.alipay.com.example.com/gateway.do",
                                 "https://localhost:8443/gateway.do"])
def test_production_refuses_any_other_host_unless_explicitly_allowed(url: str) -> None:
    with pytest.raises(ConfigError, match="ALIPAY_GATEWAY_ALLOWED_HOSTS"):
        check_gateway_url(url, sandbox=False)


def test_a_host_named_in_the_allowed_hosts_setting_is_accepted_over_https_only() -> None:
    settings = Settings.from_env({"ALIPAY_GATEWAY_ALLOWED_HOSTS": " Egress.Internal , other. "},
                                 load_dotenv=False)
    assert settings.gateway_allowed_hosts == ("egress.internal", "other")

    check_gateway_url("https://egress.internal:8443/gateway.do", sandbox=False,
                      allowed_hosts=settings.gateway_allowed_hosts)
    with pytest.raises(ConfigError, match="only https://"):
        check_gateway_url("http://egress.internal/gateway.do", sandbox=False,
                          allowed_hosts=settings.gateway_allowed_hosts)
    with pytest.raises(ConfigError, match="IP literal"):
        check_gateway_url("https://10.0.0.1/gateway.do", sandbox=False,
                          allowed_hosts=("10.0.0.1",))


@pytest.mark.parametrize("url", ["http://mapi.alipay.com/gateway.do",
                                 "http://127.0.0.1:8080/gateway.do", "ftp://mapi.alipay.com/"])
def test_production_refuses_a_gateway_without_tls(url: str) -> None:
    with pytest.raises(ConfigError, match="ALIPAY_GATEWAY_URL"):
        check_gateway_url(url, sandbox=False)


@pytest.mark.parametrize("url", ["https://110.75.143.3/gateway.do",
                                 "https://[2001:db8::1]/gateway.do",
                                 "https://127.0.0.1/gateway.do"])
def test_production_refuses_a_gateway_given_as_an_ip_literal(url: str) -> None:
    with pytest.raises(ConfigError, match="IP literal"):
        check_gateway_url(url, sandbox=False)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1"])
def test_production_refuses_an_ip_literal_in_numeric_disguise(host: str) -> None:
    with pytest.raises(ConfigError):
        check_gateway_url(f"https://{host}/gateway.do", sandbox=False)


@pytest.mark.parametrize("url", ["https://mapi.alipay.com/gateway.do",
                                 "http://10.1.2.3:8080/gateway.do",
                                 "http://127.0.0.1.nip.io/gateway.do",
                                 "http://localhost.example.com/gateway.do"])
def test_sandbox_mode_refuses_any_host_that_is_not_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        check_gateway_url(url, sandbox=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/gateway.do",
                                 "http://localhost:8080/gateway.do", "https://[::1]:8443/"])
def test_sandbox_mode_accepts_a_loopback_emulator(url: str) -> None:
    check_gateway_url(url, sandbox=True)


def test_sandbox_mode_needs_an_explicit_switch() -> None:
    settings = Settings.from_env({"ALIPAY_GATEWAY_URL": "http://127.0.0.1:8080/gateway.do",
                                  "UNSIGN_SANDBOX": "0"})

    with pytest.raises(ConfigError):
        check_gateway_url(settings.gateway_url, sandbox=settings.sandbox)


# --- certificate verification -----------------------------------------------------------------

def test_a_self_signed_gateway_is_refused_before_any_byte_of_the_request(
        self_signed: ScriptedServer) -> None:
    with pytest.raises(TransportError) as caught:
        client_for(self_signed.url).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is False
    assert "TLS failure: the gateway's certificate is not signed by a trusted CA" in str(
        caught.value)
    assert self_signed.requests == []


def test_an_explicit_ca_bundle_lets_the_same_gateway_through(
        self_signed: ScriptedServer, ca_file: str) -> None:
    raw = client_for(self_signed.url, ca_bundle=ca_file).post(PARAMS, charset="utf-8")

    assert (raw.status, raw.body) == (200, OK_BODY)


def test_a_trusted_certificate_for_another_host_name_is_refused(
        ca: trustme.CA, ca_file: str) -> None:
    with tls_server(ca, identity="mapi.alipay.com") as server:
        with pytest.raises(TransportError) as caught:
            client_for(server.url, ca_bundle=ca_file).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is False
    assert "certificate is for another IP address" in str(caught.value)
    assert server.requests == []


def test_neither_the_client_nor_the_settings_offer_a_switch_to_disable_verification() -> None:
    options = set(inspect.signature(GatewayClient).parameters)
    settings_fields = {f.name for f in dataclasses.fields(Settings)}

    assert not {o for o in options | settings_fields
                if "verify" in o or "insecure" in o or "ssl" in o or "tls" in o}
    with pytest.raises(TypeError):
        GatewayClient(gateway_url="https://mapi.alipay.com/gateway.do",  # type: ignore[call-arg]
                      connect_timeout_seconds=1, read_timeout_seconds=1, pool_size=1,
                      max_response_bytes=1, verify=False)


@pytest.mark.parametrize("value", ["", " ", "0", "false", "False", "no", "off", "none",
                                   "None", "disable", "/nonexistent/ca.pem"])
def test_odd_ca_bundle_values_never_turn_verification_off(
        self_signed: ScriptedServer, value: str) -> None:
    settings = Settings.from_env({"ALIPAY_CA_BUNDLE": value,
                                  "ALIPAY_GATEWAY_URL": self_signed.url})
    try:
        client = client_for(settings.gateway_url, ca_bundle=settings.ca_bundle)
    except ConfigError as exc:  # refused at startup, naming the variable
        assert "ALIPAY_CA_BUNDLE" in str(exc)
        return

    with pytest.raises(TransportError) as caught:  # or kept the default trust: fails closed
        client.post(PARAMS, charset="utf-8")
    assert caught.value.may_have_reached is False


@pytest.mark.parametrize("bundle", [False, 0])
def test_a_falsy_non_path_ca_bundle_is_refused_rather_than_read_as_off(bundle: object) -> None:
    with pytest.raises(ConfigError, match="ALIPAY_CA_BUNDLE"):
        client_for("https://mapi.alipay.com/gateway.do", ca_bundle=bundle)  # type: ignore[arg-type]


def test_a_ca_bundle_that_holds_no_certificate_is_refused_at_startup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")

    with pytest.raises(ConfigError, match="ALIPAY_CA_BUNDLE"):
        client_for("https://mapi.alipay.com/gateway.do", ca_bundle=str(junk))


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_environment_cannot_widen_or_disable_trust(
        self_signed: ScriptedServer, ca_file: str, variable: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the process environment points the usual TLS variables at the self-signed CA
    monkeypatch.setenv(variable, ca_file)
    monkeypatch.setenv("PYTHONHTTPSVERIFY", "0")

    # Then the client still trusts only its default bundle, and refuses the gateway
    with pytest.raises(TransportError) as caught:
        client_for(self_signed.url).post(PARAMS, charset="utf-8")
    assert caught.value.may_have_reached is False


def test_a_gateway_speaking_plain_http_on_an_https_url_is_refused(ca_file: str) -> None:
    with ScriptedServer(ok) as plain:
        url = plain.url.replace("http://", "https://")
        with pytest.raises(TransportError) as caught:
            client_for(url, ca_bundle=ca_file).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is False
