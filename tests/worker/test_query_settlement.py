"""Settling a lost answer on a biz_type=10004 agreement with query_customer_protocol, as its
document defines the answers: unsigned, with charge_agent or one of its own error codes.

The gateway here is a scripted server that answers exactly the documents' samples (unsigned
errors, unsigned query answers): the first customer_unsign answer is lost, the retry answers
STATUS_CUSTOMER_SIGN, the query answers what each test gives.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import paths
from tests.plugins.scripted_http import Request, ScriptedServer, answer
from unsign_worker.protocol.catalogue import QUERY_CATALOGUE, Category, lookup_query
from unsign_worker.protocol.gateway import GatewayClient
from unsign_worker.protocol.params import QUERY_SERVICE, SERVICE
from unsign_worker.protocol.query_verdict import judge_query
from unsign_worker.protocol.response import GatewayResponse
from unsign_worker.worker.context import WorkerContext
from unsign_worker.worker.processor import process_job

DATA = paths.DATA
QUERY_SUCCESS = (DATA / "conformance" / "query_customer_protocol-4.3-success.xml").read_bytes()
QUERY_ERROR = (DATA / "conformance" / "query_customer_protocol-4.3-error.xml").read_bytes()
UNSIGN_ERROR = (DATA / "conformance" / "customer_unsign-5.3-error.xml").read_bytes()
PARTNER_JOB = {"biz_type": "10004", "user_email": "ats_001@alitest.com"}


def query_error(code: str) -> bytes:
    return QUERY_ERROR.replace(b"NO_SIGN_CUSTOMER", code.encode("ascii"))


def query_success(charge_agent: str) -> bytes:
    return QUERY_SUCCESS.replace(b"<charge_agent>F</charge_agent>",
                                 f"<charge_agent>{charge_agent}</charge_agent>".encode())


class DocumentGateway:
    """Loses the first customer_unsign answer, then answers the 5.3 error sample
    (STATUS_CUSTOMER_SIGN, unsigned); answers every query with ``query_body``."""

    def __init__(self, query_body: bytes) -> None:
        self.query_body = query_body
        self.services: list[str] = []

    def __call__(self, server: ScriptedServer, sock: socket.socket, request: Request
                 ) -> bool | None:
        form = dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
        service = form.get("service", "")
        self.services.append(service)
        if service == SERVICE and self.services.count(SERVICE) == 1:
            return False  # the gateway unsigned it, but the answer never arrives
        body = self.query_body if service == QUERY_SERVICE else UNSIGN_ERROR
        sock.sendall(answer(200, body))
        return None


@pytest.fixture
def document_gateway() -> Iterator[Callable[[bytes], tuple[ScriptedServer, DocumentGateway]]]:
    servers: list[ScriptedServer] = []

    def start(query_body: bytes) -> tuple[ScriptedServer, DocumentGateway]:
        script = DocumentGateway(query_body)
        servers.append(ScriptedServer(script))
        return servers[-1], script

    yield start
    for server in servers:
        server.close()


def settle(make_ctx: Callable[..., WorkerContext], server: ScriptedServer
           ) -> tuple[WorkerContext, str, object]:
    ctx = make_ctx(server, intask_retry_budget_seconds=3)
    job_id = uuid.uuid4().hex
    return ctx, job_id, process_job(ctx, {"job_id": job_id, "params": PARTNER_JOB})


def dlq_entry(ctx: WorkerContext, job_id: str) -> dict[str, str]:
    raw = ctx.redis.hgetall(ctx.keys.dlq_entry(job_id))
    assert raw, "no dead-letter entry"
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.mark.parametrize(("query_body", "state"), [
    pytest.param(QUERY_SUCCESS, "already_unsigned", id="charge_agent=F (the 4.3 sample)"),
    pytest.param(QUERY_ERROR, "already_unsigned", id="NO_SIGN_CUSTOMER (the 4.3 error sample)"),
    pytest.param(query_success("T"), "rejected", id="charge_agent=T"),
])
def test_an_unsigned_query_answer_settles_the_lost_answer(document_gateway, make_ctx,
                                                          query_body, state):
    server, script = document_gateway(query_body)
    ctx, job_id, decision = settle(make_ctx, server)
    assert script.services == [SERVICE, SERVICE, QUERY_SERVICE]
    assert (decision.state, decision.code) == (state, "STATUS_CUSTOMER_SIGN")
    reason = ctx.redis.hget(ctx.keys.job(job_id), "reason").decode()
    assert "query_customer_protocol" in reason
    if state == "rejected":
        assert "still signed" in reason and "charge_agent=T" in reason


@pytest.mark.parametrize("code", ["NO_NORMAL_SIGN_CUSTOMER", "ILLEGAL_ACCOUNT_NO",
                                  "NULL_EMAIL_AND_ACCOUNT_NO", "STATUS_CUSTOMER_SIGN",
                                  "SOMETHING_NEW"])
def test_an_undecidable_query_answer_goes_to_the_dlq_with_advice(document_gateway, make_ctx,
                                                                 code):
    server, _ = document_gateway(query_error(code))
    ctx, job_id, decision = settle(make_ctx, server)
    assert (decision.state, decision.code) == ("dead_lettered", code)
    entry = dlq_entry(ctx, job_id)
    assert entry["kind"] == "escalate" and entry["code"] == code
    assert "merchant console" in entry["advice"]


def test_a_query_success_without_charge_agent_goes_to_the_dlq(document_gateway, make_ctx):
    server, _ = document_gateway(QUERY_SUCCESS.replace(b"<charge_agent>F</charge_agent>", b""))
    ctx, job_id, decision = settle(make_ctx, server)
    assert (decision.state, decision.code) == ("dead_lettered", "QUERY_NO_CHARGE_AGENT")
    assert dlq_entry(ctx, job_id)["kind"] == "escalate"


@pytest.mark.parametrize("code", ["ILLEGAL_PARTNER", "NOT_AIR_PLANE_PARTNER",
                                  "ILLEGAL_BIZ_TPYE", "ILLEGAL_SIGN"])
def test_an_integration_code_from_the_query_opens_the_breaker(document_gateway, make_ctx,
                                                               code):
    server, _ = document_gateway(query_error(code))
    ctx, job_id, decision = settle(make_ctx, server)
    assert (decision.state, decision.code) == ("parked", code)
    halts = ctx.redis.zcard(ctx.keys.breaker_halts)
    assert halts == 1


def test_a_query_answer_with_a_wrong_signature_is_never_believed(document_gateway, make_ctx):
    signed = QUERY_SUCCESS.replace(b"</alipay>", b"    <sign>0123456789abcdef0123456789abcdef"
                                   b"</sign>\n    <sign_type>MD5</sign_type>\n</alipay>")
    server, script = document_gateway(signed)
    ctx, _, decision = settle(make_ctx, server)
    assert decision.state == "retrying" and decision.code == "BAD_RESPONSE_SIGN"


# --- the verdicts and the catalogue, without a gateway ------------------------------------------


def doc_query_codes() -> dict[str, str]:
    """``{code: meaning}`` of table 7-1, parsed from the query document's text."""
    text = (DATA / "query_customer_protocol-technical-doc.txt").read_text(encoding="utf-8")
    start = text.index("表7-1")
    rows = {}
    for line in text[start:].splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[0].isupper() and "_" in parts[0]:
            rows[parts[0]] = " ".join(parts[1].split())
    return rows


def test_every_code_of_the_query_document_is_catalogued_with_its_meaning() -> None:
    codes = doc_query_codes()
    assert len(codes) == 7 and {"ILLEGAL_PARTNER", "ILLEGAL_BIZ_TPYE"} <= set(codes)
    assert set(QUERY_CATALOGUE) == set(codes)
    for code, meaning in codes.items():
        entry = QUERY_CATALOGUE[code]
        assert " ".join(entry.zh.split()) == meaning, code
        assert entry.section == "query 7" and entry.en and entry.advice


def test_no_query_code_rejects_by_default() -> None:
    assert lookup_query("NO_SIGN_CUSTOMER").category is Category.GONE
    assert {c for c, e in QUERY_CATALOGUE.items() if e.category is Category.HALT} == {
        "ILLEGAL_PARTNER", "NOT_AIR_PLANE_PARTNER", "ILLEGAL_BIZ_TPYE"}
    assert all(e.category is not Category.REJECT for e in QUERY_CATALOGUE.values())
    assert lookup_query("SYSTEM_ERROR").category is Category.RETRY  # gateway-wide codes
    assert lookup_query("ILLEGAL_SIGN").category is Category.HALT
    assert lookup_query("NOT_EXIST_CUST_SIGN").category is Category.ESCALATE  # unsign-only


@given(st.from_regex(r"[A-Z][A-Z_]{2,30}", fullmatch=True))
def test_a_query_error_is_never_a_rejection(code: str) -> None:
    verdict = judge_query(GatewayResponse(is_success=False, error=code, service=QUERY_SERVICE))
    assert verdict.kind in ("already_unsigned", "halt", "dead_letter")
    assert verdict.kind != "already_unsigned" or code == "NO_SIGN_CUSTOMER"


@given(st.text(max_size=5))
def test_only_charge_agent_f_settles_and_only_t_rejects(agent: str) -> None:
    answer = GatewayResponse(is_success=True, fields={"charge_agent": agent},
                             service=QUERY_SERVICE)
    kind = judge_query(answer).kind
    assert kind == {"F": "already_unsigned", "T": "rejected"}.get(agent, "dead_letter")


@pytest.mark.parametrize(("url", "trusted"), [
    ("https://mapi.alipay.com/gateway.do", True),
    ("http://127.0.0.1:8080/gateway.do", True),
    ("http://localhost:8080/gateway.do", True),
    ("http://mapi.alipay.com/gateway.do", False),
    ("http://10.0.0.7/gateway.do", False),
])
def test_only_verified_tls_or_the_loopback_sandbox_is_a_trusted_channel(url, trusted):
    client = GatewayClient(gateway_url=url, connect_timeout_seconds=1, read_timeout_seconds=1,
                           pool_size=1, max_response_bytes=1024)
    try:
        assert client.trusted_channel is trusted
    finally:
        client.close()
