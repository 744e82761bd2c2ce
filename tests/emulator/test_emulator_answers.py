"""The emulator's XML answers, rendered alone (no HTTP): the documents' samples, escaping,
encodings, and the answer options."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import pytest

from unsign_worker.emulator import answers
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.options import AnswerOptions

KEY = "0123456789abcdefghijklmnopqrstuv"


def md5(fields: Mapping[str, str]) -> tuple[str, str]:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v)
    return hashlib.md5((text + KEY).encode("gbk")).hexdigest(), "MD5"


def test_the_success_is_the_sample_of_section_5_3():
    echo = {"service": "customer_unsign", "customer_code": "1118400000013",
            "_input_charset": "GBK", "partner": "2088101568338364"}
    customer = {"customer_code": "1118400000013", "type_code": "BUSI003100021000301"}
    body = answers.unsign_success(echo, customer, md5)
    sign = hashlib.md5(b"customer_code=1118400000013&type_code=BUSI003100021000301"
                       + KEY.encode()).hexdigest()
    assert body.decode("utf-8") == (
        '<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success><request>'
        '<param name="service">customer_unsign</param>'
        '<param name="customer_code">1118400000013</param>'
        '<param name="_input_charset">GBK</param>'
        '<param name="partner">2088101568338364</param></request>'
        "<response><customer><customer_code>1118400000013</customer_code>"
        "<type_code>BUSI003100021000301</type_code></customer></response>"
        f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>")


def test_the_error_is_the_sample_of_section_5_3_and_may_be_signed_over_error_only():
    assert answers.unsign_error("STATUS_CUSTOMER_SIGN", None) == (
        b'<?xml version="1.0" encoding="utf-8"?><alipay><is_success>F</is_success>'
        b"<error>STATUS_CUSTOMER_SIGN</error></alipay>")
    signed = answers.unsign_error("STATUS_CUSTOMER_SIGN", md5).decode()
    sign = hashlib.md5(b"error=STATUS_CUSTOMER_SIGN" + KEY.encode()).hexdigest()
    assert signed.endswith(f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>")


def test_the_query_answer_is_the_sample_of_the_query_document():
    fields = {"is_success": "T", "charge_agent": "F", "refund_charge": "T",
              "user_id": "2088102002723983"}
    assert answers.query_answer(fields, None) == (
        b'<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>'
        b"<charge_agent>F</charge_agent><refund_charge>T</refund_charge>"
        b"<user_id>2088102002723983</user_id></alipay>")


def test_values_are_escaped_and_read_back_as_given():
    echo = {"user_email": 'a&b<c>"d"@例子.公司'}
    customer = {"customer_code": "C&1", "type_code": "<T>"}
    root = ET.fromstring(answers.unsign_success(echo, customer, md5))
    assert root.find("request/param").text == echo["user_email"]
    assert root.find("response/customer/customer_code").text == "C&1"
    assert root.find("sign").text == md5(customer)[0]   # signed over the unescaped values


@pytest.mark.parametrize("encoding", ["gbk", "gb2312", "gb18030", "utf-8"])
def test_an_answer_is_declared_and_encoded_in_its_encoding(encoding):
    # '·' and '𠀀' are not in every GB charset: written as character references there
    echo = {"user_email": "张·伟𠀀@例子.公司"}
    body = answers.unsign_success(echo, {"customer_code": "C1", "type_code": ""}, md5,
                                  encoding)
    assert body.startswith(f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
    text = body.decode(encoding)
    root = ET.fromstring(text.split("?>", 1)[1])
    assert root.find("request/param").text == echo["user_email"]
    assert "张" in text  # real characters where the encoding has them


def test_answer_options_are_checked_and_name_the_field():
    options = AnswerOptions.from_mapping({"sign_errors": True, "charset": "GBK"})
    assert options.as_dict() == {"sign_errors": True, "sign_query": False, "charset": "gbk",
                                 "lenient": False}
    assert options.encoding_for("utf-8") == "gbk"
    assert AnswerOptions(charset="request").encoding_for("gb2312") == "gb2312"
    assert AnswerOptions().encoding_for("gbk") == "utf-8"
    for bad, field in (({"charset": "latin-1"}, "x.charset"), ({"sign_query": 1}, "x.sign_query"),
                       ({"lenient": "yes"}, "x.lenient"),
                       ({"colour": "red"}, "x.colour: unknown option")):
        with pytest.raises(EmulatorConfigError, match=field):
            AnswerOptions.from_mapping(bad, where="x")
