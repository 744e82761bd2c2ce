"""Hostile answers: each is refused in bounded time and memory, classified, never a success.

Checked twice: at the parser (``parse_response`` on the bytes) and end to end (a local server
sends them, ``GatewayClient.post`` receives them, ``parse_response`` judges them), the way the
worker handles every answer.
"""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.plugins.scripted_http import Request, ScriptedServer, answer
from unsign_worker.protocol.exceptions import ResponseError, TransportError
from unsign_worker.protocol.gateway import GatewayClient
from unsign_worker.protocol.response import MAX_RESPONSE_BYTES, parse_response
from unsign_worker.protocol.signing import Md5Signer

#: Generous bound for "the refusal happened at all"; the hostile inputs would run far longer.
FINISHED_AT_ALL_SECONDS = 45.0
#: Python allocations allowed while refusing one answer (the cap is 64 KB; 50 MB comes in).
MEMORY_BOUND_BYTES = 8 * 1024 * 1024
KEY = "0123456789abcdefghijklmnopqrstuv"
PARAMS = {"service": "customer_unsign", "customer_code": "C1", "sign": "s", "sign_type": "MD5"}

SUCCESS_TAIL = (b"<alipay><is_success>T</is_success><response><customer>"
                b"<customer_code>C1</customer_code></customer></response></alipay>")

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alipay [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alipay><is_success>T</is_success><error>&lol9;</error></alipay>"""


def xxe(target: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE alipay [<!ENTITY xxe SYSTEM "{target}">]>'
            f"<alipay><is_success>F</is_success><error>&xxe;</error></alipay>").encode()


def nested(depth: int) -> bytes:
    return (b"<alipay><is_success>T</is_success>" + b"<a>" * depth + b"</a>" * depth
            + b"</alipay>")


#: name -> (body, the ResponseError reasons that are a correct refusal)
HOSTILE: dict[str, tuple[bytes, set[str]]] = {
    "xxe-file": (xxe("file:///etc/passwd"), {"dtd"}),
    "xxe-utf16": (('<?xml version="1.0" encoding="utf-16"?>'
                   + xxe("file:///etc/passwd").decode()[21:]).encode("utf-16"),
                  {"dtd", "encoding"}),
    "billion-laughs": (LAUGHS, {"dtd"}),
    "billion-laughs-utf16": (LAUGHS.decode().replace('"1.0"?>', '"1.0" encoding="utf-16"?>')
                             .encode("utf-16"), {"dtd", "encoding", "malformed"}),
    "external-dtd": (b'<!DOCTYPE alipay SYSTEM "http://127.0.0.1:9/evil.dtd">' + SUCCESS_TAIL,
                     {"dtd"}),
    "lowercase-doctype": (b"<!doctype alipay>" + SUCCESS_TAIL, {"dtd"}),
    "parameter-entity": (b'<!DOCTYPE alipay [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                         + SUCCESS_TAIL, {"dtd"}),
    "deep-nesting": (nested(8_000), {"too_deep"}),  # just under the 64 KB cap
    "wide": (b"<alipay><is_success>T</is_success>" + b"<x/>" * 5_000 + b"</alipay>",
             {"too_large"}),
    "invalid-utf8": (SUCCESS_TAIL.replace(b"C1", b"C\xff\xfe1"), {"encoding"}),
    "invalid-utf8-declared": (b'<?xml version="1.0" encoding="utf-8"?>'
                              + SUCCESS_TAIL.replace(b"C1", b"\xc3\x28"), {"encoding"}),
    "invalid-gbk": (b'<?xml version="1.0" encoding="gbk"?>'
                    + SUCCESS_TAIL.replace(b"C1", b"\x81\x20\xff"), {"encoding"}),
    "gbk-cut-mid-character": (b'<?xml version="1.0" encoding="gbk"?>' + SUCCESS_TAIL + b"\xd6",
                              {"encoding"}),
    "unknown-encoding": (b'<?xml version="1.0" encoding="x-no-such"?>' + SUCCESS_TAIL,
                         {"encoding"}),
    "not-xml": (b"<html><body>502 Bad Gateway</body></html>", {"malformed"}),
    "truncated-xml": (SUCCESS_TAIL[:-10], {"malformed"}),
    "unsigned-success": (SUCCESS_TAIL, {"bad_sign"}),
    "forged-signature": (SUCCESS_TAIL.replace(b"</response>", b"</response><sign>"
                                              + b"0" * 32 + b"</sign>"), {"bad_sign"}),
}
FIFTY_MB = 50 * 1024 * 1024


@contextmanager
def bounded(limit_bytes: int = MEMORY_BOUND_BYTES) -> Iterator[None]:
    """Fail unless the block finishes at all and its Python allocations peak under the limit."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - started < FINISHED_AT_ALL_SECONDS
    assert peak < limit_bytes, f"peak {peak} bytes"


def refuse(body: bytes) -> ResponseError:
    """Parse with a verifier, as the worker does; a success would fail the test."""
    with pytest.raises(ResponseError) as caught:
        parse_response(body, verifier=Md5Signer(KEY), charset="utf-8")
    return caught.value


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_parser_refuses_a_hostile_answer_with_a_reason(name: str) -> None:
    body, reasons = HOSTILE[name]

    with bounded():
        error = refuse(body)

    assert error.reason in reasons


def test_the_parser_refuses_a_50_mb_body_without_touching_it() -> None:
    body = b"<alipay>" + b" " * FIFTY_MB + b"</alipay>"

    with bounded(limit_bytes=1024 * 1024):  # not even one copy of the body
        error = refuse(body)

    assert error.reason == "too_large"


def test_an_xxe_never_fetches_its_external_entity() -> None:
    def record(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, b"<!ENTITY leak 'x'>"))
        return False

    with ScriptedServer(record) as evil:
        for body in (xxe(evil.url), b'<!DOCTYPE alipay SYSTEM "' + evil.url.encode() + b'">'
                     + SUCCESS_TAIL):
            refuse(body)

    assert evil.accepted == 0


# --- end to end: local server -> GatewayClient -> parse_response ----------------------------

def client_for(server: ScriptedServer, **overrides: float) -> GatewayClient:
    # Generous by default, so a loaded machine never turns a refusal into a timeout.
    options = dict(connect_timeout_seconds=5.0, read_timeout_seconds=10.0,
                   total_timeout_seconds=20.0)
    options.update(overrides)
    return GatewayClient(gateway_url=server.url, pool_size=2,
                         max_response_bytes=MAX_RESPONSE_BYTES, **options)  # type: ignore[arg-type]


def judged(server: ScriptedServer, **overrides: float) -> Exception:
    """Run one exchange like the worker; return the refusal (a success fails the test)."""
    client = client_for(server, **overrides)
    try:
        raw = client.post(PARAMS, charset="utf-8")
        response = parse_response(raw.body, verifier=Md5Signer(KEY), charset="utf-8",
                                  max_bytes=MAX_RESPONSE_BYTES)
    except (ResponseError, TransportError) as exc:
        return exc
    finally:
        client.close()
    pytest.fail(f"a hostile answer was accepted: {response!r}")


def serving(body: bytes) -> Callable[[ScriptedServer, socket.socket, Request], bool]:
    def handler(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(answer(200, body))
        return True

    return handler


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_answer_from_the_wire_is_refused_with_a_reason(name: str) -> None:
    body, reasons = HOSTILE[name]

    with ScriptedServer(serving(body)) as server, bounded():
        error = judged(server)

    assert isinstance(error, ResponseError)
    assert error.reason in reasons


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_50_mb_answer_from_the_wire_costs_bounded_memory(declared: bool) -> None:
    block = b"<a>" + b" " * (1024 * 1024 - 7) + b"</a>"

    def flood(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        head = answer(200, content_length=FIFTY_MB if declared else None, close=True)
        sock.sendall(head if declared else head.replace(b"Content-Length: 0\r\n", b""))
        for _ in range(FIFTY_MB // len(block)):
            sock.sendall(block)
        return False

    with ScriptedServer(flood) as server, bounded():
        error = judged(server)

    assert isinstance(error, TransportError)
    assert "exceeds" in str(error)


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_slow_drip_from_the_wire_is_cut_by_the_deadline_and_never_a_success(
        where: str) -> None:
    # Given a success whose headers and body would each take over 100 s at one byte per 50 ms
    padded = SUCCESS_TAIL.replace(b"</alipay>", b" " * 2000 + b"</alipay>")
    wire = answer(200, padded, headers={"X-Padding": "p" * 2000})
    split = wire.index(b"\r\n\r\n") + 4 if where == "body" else 0

    def drip(server: ScriptedServer, sock: socket.socket, request: Request) -> bool:
        sock.sendall(wire[:split])
        for byte in wire[split:]:
            if server.stopping.wait(0.05):
                break
            sock.sendall(bytes([byte]))
        return False

    with ScriptedServer(drip) as server, bounded():
        error = judged(server, read_timeout_seconds=1.0, total_timeout_seconds=2.0)

    assert isinstance(error, TransportError)
    assert "total deadline" in str(error)
    assert error.may_have_reached is True
