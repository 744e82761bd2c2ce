"""The gateway client against real HTTP servers on 127.0.0.1: wire format, failure
classification (did the request possibly reach the gateway?), limits, and connection reuse."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.plugins.ports import free_port
from tests.plugins.scripted_http import Request, ScriptedServer, answer, reset
from unsign_worker.protocol.exceptions import ConfigError, TransportError, ValidationError
from unsign_worker.protocol.gateway import GatewayClient, encode_form

OK_BODY = b'<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success></alipay>'
PARAMS = {
    "service": "customer_unsign",
    "partner": "2088101122136241",
    "customer_code": "C0000001",
    "user_email": "maoamo@alipay.com",
    "type_code": "a&b=c %d+e",
    "biz_type": "中文签约",
    "sign": "SIGNATURE-VALUE-0123456789abcdef",
    "sign_type": "MD5",
}
#: Generous bound for "the call ended at all" where the hostile server would go on for minutes.
FINISHED_AT_ALL_SECONDS = 45.0


def make_client(url: str, **overrides: object) -> GatewayClient:
    options: dict[str, object] = dict(gateway_url=url, connect_timeout_seconds=5.0,
                                      read_timeout_seconds=10.0, pool_size=4,
                                      max_response_bytes=64 * 1024)
    options.update(overrides)
    return GatewayClient(**options)  # type: ignore[arg-type]


def ok(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
    sock.sendall(answer(200, OK_BODY))
    return True


@pytest.fixture
def ok_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(ok) as server:
        yield server


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_the_form_arrives_encoded_in_the_charset_named_in_the_query_string(
        ok_server: ScriptedServer, charset: str) -> None:
    client = make_client(ok_server.url)
    params = dict(PARAMS, _input_charset=charset)

    raw = client.post(params, charset=charset)

    assert (raw.status, raw.body) == (200, OK_BODY)
    assert raw.elapsed_seconds >= 0
    (request,) = ok_server.requests
    assert request.method == "POST"
    assert request.target == f"/gateway.do?_input_charset={charset}"
    assert request.headers["content-type"] == (
        f"application/x-www-form-urlencoded; charset={charset}")
    assert request.form(charset) == params
    assert "中文".encode(charset).hex().upper() in request.body.decode("ascii").replace("%", "")
    client.close()


def test_a_value_the_charset_cannot_encode_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        encode_form({"partner": "2088101122136241", "user_email": "🙂@example.com"}, "gbk")

    assert [(e.field, e.rule) for e in caught.value.errors] == [("user_email", "charset")]


def test_a_refused_connection_never_reached_the_gateway() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/gateway.do")

    with pytest.raises(TransportError) as caught:
        client.post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is False
    assert "refused" in str(caught.value)
    assert caught.value.network is True  # no answer: counts towards "unreachable from here"


def test_a_reset_after_the_request_was_sent_may_have_reached_the_gateway() -> None:
    def rst(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        reset(sock)
        return False

    with ScriptedServer(rst) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is True
    assert len(server.requests) == 1
    assert caught.value.network is True


def test_a_read_timeout_may_have_reached_the_gateway() -> None:
    def hold(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        server.stopping.wait()
        return False

    with ScriptedServer(hold) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url, read_timeout_seconds=0.5).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is True
    assert "timeout" in str(caught.value)
    assert caught.value.network is True


def test_an_exchange_given_up_from_another_thread_fails_at_once_as_a_network_fault() -> None:
    # Given a request whose answer never comes (read timeout 30 s)
    def hold(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        server.stopping.wait()
        return False

    with ScriptedServer(hold) as server, ThreadPoolExecutor(1) as pool:
        client = make_client(server.url, read_timeout_seconds=30)
        pending = pool.submit(client.post, PARAMS, charset="utf-8")
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        # When the worker gives up on what is in flight (the gateway found unreachable)
        started = time.monotonic()
        assert client.abort_in_flight() == 1
        # Then the request fails now, not at its timeout, as a network fault that may have
        # reached the gateway
        with pytest.raises(TransportError) as caught:
            pending.result(timeout=10)
        assert time.monotonic() - started < 10
    assert caught.value.network is True and caught.value.may_have_reached is True
    assert "unreachable from this worker" in str(caught.value)
    assert client.abort_in_flight() == 0  # nothing left in flight


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_a_transport_error_carrying_the_status(status: int) -> None:
    def fail(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(status, b"<html>busy</html>"))
        return True

    with ScriptedServer(fail) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert caught.value.http_status == status
    assert caught.value.may_have_reached is True
    assert caught.value.network is False  # an answer: the gateway is reachable


@pytest.mark.parametrize("status", [302, 404])
def test_a_redirect_or_client_error_is_not_followed_and_is_a_transport_error(
        status: int) -> None:
    def other(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(status, b"", headers={"Location": "https://phish.example/"}))
        return True

    with ScriptedServer(other) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert caught.value.http_status == status
    assert len(server.requests) == 1


def test_a_body_shorter_than_its_content_length_is_a_truncated_answer() -> None:
    def truncate(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, OK_BODY[:20], content_length=len(OK_BODY)))
        return False

    with ScriptedServer(truncate) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is True
    assert caught.value.http_status == 200
    assert "IncompleteRead" in str(caught.value)


def test_a_chunked_body_cut_mid_chunk_is_a_truncated_answer() -> None:
    def truncate(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        head = answer(200, headers={"Transfer-Encoding": "chunked"})
        sock.sendall(head + b"400\r\n" + OK_BODY[:30])
        return False

    with ScriptedServer(truncate) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert caught.value.may_have_reached is True


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_oversized_body_is_refused_without_reading_it_all(declared: bool) -> None:
    block = b"x" * (1 << 20)
    sent: list[int] = []

    def flood(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        size = 50 * len(block)
        head = answer(200, content_length=size if declared else None, close=True)
        if not declared:
            head = head.replace(b"Content-Length: 0\r\n", b"")
        sock.sendall(head)
        for _ in range(50):
            sock.sendall(block)
            sent.append(len(block))
        return False

    with ScriptedServer(flood) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert "exceeds" in str(caught.value)
    assert caught.value.may_have_reached is True
    assert sum(sent) < 50 * len(block)  # the client hung up long before the end


def test_a_compressed_answer_is_refused_rather_than_expanded() -> None:
    def gzip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, b"\x1f\x8b" + b"\x00" * 40,
                            headers={"Content-Encoding": "gzip"}))
        return True

    with ScriptedServer(gzip) as server:
        with pytest.raises(TransportError) as caught:
            make_client(server.url).post(PARAMS, charset="utf-8")

    assert "Content-Encoding" in str(caught.value)
    assert server.requests[0].headers["accept-encoding"] == "identity"


def test_an_answer_dripping_its_headers_is_cut_by_the_total_deadline() -> None:
    # Given an answer whose headers alone would take 100 s at one byte per 50 ms
    padding = {"X-Padding": "p" * 2000}

    def drip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        for byte in answer(200, OK_BODY, headers=padding):
            sock.sendall(bytes([byte]))
            if server.stopping.wait(0.05):
                break
        return False

    with ScriptedServer(drip) as server:
        client = make_client(server.url, read_timeout_seconds=1.0, total_timeout_seconds=1.5)
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            client.post(PARAMS, charset="utf-8")
        waited = time.monotonic() - started

    # Then the client gives up long before the drip ends (each read alone is quick enough)
    assert waited < FINISHED_AT_ALL_SECONDS
    assert "total deadline" in str(caught.value)
    assert caught.value.may_have_reached is True


def test_a_body_dripping_one_byte_at_a_time_is_cut_by_the_total_deadline() -> None:
    def drip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, content_length=10_000))
        while not server.stopping.wait(0.05):
            sock.sendall(b" ")
        return False

    with ScriptedServer(drip) as server:
        client = make_client(server.url, read_timeout_seconds=1.0, total_timeout_seconds=1.5)
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            client.post(PARAMS, charset="utf-8")
        waited = time.monotonic() - started

    assert waited < FINISHED_AT_ALL_SECONDS  # the drip alone would last 500 s
    assert "total deadline" in str(caught.value)
    assert caught.value.http_status == 200


def test_many_requests_travel_over_few_connections() -> None:
    with ScriptedServer(ok) as server:
        client = make_client(server.url, pool_size=2)
        for _ in range(30):
            client.post(PARAMS, charset="utf-8")

    assert len(server.requests) == 30
    assert server.accepted == 1


def test_concurrent_threads_share_one_client_without_mixing_answers() -> None:
    def echo(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        code = request.form("utf-8")["customer_code"]
        sock.sendall(answer(200, code.encode()))
        return True

    def one(i: int) -> tuple[str, bytes]:
        code = f"C{i:07d}"
        return code, client.post(dict(PARAMS, customer_code=code), charset="utf-8").body

    with ScriptedServer(echo) as server:
        client = make_client(server.url, pool_size=8)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(400)))

    assert all(code.encode() == body for code, body in results)
    assert len(server.requests) == 400
    assert server.accepted <= 8 + 8  # the pool, plus at most one overflow per thread


def test_the_host_name_is_resolved_again_for_every_new_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> object:
        lookups.append(host)
        return real_getaddrinfo("127.0.0.1" if host == "gateway.test" else host,
                                *args, **kwargs)  # type: ignore[arg-type]

    def close_each(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, OK_BODY, close=True))
        return False

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with ScriptedServer(close_each) as closing, ScriptedServer(ok) as keeping:
        for server, expected in ((closing, 3), (keeping, 1)):
            lookups.clear()
            client = make_client(server.url.replace("127.0.0.1", "gateway.test"))
            for _ in range(3):
                client.post(PARAMS, charset="utf-8")
            assert lookups.count("gateway.test") == expected
            assert server.accepted == expected


def test_a_failure_never_carries_the_signed_request() -> None:
    with pytest.raises(TransportError) as caught:
        make_client(f"http://127.0.0.1:{free_port()}/gateway.do").post(PARAMS, charset="utf-8")

    error = caught.value
    texts = [str(error), repr(error), repr(error.args)]
    assert not any(PARAMS["sign"] in text or "maoamo" in text for text in texts)
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("option", ["connect_timeout_seconds", "read_timeout_seconds",
                                    "total_timeout_seconds", "pool_size",
                                    "max_response_bytes"])
def test_a_non_positive_limit_is_refused_naming_it(option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        make_client("https://mapi.alipay.com/gateway.do", **{option: 0})


GEVENT_CLIENT = """
from gevent import monkey
monkey.patch_all()
import json, sys
import gevent
from unsign_worker.protocol.exceptions import TransportError
from unsign_worker.protocol.gateway import GatewayClient

echo_url, drip_url = sys.argv[1], sys.argv[2]
client = GatewayClient(gateway_url=echo_url, connect_timeout_seconds=5, read_timeout_seconds=5,
                       pool_size=10, max_response_bytes=65536)
slow = GatewayClient(gateway_url=drip_url, connect_timeout_seconds=5, read_timeout_seconds=1,
                     pool_size=2, max_response_bytes=65536, total_timeout_seconds=1.5)

def one(i):
    code = "G%07d" % i
    body = client.post({"customer_code": code, "sign": "s"}, charset="utf-8").body
    return body.decode() == code

def dripped():
    try:
        slow.post({"customer_code": "D", "sign": "s"}, charset="utf-8")
    except TransportError as exc:
        return str(exc)
    return "answered"

drip = gevent.spawn(dripped)
jobs = [gevent.spawn(one, i) for i in range(200)]
gevent.joinall(jobs + [drip], timeout=60, raise_error=True)
print(json.dumps({"matched": sum(j.value for j in jobs), "drip": drip.value}))
"""


def test_greenlets_share_one_client_and_a_dripping_answer_holds_only_its_own(
        tmp_path: Path) -> None:
    def echo(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, request.form("utf-8")["customer_code"].encode()))
        return True

    def drip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, content_length=10_000))
        while not server.stopping.wait(0.05):
            sock.sendall(b" ")
        return False

    script = tmp_path / "gevent_client.py"
    script.write_text(GEVENT_CLIENT)
    with ScriptedServer(echo) as echoing, ScriptedServer(drip) as dripping:
        done = subprocess.run([sys.executable, str(script), echoing.url, dripping.url],
                              capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["matched"] == 200
    assert echoing.accepted <= 10  # 200 greenlets wait their turn on the pool's 10 connections
    assert "total deadline" in result["drip"]
