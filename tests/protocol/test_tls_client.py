"""The gateway client over real TLS: under gevent as the default worker runs it, the TLS failures
an operator meets named in words, and kept-alive connections that follow a DNS change.

The servers are real TLS servers on 127.0.0.1 (tests/plugins/scripted_http.py) with
certificates from ``trustme``, never the product's own CA code.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import trustme

from tests.plugins.scripted_http import Request, ScriptedServer, answer
from unsign_worker.protocol.exceptions import TransportError
from unsign_worker.protocol.gateway import GatewayClient

OK_BODY = b"<alipay><is_success>T</is_success></alipay>"
PARAMS = {"service": "customer_unsign", "customer_code": "C1", "sign": "s", "sign_type": "MD5"}
#: How long a child process may take to run its requests, seconds.
CHILD_SECONDS = 60


def ok(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
    sock.sendall(answer(200, OK_BODY))
    return True


def cut_after_request(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
    return False  # the request was read; the connection closes without a byte of answer


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture
def tls_ok(ca: trustme.CA) -> Iterator[ScriptedServer]:
    with ScriptedServer(ok, ssl_context=server_context(ca.issue_cert("localhost"))) as server:
        yield server


def localhost_url(server: ScriptedServer) -> str:
    return f"https://localhost:{server.port}/gateway.do"


def client_for(url: str, ca_bundle: str | None, **options: float) -> GatewayClient:
    return GatewayClient(gateway_url=url, connect_timeout_seconds=5.0, read_timeout_seconds=10.0,
                         pool_size=4, max_response_bytes=65536, ca_bundle=ca_bundle,
                         **options)  # type: ignore[arg-type]


# --- under gevent, as the default worker runs ----------------------------------------------

CHILD = r"""
import json, sys
mode, url, ca = sys.argv[1:4]
if mode == "patched-first":
    from gevent import monkey
    monkey.patch_all()
else:  # the worker command's own start: the package patches before anything imports ssl
    sys.argv = ["unsign-worker", "worker", "--pool", "gevent"]
    import unsign_worker.cli  # noqa: F401
from gevent import monkey
assert monkey.is_module_patched("ssl"), "ssl not patched"
import gevent
from unsign_worker.protocol.exceptions import TransportError
from unsign_worker.protocol.gateway import GatewayClient

client = GatewayClient(gateway_url=url, connect_timeout_seconds=5, read_timeout_seconds=10,
                       pool_size=4, max_response_bytes=65536, ca_bundle=ca)
params = {"service": "customer_unsign", "customer_code": "C1"}

def one():
    try:
        raw = client.post(params, charset="utf-8")
        return {"status": raw.status, "body": raw.body.decode()}
    except TransportError as exc:
        return {"error": str(exc), "may_have_reached": exc.may_have_reached}

results = []
for _ in range(3):  # rounds of 4 at once: the pool's 4 connections are reused
    jobs = [gevent.spawn(one) for _ in range(4)]
    gevent.joinall(jobs, raise_error=True)
    results += [job.value for job in jobs]
print(json.dumps(results))
"""


def run_child(mode: str, url: str, ca_file: str) -> tuple[list[dict[str, object]], str]:
    done = subprocess.run([sys.executable, "-W", "always", "-c", CHILD, mode, url, ca_file],
                          capture_output=True, text=True, timeout=CHILD_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("mode", ["patched-first", "worker-entry"])
def test_under_gevent_every_answer_is_read_over_reused_tls_connections(
        tls_ok: ScriptedServer, ca_file: str, mode: str) -> None:
    # Given a TLS gateway, and a gevent-patched process (patched first, or through the
    # worker command's start) with a pool of 4 connections
    # When it sends 3 rounds of 4 requests at once
    results, stderr = run_child(mode, localhost_url(tls_ok), ca_file)

    # Then every answer is read, over at most the pool's 4 connections, with no patch warning
    assert results == [{"status": 200, "body": OK_BODY.decode()}] * 12
    assert len(tls_ok.requests) == 12
    assert tls_ok.accepted <= 4
    assert "MonkeyPatchWarning" not in stderr


def test_under_gevent_an_answer_cut_after_the_request_may_have_reached_the_gateway(
        ca: trustme.CA, ca_file: str) -> None:
    context = server_context(ca.issue_cert("localhost"))
    with ScriptedServer(cut_after_request, ssl_context=context) as server:
        results, _ = run_child("worker-entry", localhost_url(server), ca_file)

    assert len(server.requests) == 12  # each request arrived whole before the cut
    assert all(r.get("may_have_reached") is True and "status" not in r for r in results), results


DRIP_CHILD = r"""
import json, sys
from gevent import monkey
monkey.patch_all()
from unsign_worker.protocol.exceptions import TransportError
from unsign_worker.protocol.gateway import GatewayClient

url, ca = sys.argv[1:3]
client = GatewayClient(gateway_url=url, connect_timeout_seconds=5, read_timeout_seconds=1,
                       total_timeout_seconds=1.5, pool_size=1, max_response_bytes=65536,
                       ca_bundle=ca)
try:
    client.post({"service": "customer_unsign", "customer_code": "C1"}, charset="utf-8")
    print(json.dumps({"answered": True}))
except TransportError as exc:
    print(json.dumps({"error": str(exc), "may_have_reached": exc.may_have_reached}))
"""


def drip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
    sock.sendall(answer(200, content_length=10_000))
    while not server.stopping.wait(0.05):  # a byte every 50 ms: each read is quick, the whole
        sock.sendall(b" ")                 # answer never ends
    return False


def test_under_gevent_over_tls_a_dripping_answer_is_cut_by_the_total_deadline(
        ca: trustme.CA, ca_file: str) -> None:
    context = server_context(ca.issue_cert("localhost"))
    with ScriptedServer(drip, ssl_context=context) as server:
        done = subprocess.run([sys.executable, "-c", DRIP_CHILD, localhost_url(server), ca_file],
                              capture_output=True, text=True, timeout=CHILD_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"error": "no complete answer within the total deadline of 1.5s",
                      "may_have_reached": True}


# --- TLS failures, named -------------------------------------------------------------------

def failure_of(server: ScriptedServer, ca_bundle: str | None) -> TransportError:
    with pytest.raises(TransportError) as caught:
        client_for(localhost_url(server), ca_bundle).post(PARAMS, charset="utf-8")
    assert server.requests == []  # refused before any byte of the request
    assert caught.value.may_have_reached is False
    return caught.value


def test_an_expired_certificate_is_named(ca: trustme.CA, ca_file: str) -> None:
    expired = ca.issue_cert("localhost", not_after=datetime.datetime(2020, 1, 1,
                                                                     tzinfo=datetime.UTC))
    with ScriptedServer(ok, ssl_context=server_context(expired)) as server:
        error = failure_of(server, ca_file)
    assert str(error) == "TLS failure: the gateway's certificate has expired"


def test_a_certificate_for_another_host_name_is_named(ca: trustme.CA, ca_file: str) -> None:
    other = ca.issue_cert("mapi.alipay.com")
    with ScriptedServer(ok, ssl_context=server_context(other)) as server:
        error = failure_of(server, ca_file)
    assert str(error) == "TLS failure: the gateway's certificate is for another host name"


def test_a_certificate_from_an_untrusted_ca_is_named(ca_file: str) -> None:
    stranger = trustme.CA().issue_cert("localhost")
    with ScriptedServer(ok, ssl_context=server_context(stranger)) as server:
        error = failure_of(server, ca_file)
    assert str(error).startswith("TLS failure: the gateway's certificate is not signed by a "
                                 "trusted CA")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_a_server_offering_only_tls_1_0_and_1_1_is_named(ca: trustme.CA, ca_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL 3 speak TLS 1.0/1.1 at all
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    ca.issue_cert("localhost").configure_cert(context)
    with ScriptedServer(ok, ssl_context=context) as server:
        error = failure_of(server, ca_file)
    assert str(error).startswith("TLS failure: the gateway offers only an outdated TLS version")


# --- kept-alive connections follow DNS -----------------------------------------------------

@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """``gateway.test`` resolves to 127.0.0.1 at the port in ``dns['port']`` (changeable)."""
    answers: dict[str, int] = {"port": 0, "lookups": 0}
    real = socket.getaddrinfo

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host == "gateway.test":
            answers["lookups"] += 1
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", answers["port"]))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


#: How long the test lets the kept-alive connection age, seconds.
AGED_SECONDS = 0.1


@pytest.mark.parametrize(("max_age", "moves"), [(0.05, True), (0.0, False), (600.0, False)])
def test_a_kept_alive_connection_older_than_its_maximum_age_follows_a_dns_change(
        ca: trustme.CA, ca_file: str, dns: dict[str, int], max_age: float, moves: bool) -> None:
    context = server_context(ca.issue_cert("gateway.test"))
    with ScriptedServer(ok, ssl_context=context) as old, \
            ScriptedServer(ok, ssl_context=context) as new:
        # Given the gateway's name resolves to the old address, and a connection kept alive
        dns["port"] = old.port
        client = client_for(f"https://gateway.test:{old.port}/gateway.do", ca_file,
                            max_connection_age_seconds=max_age)
        client.post(PARAMS, charset="utf-8")
        client.post(PARAMS, charset="utf-8")
        assert (old.accepted, len(old.requests), dns["lookups"]) == (1, 2, 1)

        # When the name moves to the new address and the connection is older than max_age
        dns["port"] = new.port
        time.sleep(AGED_SECONDS)  # an age is a duration: waiting past 0.05 s is the condition
        client.post(PARAMS, charset="utf-8")
        client.close()

    # Then it reconnects through a new lookup (or, without a maximum age, stays where it was)
    assert (len(new.requests), len(old.requests)) == ((1, 2) if moves else (0, 3))
    assert dns["lookups"] == (2 if moves else 1)


def test_without_a_bundle_the_client_and_the_probe_trust_certifis_public_cas(
        ca_file: str) -> None:
    import certifi

    from unsign_worker.protocol.gateway import trust_store

    assert trust_store(None) == trust_store("  ") == certifi.where()
    assert trust_store(ca_file) == ca_file
