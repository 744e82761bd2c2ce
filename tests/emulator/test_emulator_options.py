"""Over real HTTP: what every success carries, and the answer options that leave the
documents' defaults (signed errors and queries, GB answers, faults on unsigned answers)."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET

import pytest

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer

ZH_LOGIN = "李雷@例子.公司"


def tree(body: bytes) -> ET.Element:
    """Parse with the declared encoding (read here, independently of both parsers)."""
    declared = re.match(rb'<\?xml version="1.0" encoding="([a-z0-9-]+)"\?>', body)
    assert declared, body[:60]
    text = body.decode(declared.group(1).decode())
    return ET.fromstring(text.split("?>", 1)[1])


def md5_of(emu: Emulator, signed: str, charset: str = "utf-8") -> str:
    return hashlib.md5((signed + emu.key).encode(charset)).hexdigest()


def test_a_partner_protocol_success_carries_the_customer_block_and_is_signed(emulator):
    # pp-1 has a customer_code and no type_code: the code is answered, type_code empty
    body = emulator.send(emulator.signed(biz_type="10004",
                                         user_email="li.wei@example.com")).content
    root = tree(body)
    assert root.findtext("is_success") == "T"
    assert root.findtext("response/customer/customer_code") == "C00000000101"
    assert root.find("response/customer/type_code") is not None
    assert root.findtext("sign") == md5_of(emulator, "customer_code=C00000000101")
    assert {p.get("name"): p.text for p in root.find("request")} == {
        "service": "customer_unsign", "partner": emulator.partner, "_input_charset": "utf-8",
        "biz_type": "10004", "user_email": "li.wei@example.com"}


def test_an_agreement_loaded_without_a_code_is_answered_with_one_never_empty(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(agreements=[{"id": "pp", "biz_type": "10004",
                                        "user_email": "x@example.com"}])
    body = emu.send(emu.signed(biz_type="10004", user_email="x@example.com")).content
    code = tree(body).findtext("response/customer/customer_code")
    assert code and re.fullmatch(r"[0-9]{13}", code)
    parsed = parse_response(body, verifier=Md5Signer(emu.key))
    assert parsed.verified and parsed.customer["customer_code"] == code


@pytest.mark.parametrize(("option", "declared", "request_charset"), [
    ("gbk", "gbk", "utf-8"), ("gb2312", "gb2312", "gbk"), ("gb18030", "gb18030", "gbk"),
    ("request", "gbk", "gbk"), ("request", "gb18030", "gb18030"), ("utf-8", "utf-8", "gbk"),
])
def test_answers_declared_and_encoded_in_a_gb_charset_when_asked(
        emulator_factory: EmulatorFactory, option, declared, request_charset):
    emu = emulator_factory(scenario={"options": {"charset": option}})
    body = emu.send(emu.signed(charset=request_charset, biz_type="10004",
                               user_email=ZH_LOGIN)).content
    assert body.startswith(f'<?xml version="1.0" encoding="{declared}"?>'.encode())
    root = tree(body)
    assert {p.get("name"): p.text for p in root.find("request")}["user_email"] == ZH_LOGIN
    # the signature is over the request charset's bytes, whatever the answer's encoding
    assert root.findtext("sign") == md5_of(emu, "customer_code=C00000000102", request_charset)
    # and the worker's parser reads it as the document says
    parsed = parse_response(body, verifier=Md5Signer(emu.key), charset=request_charset)
    assert parsed.is_success and parsed.verified and parsed.request["user_email"] == ZH_LOGIN


def test_a_gb2312_answer_carries_a_character_gb2312_lacks_as_a_reference(
        emulator_factory: EmulatorFactory):
    emu = emulator_factory(agreements=[{"id": "x", "biz_type": "10004",
                                        "user_email": "镕@例子.公司"}],
                           scenario={"options": {"charset": "gb2312"}})
    body = emu.send(emu.signed(charset="gbk", biz_type="10004",
                               user_email="镕@例子.公司")).content
    assert b"&#38229;" in body  # 镕 (U+9555) is GBK, not GB2312
    assert tree(body).find("request/param[@name='user_email']").text == "镕@例子.公司"


def test_the_global_code_is_signed_only_with_signed_errors(emulator):
    emulator.admin.set_faults(global_code="ILLEGAL_PARTNER")
    assert b"<sign" not in emulator.send(emulator.signed(customer_code="C00000000001")).content
    emulator.admin.set_options(sign_errors=True)
    root = tree(emulator.send(emulator.signed(customer_code="C00000000001")).content)
    assert root.findtext("sign") == md5_of(emulator, "error=ILLEGAL_PARTNER")


def test_a_wrong_sign_fault_gives_even_an_unsigned_error_a_signature_that_fails(emulator):
    emulator.admin.script("cae-unsigned", ["WRONG_SIGN"])
    root = tree(emulator.send(emulator.signed(customer_code="C00000000009")).content)
    assert root.findtext("error") == "STATUS_CUSTOMER_SIGN"
    assert root.findtext("sign") not in (None, md5_of(emulator, "error=STATUS_CUSTOMER_SIGN"))


def test_signed_errors_never_sign_for_another_partner(emulator):
    emulator.admin.set_options(sign_errors=True)
    params = emulator.signed(customer_code="C00000000001")
    params["partner"] = "2088000000000000"
    body = emulator.send(params).content
    assert tree(body).findtext("error") == "ILLEGAL_PARTNER" and b"<sign" not in body


def test_query_errors_are_signed_with_sign_query_not_sign_errors(emulator):
    emulator.admin.set_options(sign_errors=True)
    params = emulator.signed(service="query_customer_protocol", biz_type="10003",
                             user_email="li.wei@example.com")
    assert b"<sign" not in emulator.send(params).content
    emulator.admin.set_options(sign_errors=False, sign_query=True)
    root = tree(emulator.send(params).content)
    assert root.findtext("sign") == md5_of(emulator, "error=ILLEGAL_BIZ_TPYE&is_success=F")


def test_the_faults_of_today_still_apply_under_the_document_defaults(emulator):
    # a lost answer on a partner agreement: unsigned, and the query then tells it unsigned
    emulator.admin.script("pp-1", ["LOST_ANSWER"])
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        emulator.send(emulator.signed(biz_type="10004", user_email="li.wei@example.com"))
    params = emulator.signed(service="query_customer_protocol", biz_type="10004",
                             user_email="li.wei@example.com")
    root = tree(emulator.send(params).content)
    assert (root.findtext("is_success"), root.findtext("charge_agent")) == ("T", "F")
    assert root.find("sign") is None
