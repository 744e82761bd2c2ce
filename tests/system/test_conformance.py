"""The documents' own samples (tests/data/conformance): parsed by the worker with the outcome
the documents imply, and the emulator's answers compared with them field by field."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests import paths
from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.protocol.catalogue import Category, lookup, lookup_query
from unsign_worker.protocol.exceptions import BadSignatureError, ResponseError, ValidationError
from unsign_worker.protocol.param_rules import validate_partner
from unsign_worker.protocol.params import (
    QUERY_SERVICE,
    SERVICE,
    UnsignRequest,
    build_query_params,
)
from unsign_worker.protocol.query_verdict import judge_query
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer

DATA = paths.DATA / "conformance"
#: Any key: the samples' MD5 key is not published.
KEY = "0123456789abcdefghijklmnopqrstuv"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def request_sample(name: str) -> dict[str, str]:
    url = sample(name).decode("ascii").strip()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "mapi.alipay.com",
                                                        "/gateway.do")
    return dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))


def business(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k in ("customer_code", "type_code",
                                                     "trans_account_out", "biz_type",
                                                     "user_email")}


# --- the request samples validate in the worker ------------------------------------------------


def test_the_customer_unsign_request_sample_is_read_and_each_of_its_forms_validates() -> None:
    params = request_sample("customer_unsign-4.3-request.url")
    assert params["service"] == SERVICE and params["sign_type"] == "MD5"
    assert validate_partner(params["partner"]) == []
    request = UnsignRequest.from_mapping(business(params))
    assert request.user_email == "maoamo@alipay.com"  # %40 decoded: the signed value is raw
    # the sample ("本样例仅供参考") sends every identifier at once, which the notes of 4.2 ("任选
    # 其一") and usage rules 4 (biz_type + user_email only with 10004) do not allow: refused,
    # customer_code naming the agreement alone (docs/worker.md, which pair names it)
    with pytest.raises(ValidationError) as caught:
        request.validate(charset="utf-8")
    assert ("type_code", "one_form") in {(e.field, e.rule) for e in caught.value.errors}
    # each of its CAE forms alone validates and names the agreement by that form
    for form in (("customer_code",), ("type_code", "trans_account_out")):
        alone = UnsignRequest.from_mapping({name: params[name] for name in form})
        assert alone.validate(charset="utf-8").identity(params["partner"]).kind == form[0]


def test_the_query_request_sample_validates_and_the_worker_asks_the_same() -> None:
    params = request_sample("query_customer_protocol-3.3-request.url")
    assert params["service"] == QUERY_SERVICE and params["sign_type"] == "MD5"
    assert validate_partner(params["partner"]) == []
    assert validate_partner(params["account_no"]) == []  # a user id: 2088 + 12 digits
    request = UnsignRequest(biz_type=params["biz_type"], user_email=params["user_email"])
    assert request.validate(charset=params["_input_charset"]).is_partner_protocol
    ours = build_query_params(request, partner=params["partner"],
                              charset=params["_input_charset"])
    # the worker's query is the sample's, without the optional account_no
    assert ours == {k: v for k, v in params.items()
                    if k not in ("sign", "sign_type", "account_no")}


# --- the answer samples, parsed -----------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_the_success_sample_parses_but_its_signature_is_never_accepted(charset: str) -> None:
    body = sample("customer_unsign-5.3-success.xml")
    shape = parse_response(body)  # structure only, no trust
    assert shape.is_success and not shape.verified
    assert shape.customer == {"customer_code": "1118400000013",
                              "type_code": "BUSI003100021000301"}
    assert shape.request == {"service": "customer_unsign", "customer_code": "1118400000013",
                             "_input_charset": "GBK", "partner": "2088101568338364"}
    assert (shape.sign, shape.sign_type) == ("eb46497947ffddf5cd5c53711e122040", "MD5")
    # without the sample's key the signature cannot match: a bad signature, never a success
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=Md5Signer(KEY), charset=charset)


def test_the_success_sample_returns_a_customer_code_the_worker_accepts() -> None:
    code = parse_response(sample("customer_unsign-5.3-success.xml")).customer["customer_code"]
    assert len(code) == 13  # longer than the request table's String(12)
    UnsignRequest(customer_code=code).validate(charset="utf-8")


def test_the_error_sample_maps_to_its_catalogue_category() -> None:
    answer = parse_response(sample("customer_unsign-5.3-error.xml"),
                            verifier=Md5Signer(KEY))
    assert (answer.is_success, answer.error, answer.verified) == (
        False, "STATUS_CUSTOMER_SIGN", False)
    entry = lookup(answer.error)
    assert (entry.category, entry.section) == (Category.REJECT, "8.1")


def test_the_query_success_sample_parses_unsigned_over_a_trusted_channel() -> None:
    body = sample("query_customer_protocol-4.3-success.xml")
    answer = parse_response(body, verifier=Md5Signer(KEY), service=QUERY_SERVICE,
                            trusted_channel=True)
    assert answer.is_success and not answer.sign and not answer.verified
    assert answer.fields == {"charge_agent": "F", "refund_charge": "T",
                             "user_id": "2088102002723983"}
    assert judge_query(answer).kind == "already_unsigned"


def test_the_query_success_sample_is_believed_only_for_that_service_and_channel() -> None:
    body = sample("query_customer_protocol-4.3-success.xml")
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=Md5Signer(KEY), service=QUERY_SERVICE,
                       trusted_channel=False)
    with pytest.raises(ResponseError):  # as a customer_unsign answer it is no success at all
        parse_response(body, verifier=Md5Signer(KEY), trusted_channel=True)


def test_the_query_error_sample_settles_as_already_unsigned() -> None:
    answer = parse_response(sample("query_customer_protocol-4.3-error.xml"),
                            verifier=Md5Signer(KEY), service=QUERY_SERVICE)
    assert (answer.is_success, answer.error) == (False, "NO_SIGN_CUSTOMER")
    assert lookup_query(answer.error).category is Category.GONE
    assert judge_query(answer).kind == "already_unsigned"


# --- the emulator, field by field against the samples ------------------------------------------


def outline(body: bytes) -> tuple[str, list[str], list[str], bool]:
    """What the comparison looks at: the XML declaration, the top-level element names in order,
    the ``<response><customer>`` element names in order, and whether the answer is signed."""
    first_line = body.split(b"\n", 1)[0] if body.startswith(b"<?xml") else b""
    declaration = first_line.split(b"?>", 1)[0] + b"?>" if first_line else b""
    root = ET.fromstring(body)
    top = [child.tag for child in root]
    customer = root.find("response/customer")
    names = [child.tag for child in customer] if customer is not None else []
    return declaration.decode("ascii"), top, names, "sign" in top


def compare(emulated: bytes, fixture: str) -> None:
    got, want = outline(emulated), outline(sample(fixture))
    assert got[0] == want[0], "XML declaration"
    assert got[1] == want[1], "top-level elements and their order"
    assert got[2] == want[2], "<response><customer> elements and their order"
    assert got[3] == want[3], "signed or unsigned"


def ask(emu: Emulator, **params: str) -> bytes:
    response = emu.send(emu.signed(**params))
    assert response.status_code == 200
    return response.content


def test_the_emulator_success_is_the_sample_success(emulator: Emulator) -> None:
    body = ask(emulator, customer_code="C00000000001")
    compare(body, "customer_unsign-5.3-success.xml")
    parsed = parse_response(body, verifier=Md5Signer(emulator.key))
    assert parsed.verified and parsed.customer["customer_code"] == "C00000000001"
    sent = emulator.signed(customer_code="C00000000001")
    assert parsed.request == {k: v for k, v in sent.items() if k not in ("sign", "sign_type")}


def test_the_emulator_success_for_a_partner_agreement_carries_its_customer(
        emulator_factory: EmulatorFactory) -> None:
    # section 5.2: customer_code is never empty in a success, whatever form named the agreement
    emu = emulator_factory(agreements=[{"id": "pp-9", "biz_type": "10004",
                                        "user_email": "wang.fang@example.com",
                                        "user_id": "2088102002723989"}])
    body = ask(emu, biz_type="10004", user_email="wang.fang@example.com")
    compare(body, "customer_unsign-5.3-success.xml")
    assert parse_response(body, verifier=Md5Signer(emu.key)).verified


def test_the_emulator_error_is_the_sample_error(emulator: Emulator) -> None:
    body = ask(emulator, customer_code="C00000000009")  # an agreement already unsigned
    compare(body, "customer_unsign-5.3-error.xml")
    assert parse_response(body).error == "STATUS_CUSTOMER_SIGN"


def test_the_emulator_query_answer_is_the_sample_answer(emulator: Emulator) -> None:
    body = ask(emulator, service=QUERY_SERVICE, biz_type="10004",
               user_email="li.wei@example.com")
    compare(body, "query_customer_protocol-4.3-success.xml")
    parsed = parse_response(body, verifier=Md5Signer(emulator.key), service=QUERY_SERVICE,
                            trusted_channel=True)
    assert parsed.fields["charge_agent"] == "T"  # pp-1 is signed


def test_the_emulator_query_error_is_the_sample_error(emulator: Emulator) -> None:
    body = ask(emulator, service=QUERY_SERVICE, biz_type="10004",
               user_email="nobody@example.com")
    compare(body, "query_customer_protocol-4.3-error.xml")
    assert parse_response(body, service=QUERY_SERVICE).error == "NO_SIGN_CUSTOMER"
