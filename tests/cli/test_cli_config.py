"""``unsign-worker check-config`` and ``unsign-worker sign``, in-process and as a real process."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from tests.plugins.ports import free_port
from unsign_worker.cli.main import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from unsign_worker.ops.config_checks import redis_health

KEY = "0123456789abcdefghijklmnopqrstuv"
PARTNER = "2088101568338364"
SECRET_MARKERS = (KEY, "PRIVATE KEY", "hunter2")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> pytest.MonkeyPatch:
    """A clean configuration: valid MD5 settings, the test Redis, no .env file around."""
    for name in list(os.environ):
        if name.startswith(("ALIPAY_", "UNSIGN_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIPAY_PARTNER", PARTNER)
    monkeypatch.setenv("ALIPAY_KEY", KEY)
    monkeypatch.setenv("UNSIGN_REDIS_URL", redis_url)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    for marker in SECRET_MARKERS:
        assert marker not in out and marker not in err, "a secret was printed"
    return code, out, err


def lines_marked(out: str, mark: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(mark + " ")]


def pem_files(tmp_path: Path, private: Any, public: Any) -> tuple[Path, Path]:
    private_file, public_file = tmp_path / "merchant.pem", tmp_path / "alipay.pub"
    private_file.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    public_file.write_bytes(public.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_file, public_file


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The merchant's key and Alipay's key."""
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


# --- check-config: all well ------------------------------------------------------------------


def test_check_config_passes_and_explains_each_item_when_all_is_well(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_OK
    assert lines_marked(out, "✗") == []
    for name in ("ALIPAY_PARTNER", "ALIPAY_SIGN_TYPE", "ALIPAY_KEY", "ALIPAY_INPUT_CHARSET",
                 "ALIPAY_GATEWAY_URL", "UNSIGN_REDIS_URL"):
        assert any(line.startswith(f"✓ {name}:") for line in out.splitlines()), name
    assert "2088********8364" in out and PARTNER not in out  # the partner ID stays private
    assert "configuration OK: 0 error(s)" in out


def test_check_config_json_reports_every_check(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check-config", "--json")
    report = json.loads(out)
    assert code == EXIT_OK and report["ok"] is True and report["errors"] == 0
    assert {c["status"] for c in report["checks"]} <= {"ok", "warning"}
    assert {"ALIPAY_PARTNER", "ALIPAY_KEY", "UNSIGN_REDIS_URL"} <= {c["name"]
                                                                    for c in report["checks"]}


def test_check_config_accepts_an_rsa_setup_with_both_pem_files(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    private_file, public_file = pem_files(tmp_path, *rsa_keys)
    env.setenv("ALIPAY_SIGN_TYPE", "RSA")
    env.setenv("ALIPAY_PRIVATE_KEY_FILE", str(private_file))
    env.setenv("ALIPAY_PUBLIC_KEY_FILE", str(public_file))
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_OK, out
    assert "✓ ALIPAY_PRIVATE_KEY_FILE: loads as a RSA private key" in out
    assert "✓ ALIPAY_PUBLIC_KEY_FILE: loads as a RSA public key" in out


# --- check-config: each bad setting ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param({"ALIPAY_PARTNER": ""}, "✗ ALIPAY_PARTNER: not set", id="no partner"),
        pytest.param({"ALIPAY_PARTNER": "1088101568338364"},
                     "✗ ALIPAY_PARTNER: must be 16 digits starting with 2088 (got 16 characters",
                     id="a partner not starting with 2088"),
        pytest.param({"ALIPAY_KEY": ""}, "✗ ALIPAY_KEY: not set", id="no MD5 key"),
        pytest.param({"ALIPAY_KEY": KEY[:-1]},
                     "✗ ALIPAY_KEY: must be 32 letters and digits (got 31 characters)",
                     id="an MD5 key one character short"),
        pytest.param({"ALIPAY_KEY": KEY[:-1] + "-"},
                     "✗ ALIPAY_KEY: must be 32 letters and digits (got 32 characters, some of "
                     "them neither", id="an MD5 key with punctuation"),
        pytest.param({"ALIPAY_SIGN_TYPE": "md5"},
                     "✗ ALIPAY_SIGN_TYPE: 'md5' is not one of MD5, RSA, DSA (upper case",
                     id="a lower-case sign type"),
        pytest.param({"ALIPAY_SIGN_TYPE": "RSA"},
                     "✗ ALIPAY_PRIVATE_KEY_FILE: not set: RSA signing needs",
                     id="RSA without a private key"),
        pytest.param({"ALIPAY_SIGN_TYPE": "DSA"},
                     "✗ ALIPAY_PUBLIC_KEY_FILE: not set: Alipay's DSA public key is needed",
                     id="DSA without Alipay's public key"),
        pytest.param({"ALIPAY_INPUT_CHARSET": "latin1"},
                     "✗ ALIPAY_INPUT_CHARSET: 'latin1' is not one of utf-8, gbk, gb2312",
                     id="an unknown charset"),
        pytest.param({"ALIPAY_GATEWAY_URL": "http://mapi.alipay.com/gateway.do"},
                     "✗ ALIPAY_GATEWAY_URL: only https:// is allowed outside sandbox",
                     id="plain http in production"),
        pytest.param({"ALIPAY_GATEWAY_URL": "https://110.75.143.17/gateway.do"},
                     "✗ ALIPAY_GATEWAY_URL: give the gateway's host name, not an IP literal",
                     id="a pinned IP in production"),
        pytest.param({"UNSIGN_SANDBOX": "1"},
                     "✗ ALIPAY_GATEWAY_URL: sandbox mode only talks to a loopback gateway",
                     id="sandbox mode aimed at Alipay"),
        pytest.param({"ALIPAY_CA_BUNDLE": "/nonexistent/ca.pem"},
                     "✗ ALIPAY_CA_BUNDLE: cannot load '/nonexistent/ca.pem'",
                     id="a missing CA bundle"),
        pytest.param({"ALIPAY_KEY": "", "ALIPAY_KEY_FILE": "/nonexistent/key"},
                     "✗ settings: ALIPAY_KEY_FILE: cannot read '/nonexistent/key'",
                     id="an unreadable key file"),
        pytest.param({"ALIPAY_TEST_PARTNERS": f"2088000000000001,{PARTNER}"},
                     "✗ ALIPAY_TEST_PARTNERS: WARNING: TEST ACCOUNT IN USE OUTSIDE SANDBOX MODE. "
                     "Test accounts are charged 3% fees", id="a test partner in production"),
    ],
)
def test_check_config_names_each_bad_setting_and_fails(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variables: dict[str, str],
    expected: str,
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR
    assert expected in out, out
    assert "configuration NOT OK" in out


def test_a_private_key_of_the_wrong_kind_is_reported(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    _, public_file = pem_files(tmp_path, *rsa_keys)
    dsa_file = tmp_path / "dsa.pem"
    dsa_file.write_bytes(dsa.generate_private_key(key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    env.setenv("ALIPAY_SIGN_TYPE", "RSA")
    env.setenv("ALIPAY_PRIVATE_KEY_FILE", str(dsa_file))
    env.setenv("ALIPAY_PUBLIC_KEY_FILE", str(public_file))
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR
    assert ("✗ ALIPAY_PRIVATE_KEY_FILE: the key is not a RSA key, but ALIPAY_SIGN_TYPE is RSA"
            in out)


def test_using_your_own_public_key_as_alipays_is_a_warning(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    mine = rsa_keys[0]
    private_file, public_file = pem_files(tmp_path, mine, mine)
    env.setenv("ALIPAY_SIGN_TYPE", "RSA")
    env.setenv("ALIPAY_PRIVATE_KEY_FILE", str(private_file))
    env.setenv("ALIPAY_PUBLIC_KEY_FILE", str(public_file))
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_OK
    assert "! ALIPAY_PUBLIC_KEY_FILE: is the public half of your own private key" in out


def test_a_test_partner_is_fine_in_sandbox_mode(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("ALIPAY_TEST_PARTNERS", PARTNER)
    env.setenv("UNSIGN_SANDBOX", "1")
    env.setenv("ALIPAY_GATEWAY_URL", "http://127.0.0.1:8080/gateway.do")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_OK, out
    assert "✓ ALIPAY_TEST_PARTNERS: the partner is a test account; fine in sandbox mode" in out
    assert "✓ ALIPAY_GATEWAY_URL: http://127.0.0.1:8080/gateway.do (sandbox mode" in out


def test_a_gateway_other_than_alipays_is_a_warning_in_production(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("ALIPAY_GATEWAY_URL", "https://gateway.example.com/gateway.do")
    env.setenv("ALIPAY_GATEWAY_ALLOWED_HOSTS", "gateway.example.com")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_OK
    assert "! ALIPAY_GATEWAY_URL: https://gateway.example.com/gateway.do is not Alipay's" in out
    assert "allowed by ALIPAY_GATEWAY_ALLOWED_HOSTS" in out


def test_a_gateway_other_than_alipays_not_named_in_the_allowed_hosts_fails(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("ALIPAY_GATEWAY_URL", "https://gateway.example.com/gateway.do")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR
    assert ("✗ ALIPAY_GATEWAY_URL: 'gateway.example.com' is not Alipay's gateway "
            "(mapi.alipay.com)") in out
    assert "must be named in ALIPAY_GATEWAY_ALLOWED_HOSTS" in out


def test_an_unreachable_redis_fails_without_showing_its_password(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env.setenv("UNSIGN_REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR
    assert f"✗ UNSIGN_REDIS_URL: redis://:********@127.0.0.1:{port}/0 does not answer PING" in out


def _path_with(tmp_path: Path, *programs: str) -> str:
    """A PATH of one folder holding stand-in executables of these names (and nothing else)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for program in programs:
        (folder / program).write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        (folder / program).chmod(0o755)
    return str(folder)


def test_a_local_redis_that_is_not_running_gets_how_to_start_the_installed_redis_server(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given redis-server on PATH and a loopback URL where nothing listens
    bin_dir = _path_with(tmp_path, "redis-server")
    env.setenv("PATH", bin_dir)
    port = free_port()
    env.setenv("UNSIGN_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    # When check-config runs
    code, out, _ = run(capsys, "check-config")
    # Then the failed PING is followed by one line saying how to start it on that port
    assert code == EXIT_ERROR
    lines = out.splitlines()
    failed = lines.index(next(line for line in lines if "does not answer PING" in line))
    assert lines[failed + 1] == (f"  → {bin_dir}/redis-server is installed but not running on "
                                 f"port {port}: start it with `redis-server --daemonize yes "
                                 f"--port {port}`")
    assert "apt-get" not in out


def test_a_local_redis_that_is_not_installed_gets_how_to_install_it(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a PATH without redis-server and a loopback URL where nothing listens
    env.setenv("PATH", _path_with(tmp_path))
    port = free_port()
    env.setenv("UNSIGN_REDIS_URL", f"redis://localhost:{port}/0")
    # When check-config runs, as JSON too
    code, out, _ = run(capsys, "check-config")
    _, as_json, _ = run(capsys, "check-config", "--json")
    # Then it says how to install redis-server, then how to start it
    assert code == EXIT_ERROR
    advice = ("  → redis-server is not installed (not on PATH): `sudo apt-get install "
              "redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), then "
              f"`redis-server --daemonize yes --port {port}`; or set UNSIGN_REDIS_URL to a "
              "Redis that runs")
    assert advice in out.splitlines()
    redis_check = next(c for c in json.loads(as_json)["checks"] if c["status"] == "error")
    assert redis_check["advice"] == advice.removeprefix("  → ")


def test_a_redis_that_answers_but_refuses_or_is_remote_gets_no_install_advice(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, redis_url: str
) -> None:
    # Given the running test Redis asked with a password it does not have, and no redis-server
    env.setenv("PATH", _path_with(tmp_path))
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    env.setenv("UNSIGN_REDIS_URL", f"redis://nobody:hunter2@{host_port}/0")
    code, out, _ = run(capsys, "check-config")
    # Then PING fails, but installing or starting redis-server would not help: no advice
    assert code == EXIT_ERROR
    assert "does not answer PING" in out and "→" not in out
    # And a Redis on another host gets none either (this machine cannot start it)
    env.setenv("UNSIGN_REDIS_URL", "redis://redis.invalid:6379/0")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR and "does not answer PING" in out and "→" not in out


def test_a_separate_broker_url_is_checked_too(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env.setenv("UNSIGN_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    code, out, _ = run(capsys, "check-config")
    assert code == EXIT_ERROR
    assert f"✗ UNSIGN_BROKER_URL: redis://127.0.0.1:{port}/0 does not answer PING" in out


# --- Redis health, with stand-ins for the server's CONFIG answers --------------------------


class StubRedis:
    def __init__(self, config: dict[str, str] | None) -> None:
        self.config = config

    def config_get(self, parameter: str) -> dict[str, str]:
        if self.config is None:
            raise redis.ResponseError("unknown command 'CONFIG'")
        return {parameter: self.config.get(parameter, "everysec")}


def statuses(config: dict[str, str] | None) -> list[tuple[str, str]]:
    return [(c.status, c.message) for c in redis_health(StubRedis(config), name="R")]


def test_an_evicting_redis_is_a_warning() -> None:
    result = statuses({"maxmemory-policy": "allkeys-lru", "appendonly": "yes", "save": ""})
    assert result[0][0] == "warning" and "allkeys-lru" in result[0][1]
    assert result[1] == ("ok", "persistence: AOF on")


def test_a_redis_without_persistence_is_a_warning() -> None:
    result = statuses({"maxmemory-policy": "noeviction", "appendonly": "no", "save": ""})
    assert result[0] == ("ok", "maxmemory-policy is noeviction")
    assert result[1][0] == "warning" and "no persistence" in result[1][1]


def test_rdb_snapshots_alone_are_a_warning() -> None:
    # a restart loses the writes since the last snapshot: hook marks included
    result = statuses({"maxmemory-policy": "noeviction", "appendonly": "no", "save": "3600 1"})
    assert result[1][0] == "warning" and "RDB snapshots only (save 3600 1)" in result[1][1]


def test_appendfsync_no_is_a_warning() -> None:
    result = statuses({"maxmemory-policy": "noeviction", "appendonly": "yes", "save": "",
                       "appendfsync": "no"})
    assert result[1][0] == "warning" and "appendfsync no" in result[1][1]
    for fsync in ("everysec", "always"):
        result = statuses({"maxmemory-policy": "noeviction", "appendonly": "yes", "save": "",
                           "appendfsync": fsync})
        assert result[1] == ("ok", "persistence: AOF on")


def test_a_disabled_config_command_is_tolerated_with_a_warning() -> None:
    [(status, message)] = statuses(None)
    assert status == "warning" and "CONFIG GET is not allowed" in message


# --- check-config --probe ------------------------------------------------------------------


class TlsServer:
    """A TLS server on 127.0.0.1 that records, per connection, the bytes a client sent."""

    def __init__(self, ca: trustme.CA, context: ssl.SSLContext | None = None) -> None:
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost").configure_cert(context)
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.received: queue.Queue[bytes | str] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            conn.settimeout(10)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    data = b""
                    while chunk := tls.recv(4096):
                        data += chunk
                self.received.put(data)
            except (ssl.SSLError, OSError) as exc:
                self.received.put(f"handshake failed: {type(exc).__name__}")

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    """A TLS server whose certificate (for ``localhost``) only a private CA vouches for."""
    ca = trustme.CA()
    server = TlsServer(ca)
    bundle = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield server, bundle
    finally:
        server.close()


def test_probe_fails_closed_on_a_certificate_the_system_does_not_trust(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tls_server: tuple[TlsServer, Path],
) -> None:
    server, _ = tls_server
    env.setenv("ALIPAY_GATEWAY_URL", f"https://localhost:{server.port}/gateway.do")
    env.setenv("ALIPAY_GATEWAY_ALLOWED_HOSTS", "localhost")
    code, out, _ = run(capsys, "check-config", "--probe")
    assert code == EXIT_ERROR
    assert "✓ probe DNS: localhost resolves to 127.0.0.1" in out
    assert f"✗ probe TLS: the certificate of localhost:{server.port} does not verify" in out
    assert "handshake failed" in str(server.received.get(timeout=30))


def test_probe_completes_the_handshake_with_the_ca_bundle_and_sends_nothing(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tls_server: tuple[TlsServer, Path],
) -> None:
    server, bundle = tls_server
    env.setenv("ALIPAY_GATEWAY_URL", f"https://localhost:{server.port}/gateway.do")
    env.setenv("ALIPAY_GATEWAY_ALLOWED_HOSTS", "localhost")
    env.setenv("ALIPAY_CA_BUNDLE", str(bundle))
    code, out, _ = run(capsys, "check-config", "--probe")
    assert code == EXIT_OK, out
    assert f"✓ probe TLS: handshake with localhost:{server.port} completed" in out
    assert "certificate verified by ALIPAY_CA_BUNDLE" in out
    # the server saw a full handshake, then the connection closed without a single byte of request
    assert server.received.get(timeout=30) == b""


def _legacy_only(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL 3 speak TLS 1.0/1.1 at all
    with warnings.catch_warnings():  # the test's server is deliberately outdated
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    ca.issue_cert("localhost").configure_cert(context)
    return context


def _serving(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.mark.parametrize(("make_context", "words"), [
    (lambda ca: _serving(ca.issue_cert("localhost", not_after=datetime.datetime(
        2020, 1, 1, tzinfo=datetime.UTC))), "the gateway's certificate has expired"),
    (lambda ca: _serving(ca.issue_cert("mapi.alipay.com")),
     "the gateway's certificate is for another host name"),
    (lambda ca: _serving(trustme.CA().issue_cert("localhost")),
     "the gateway's certificate is not signed by a trusted CA"),
    (_legacy_only, "the gateway offers only an outdated TLS version (TLS 1.2 or newer is "
                   "required"),
], ids=["expired", "other-host", "untrusted-ca", "tls-1.0-1.1-only"])
def test_probe_names_each_tls_failure_in_words_an_operator_understands(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    make_context: Any, words: str,
) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = TlsServer(ca, make_context(ca))
    try:
        env.setenv("ALIPAY_GATEWAY_URL", f"https://localhost:{server.port}/gateway.do")
        env.setenv("ALIPAY_GATEWAY_ALLOWED_HOSTS", "localhost")
        env.setenv("ALIPAY_CA_BUNDLE", str(bundle))
        code, out, _ = run(capsys, "check-config", "--probe")
    finally:
        server.close()
    assert code == EXIT_ERROR
    assert "✗ probe TLS: " in out and words in out, out


def test_probe_of_a_sandbox_http_gateway_connects_over_tcp(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        env.setenv("UNSIGN_SANDBOX", "1")
        env.setenv("ALIPAY_GATEWAY_URL", f"http://127.0.0.1:{port}/gateway.do")
        code, out, _ = run(capsys, "check-config", "--probe")
    assert code == EXIT_OK, out
    assert f"✓ probe TCP: connected to 127.0.0.1:{port}" in out


def test_probe_of_a_gateway_that_is_not_listening_fails(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env.setenv("ALIPAY_GATEWAY_URL", f"https://localhost:{port}/gateway.do")
    env.setenv("ALIPAY_GATEWAY_ALLOWED_HOSTS", "localhost")
    code, out, _ = run(capsys, "check-config", "--probe")
    assert code == EXIT_ERROR
    assert f"✗ probe TLS: no TLS handshake with localhost:{port}" in out


def test_probe_is_skipped_when_the_gateway_url_is_not_allowed(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("ALIPAY_GATEWAY_URL", "http://localhost:1/gateway.do")
    code, out, _ = run(capsys, "check-config", "--probe")
    assert code == EXIT_ERROR
    assert "✗ probe: skipped: ALIPAY_GATEWAY_URL is not allowed" in out


# --- sign ------------------------------------------------------------------------------------


def signed(out: str) -> dict[str, str]:
    result = json.loads(out)
    assert set(result) == {"string_to_sign", "sign", "sign_type"}
    return dict(result)


def test_sign_fills_in_service_partner_and_charset_and_signs_with_the_key(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sign", "customer_code=118400000013")
    expected = ("_input_charset=utf-8&customer_code=118400000013&partner=2088101568338364"
                "&service=customer_unsign")
    assert code == EXIT_OK
    assert signed(out) == {"string_to_sign": expected, "sign_type": "MD5",
                           "sign": hashlib.md5((expected + KEY).encode()).hexdigest()}


def test_sign_in_gbk_takes_raw_chinese_values_with_special_characters(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sign", "--charset", "gbk", "biz_type=10004",
                       "user_email=张三 a&b=c%20@例子.com")
    expected = ("_input_charset=gbk&biz_type=10004&partner=2088101568338364"
                "&service=customer_unsign&user_email=张三 a&b=c%20@例子.com")
    assert code == EXIT_OK
    result = signed(out)
    assert result["string_to_sign"] == expected
    assert result["sign"] == hashlib.md5((expected + KEY).encode("gbk")).hexdigest()


def test_given_parameters_override_the_settings(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sign", "service=query_customer_protocol",
                       "partner=2088000000000001", "_input_charset=GBK", "user_email=a@b.com")
    expected = ("_input_charset=GBK&partner=2088000000000001&service=query_customer_protocol"
                "&user_email=a@b.com")
    assert code == EXIT_OK and signed(out)["string_to_sign"] == expected


def test_sign_drops_empty_values_and_says_so(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "sign", "customer_code=1", "type_code=")
    assert code == EXIT_OK and "type_code" not in signed(out)["string_to_sign"]
    assert "note: type_code is empty, so it is neither sent nor signed" in err


def test_sign_with_rsa_produces_a_signature_the_public_key_verifies(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    private_file, _ = pem_files(tmp_path, *rsa_keys)
    env.setenv("ALIPAY_PRIVATE_KEY_FILE", str(private_file))
    code, out, _ = run(capsys, "sign", "--sign-type", "RSA", "customer_code=1")
    result = signed(out)
    assert code == EXIT_OK and result["sign_type"] == "RSA"
    rsa_keys[0].public_key().verify(base64.b64decode(result["sign"]),
                                    result["string_to_sign"].encode(), padding.PKCS1v15(),
                                    hashes.SHA1())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["foo"], "argument 1 ('foo'): expected name=value", id="no equals sign"),
        pytest.param(["customer_code=1", "=x"], "argument 2 ('=x'): '' is not a parameter name",
                     id="an empty name"),
        pytest.param(["a=1", "a=2"], "argument 2 ('a=2'): a is given twice", id="a duplicate"),
        pytest.param(["sign=abc"], "sign never enters the string to sign", id="sign"),
        pytest.param(["sign_type=MD5"], "never enters the string to sign; use --sign-type",
                     id="sign_type"),
        pytest.param(["--sign-type", "md5", "a=1"], "'md5' is not one of MD5, RSA, DSA",
                     id="a lower-case sign type"),
        pytest.param(["--charset", "latin1", "a=1"], "--charset: 'latin1' is not one of",
                     id="an unknown charset"),
        pytest.param(["--charset", "utf-8", "_input_charset=gbk"],
                     "--charset utf-8 and _input_charset=gbk disagree", id="charsets disagree"),
    ],
)
def test_sign_refuses_bad_arguments_with_a_usage_error(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "sign", *argv)
    assert code == EXIT_USAGE and out == ""
    assert message in err


@pytest.mark.parametrize(
    ("variables", "argv", "message"),
    [
        pytest.param({"ALIPAY_KEY": ""}, ["a=1"],
                     "ALIPAY_KEY (or ALIPAY_KEY_FILE) is not set: cannot sign with MD5",
                     id="no MD5 key"),
        pytest.param({}, ["--sign-type", "DSA", "a=1"],
                     "ALIPAY_PRIVATE_KEY_FILE is not set: cannot sign with DSA",
                     id="no private key"),
        pytest.param({"ALIPAY_PARTNER": ""}, ["a=1"],
                     "partner: not given, and ALIPAY_PARTNER is not set", id="no partner"),
        pytest.param({}, ["--charset", "gbk", "user_email=a\U0001f600@b.com"],
                     "user_email: '\U0001f600' cannot be encoded in gbk", id="an emoji in gbk"),
        pytest.param({"UNSIGN_CONNECT_TIMEOUT": "soon"}, ["a=1"],
                     "UNSIGN_CONNECT_TIMEOUT: 'soon' is not a number", id="broken settings"),
    ],
)
def test_sign_fails_clearly_when_it_cannot_sign(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variables: dict[str, str],
    argv: list[str], message: str,
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    code, out, err = run(capsys, "sign", *argv)
    assert code == EXIT_ERROR and out == ""
    assert message in err


def test_sign_notes_a_partner_the_gateway_will_refuse(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "sign", "partner=12345", "customer_code=1")
    assert code == EXIT_OK and "ILLEGAL_PARTNER" in err


# --- as a real process -----------------------------------------------------------------------


def cli_path() -> Path:
    path = Path(sys.executable).with_name("unsign-worker")
    assert path.exists(), f"{path} missing: install the project into the virtualenv"
    return path


def process_env(redis_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    return {**clean, "ALIPAY_PARTNER": PARTNER, "ALIPAY_KEY": KEY, "UNSIGN_REDIS_URL": redis_url}


@pytest.mark.slow
def test_the_installed_command_signs_and_checks_as_a_real_process(
    tmp_path: Path, redis_url: str
) -> None:
    signed_run = subprocess.run([str(cli_path()), "sign", "customer_code=118400000013"],
                                cwd=tmp_path, env=process_env(redis_url), capture_output=True,
                                text=True, timeout=120)
    assert signed_run.returncode == EXIT_OK, signed_run.stderr
    expected = ("_input_charset=utf-8&customer_code=118400000013&partner=2088101568338364"
                "&service=customer_unsign")
    assert signed(signed_run.stdout)["sign"] == hashlib.md5((expected + KEY).encode()).hexdigest()

    checked = subprocess.run([str(cli_path()), "check-config"], cwd=tmp_path,
                             env=process_env(redis_url), capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == EXIT_OK, checked.stdout + checked.stderr
    assert KEY not in checked.stdout and "configuration OK" in checked.stdout

    broken = subprocess.run([str(cli_path()), "check-config"], cwd=tmp_path,
                            env={**process_env(redis_url), "ALIPAY_KEY": "short"},
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == EXIT_ERROR
    assert "✗ ALIPAY_KEY: must be 32 letters and digits (got 5 characters)" in broken.stdout
