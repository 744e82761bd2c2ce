"""Parsing and verifying the gateway's XML answer (section 5), and refusing hostile XML."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.protocol.exceptions import BadSignatureError, ResponseError
from unsign_worker.protocol.params import QUERY_SERVICE
from unsign_worker.protocol.response import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    parse_response,
    parse_xml,
    render_response,
)
from unsign_worker.protocol.signing import DsaSigner, Md5Signer, RsaSigner, Signer

KEY = "0123456789abcdefghijklmnopqrstuv"


def md5_hex(text: str, charset: str = "utf-8") -> str:
    return hashlib.md5((text + KEY).encode(charset)).hexdigest()


def sample_success(sign: str | None, *, customer_code: str = "1118400000013") -> bytes:
    """The success answer of section 5.3, as laid out there (indented, GBK echoed)."""
    sign_nodes = f"\n    <sign>{sign}</sign>\n    <sign_type>MD5</sign_type>" if sign else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<alipay>
    <is_success>T</is_success>
    <request>
        <param name="service">customer_unsign</param>
        <param name="customer_code">1118400000013</param>
        <param name="_input_charset">GBK</param>
        <param name="partner">2088101568338364</param>
    </request>
    <response>
        <customer>
            <customer_code>{customer_code}</customer_code>
            <type_code>BUSI003100021000301</type_code>
        </customer>
    </response>{sign_nodes}
</alipay>
""".encode()


SAMPLE_SIGN = md5_hex("customer_code=1118400000013&type_code=BUSI003100021000301")

SAMPLE_ERROR = b"""<?xml version="1.0" encoding="utf-8"?>
<alipay>
    <is_success>F</is_success>
    <error>STATUS_CUSTOMER_SIGN</error>
</alipay>
"""


# --- good answers ---------------------------------------------------------------------------


def test_the_section_5_3_success_sample_parses_and_verifies() -> None:
    answer = parse_response(sample_success(SAMPLE_SIGN), verifier=Md5Signer(KEY))
    assert answer.is_success and answer.verified and answer.error == ""
    assert answer.customer == {"customer_code": "1118400000013",
                               "type_code": "BUSI003100021000301"}
    assert answer.request == {"service": "customer_unsign", "customer_code": "1118400000013",
                              "_input_charset": "GBK", "partner": "2088101568338364"}
    assert (answer.sign, answer.sign_type) == (SAMPLE_SIGN, "MD5")
    assert answer.signed_params() == answer.customer


def test_without_a_verifier_the_answer_is_parsed_but_not_marked_verified() -> None:
    answer = parse_response(sample_success(SAMPLE_SIGN))
    assert answer.is_success and not answer.verified


def test_the_section_5_3_error_sample_parses_without_a_signature() -> None:
    answer = parse_response(SAMPLE_ERROR, verifier=Md5Signer(KEY))
    assert not answer.is_success and not answer.verified
    assert answer.error == "STATUS_CUSTOMER_SIGN" and answer.customer == {}


def test_a_signed_error_answer_is_verified_over_the_error_node_only() -> None:
    body = SAMPLE_ERROR.replace(
        b"</alipay>",
        f"<sign>{md5_hex('error=STATUS_CUSTOMER_SIGN')}</sign><sign_type>MD5</sign_type></alipay>"
        .encode())
    answer = parse_response(body, verifier=Md5Signer(KEY))
    assert answer.verified and answer.error == "STATUS_CUSTOMER_SIGN"


def test_html_entities_are_unescaped_before_verifying() -> None:
    # section 7.1.1: "&lt;" stands for "<" in the string to sign
    sign = md5_hex("customer_code=a<b&c&type_code=T")
    body = (f'<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>'
            f"<response><customer><customer_code>a&lt;b&amp;c</customer_code>"
            f"<type_code>T</type_code></customer></response><sign>{sign}</sign>"
            f"<sign_type>MD5</sign_type></alipay>").encode()
    answer = parse_response(body, verifier=Md5Signer(KEY))
    assert answer.verified and answer.customer["customer_code"] == "a<b&c"


def test_a_gbk_declared_answer_with_chinese_values_is_decoded_and_verified_in_gbk() -> None:
    sign = md5_hex("customer_code=1&type_code=业务码", "gbk")
    body = (f'<?xml version="1.0" encoding="GBK"?><alipay><is_success>T</is_success>'
            f"<response><customer><customer_code>1</customer_code><type_code>业务码</type_code>"
            f"</customer></response><sign>{sign}</sign><sign_type>MD5</sign_type></alipay>"
            ).encode("gbk")
    answer = parse_response(body, verifier=Md5Signer(KEY), charset="gbk")
    assert answer.verified and answer.customer["type_code"] == "业务码"
    # the same bytes verified as if the request had been utf-8 do not match
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=Md5Signer(KEY), charset="utf-8")


def test_a_gb2312_declared_answer_may_carry_gbk_only_characters() -> None:
    body = ('<?xml version="1.0" encoding="gb2312"?><alipay><is_success>F</is_success>'
            "<error>镕</error></alipay>").encode("gbk")
    assert parse_response(body).error == "镕"


def test_an_rsa_signed_answer_verifies_with_alipays_public_key() -> None:
    alipay = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = alipay.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    public = alipay.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    body = render_response(is_success=True, customer={"customer_code": "1", "type_code": "T"},
                           signer=RsaSigner(private_key_pem=private))
    assert parse_response(body, verifier=RsaSigner(public_key_pem=public)).verified
    with pytest.raises(BadSignatureError):  # an MD5 key does not verify an RSA signature
        parse_response(body, verifier=Md5Signer(KEY))


def test_a_signed_query_answer_is_verified_over_every_returned_parameter() -> None:
    # query document 6.1.1: all returned parameters but sign/sign_type, is_success included;
    # the signature is computed here by hand from that sentence, not by the worker's code
    signed = "charge_agent=T&is_success=T&user_id=2088002007018916"
    sign = hashlib.md5((signed + KEY).encode()).hexdigest()
    body = ('<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>'
            "<charge_agent>T</charge_agent><user_id>2088002007018916</user_id>"
            f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>").encode()
    answer = parse_response(body, verifier=Md5Signer(KEY), service=QUERY_SERVICE)
    assert answer.verified and answer.fields == {"charge_agent": "T",
                                                 "user_id": "2088002007018916"}
    with pytest.raises(BadSignatureError):
        parse_response(body.replace(b"<charge_agent>T", b"<charge_agent>F"),
                       verifier=Md5Signer(KEY), service=QUERY_SERVICE)


def test_a_signed_query_error_is_verified_over_is_success_and_error() -> None:
    sign = hashlib.md5(("error=NO_SIGN_CUSTOMER&is_success=F" + KEY).encode()).hexdigest()
    body = ('<?xml version="1.0" encoding="utf-8"?><alipay><is_success>F</is_success>'
            f"<error>NO_SIGN_CUSTOMER</error><sign>{sign}</sign><sign_type>MD5</sign_type>"
            "</alipay>").encode()
    answer = parse_response(body, verifier=Md5Signer(KEY), service=QUERY_SERVICE)
    assert answer.verified and answer.error == "NO_SIGN_CUSTOMER"


# --- answers that must never count as success ----------------------------------------------


def test_a_tampered_success_is_refused() -> None:
    body = sample_success(SAMPLE_SIGN, customer_code="9999999999999")
    with pytest.raises(BadSignatureError) as caught:
        parse_response(body, verifier=Md5Signer(KEY))
    assert caught.value.reason == "bad_sign"
    assert isinstance(caught.value, ResponseError)


def test_a_success_signed_with_another_key_is_refused() -> None:
    with pytest.raises(BadSignatureError):
        parse_response(sample_success(SAMPLE_SIGN), verifier=Md5Signer("z" * 32))


def test_a_success_without_a_signature_is_refused_when_a_verifier_is_given() -> None:
    with pytest.raises(BadSignatureError, match="no signature"):
        parse_response(sample_success(None), verifier=Md5Signer(KEY))


def test_an_error_answer_with_a_wrong_signature_is_refused() -> None:
    body = SAMPLE_ERROR.replace(b"</alipay>", b"<sign>00</sign><sign_type>MD5</sign_type></alipay>")
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=Md5Signer(KEY))


def test_a_signature_with_non_ascii_text_is_a_bad_signature_not_a_crash() -> None:
    with pytest.raises(BadSignatureError):
        parse_response(sample_success("签名"), verifier=Md5Signer(KEY))


@pytest.mark.parametrize("verifier", [RsaSigner(), DsaSigner(), Md5Signer("")],
                         ids=["RSA", "DSA", "MD5"])
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_success_the_verifier_cannot_check_is_never_a_success(verifier: Signer,
                                                                 signed: bool) -> None:
    # RSA/DSA configured without ALIPAY_PUBLIC_KEY_FILE (or MD5 without a key): a forged answer,
    # signed or not, must not read as an unsign; the worker also refuses to start so configured
    body = sample_success(SAMPLE_SIGN if signed else None)
    with pytest.raises(BadSignatureError):
        parse_response(body, verifier=verifier)


@pytest.mark.parametrize(
    ("body", "reason", "message"),
    [
        pytest.param(b"not xml at all", "malformed", "malformed XML", id="not XML"),
        pytest.param(b"<alipay><is_success>T</is_success>", "malformed", "malformed XML",
                     id="truncated"),
        pytest.param(b"<html><body>502</body></html>", "malformed", "not <alipay>",
                     id="an HTML error page"),
        pytest.param(b"<alipay><error>X</error></alipay>", "malformed", "is_success",
                     id="no is_success"),
        pytest.param(b"<alipay><is_success>Y</is_success></alipay>", "malformed", "is_success",
                     id="is_success neither T nor F"),
        pytest.param(b"<alipay><is_success>F</is_success></alipay>", "malformed", "no <error>",
                     id="F without an error code"),
        pytest.param(b"<alipay><is_success>F</is_success><is_success>T</is_success>"
                     b"<error>X</error></alipay>", "malformed", "twice", id="is_success twice"),
        pytest.param(b'<?xml version="1.0" encoding="klingon"?><alipay/>', "encoding", "klingon",
                     id="an unknown declared encoding"),
        pytest.param(b'<?xml version="1.0" encoding="utf-8"?><alipay>\xff</alipay>', "encoding",
                     "not valid utf-8", id="bytes invalid in the declared encoding"),
    ],
)
def test_malformed_answers_are_refused_with_a_reason(body: bytes, reason: str,
                                                     message: str) -> None:
    with pytest.raises(ResponseError, match=message) as caught:
        parse_response(body)
    assert caught.value.reason == reason


# --- hostile XML ----------------------------------------------------------------------------

XXE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE alipay [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alipay><is_success>F</is_success><error>&xxe;</error></alipay>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
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
<alipay><is_success>F</is_success><error>&lol9;</error></alipay>"""

EXTERNAL_DTD = (b'<?xml version="1.0"?><!DOCTYPE alipay SYSTEM "http://127.0.0.1:9/x.dtd">'
                b"<alipay><is_success>T</is_success></alipay>")

LOWER_CASE_DOCTYPE = b"<!doctype alipay><alipay><is_success>T</is_success></alipay>"


@pytest.mark.timeout(20)  # a hang guard: a parser that expanded the entities would never return
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(XXE, id="XXE"),
        pytest.param(BILLION_LAUGHS, id="billion laughs"),
        pytest.param(EXTERNAL_DTD, id="an external DTD"),
        pytest.param(LOWER_CASE_DOCTYPE, id="a lower-case doctype"),
    ],
)
def test_dtds_and_entity_declarations_are_refused(body: bytes) -> None:
    with pytest.raises(ResponseError) as caught:
        parse_response(body, verifier=Md5Signer(KEY))
    assert caught.value.reason == "dtd"
    assert "passwd" not in str(caught.value)


@pytest.mark.timeout(20)
def test_a_billion_laughs_in_utf16_is_refused_too() -> None:
    body = BILLION_LAUGHS.replace(b'<?xml version="1.0"?>',
                                  b'<?xml version="1.0" encoding="utf-16"?>').decode()
    with pytest.raises(ResponseError):
        parse_response(body.encode("utf-16"))


def test_deep_nesting_is_refused() -> None:
    depth = 5000
    body = b"<alipay>" + b"<a>" * depth + b"</a>" * depth + b"</alipay>"
    with pytest.raises(ResponseError) as caught:
        parse_xml(body)
    assert caught.value.reason == "too_deep"


def test_nesting_at_the_limit_is_accepted() -> None:
    inner = MAX_DEPTH - 1
    assert parse_xml(b"<alipay>" + b"<a>" * inner + b"</a>" * inner + b"</alipay>").tag == "alipay"


def test_too_many_elements_are_refused() -> None:
    body = b"<alipay>" + b"<x/>" * (MAX_ELEMENTS + 1) + b"</alipay>"
    with pytest.raises(ResponseError) as caught:
        parse_xml(body)
    assert caught.value.reason == "too_large"


def test_an_oversized_body_is_refused_before_parsing() -> None:
    body = sample_success(SAMPLE_SIGN)
    with pytest.raises(ResponseError, match="exceeds") as caught:
        parse_response(body, max_bytes=len(body) - 1)
    assert caught.value.reason == "too_large"
    assert parse_response(body, max_bytes=len(body)).is_success


def test_the_default_size_cap_refuses_a_megabyte() -> None:
    with pytest.raises(ResponseError, match="exceeds"):
        parse_response(b"<alipay>" + b" " * 1_000_000 + b"</alipay>")


# --- rendering (the emulator's side) round-trips --------------------------------------------

xml_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"),
    min_size=1, max_size=20,
)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True), xml_text,
                       min_size=1, max_size=5))
def test_a_rendered_success_parses_back_to_the_same_customer_and_verifies(
    customer: dict[str, str]
) -> None:
    customer = {"customer_code": "1118400000013", **customer}  # never empty in a success
    body = render_response(is_success=True, customer=customer, signer=Md5Signer(KEY))
    answer = parse_response(body, verifier=Md5Signer(KEY))
    assert answer.customer == customer and answer.verified


@given(st.sampled_from(["SYSTEM_ERROR", "ILLEGAL_SIGN", "UNKNOWN_&<>"]),
       st.sampled_from(["utf-8", "gbk"]))
def test_a_rendered_error_parses_back_and_verifies(error: str, charset: str) -> None:
    body = render_response(is_success=False, error=error, signer=Md5Signer(KEY), charset=charset)
    answer = parse_response(body, verifier=Md5Signer(KEY), charset=charset)
    assert (answer.is_success, answer.error, answer.verified) == (False, error, True)


# --- gaps that let the worker believe too much ------------------------------------------------


def signed_success(customer_xml: str, sign: str, *, extra: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>{extra}'
            f"{customer_xml}<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>").encode()


def test_a_customer_unsign_success_without_customer_is_refused() -> None:
    # the signature of a success covers <response><customer>; here it would cover other fields
    sign = md5_hex("charge_agent=F")
    body = signed_success("<charge_agent>F</charge_agent>", sign)
    with pytest.raises(ResponseError) as caught:
        parse_response(body, verifier=Md5Signer(KEY))
    assert "customer" in str(caught.value) and caught.value.reason == "malformed"
    # an empty <customer> (no customer_code, never empty per section 5.2) is no better
    with pytest.raises(ResponseError):
        parse_response(signed_success("<response><customer/></response>", md5_hex("")),
                       verifier=Md5Signer(KEY))


@pytest.mark.parametrize("twice", [
    pytest.param("<response><customer><customer_code>9</customer_code></customer></response>"
                 "<response><customer><customer_code>1</customer_code></customer></response>",
                 id="<response>"),
    pytest.param("<response><customer><customer_code>1</customer_code></customer>"
                 "<customer><customer_code>9</customer_code></customer></response>",
                 id="<customer>"),
    pytest.param("<response><customer><customer_code>9</customer_code>"
                 "<customer_code>1</customer_code></customer></response>", id="a customer field"),
    pytest.param("<request/><request/><response><customer><customer_code>1</customer_code>"
                 "</customer></response>", id="<request>"),
])
def test_a_block_given_twice_is_refused(twice: str) -> None:
    # whichever copy the signature covers, the other one could be what the worker reads
    body = signed_success(twice, md5_hex("customer_code=1"))
    with pytest.raises(ResponseError, match="twice") as caught:
        parse_response(body, verifier=Md5Signer(KEY))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("declared", ["utf-7", "latin-1", "utf-16", "punycode", "rot13",
                                      "shift_jis", "big5", "cp1252", "utf8"])
def test_only_the_gateway_charsets_may_be_declared(declared: str) -> None:
    body = (f'<?xml version="1.0" encoding="{declared}"?><alipay><is_success>F</is_success>'
            "<error>SYSTEM_ERROR</error></alipay>").encode("ascii")
    with pytest.raises(ResponseError, match="refused: the gateway answers in") as caught:
        parse_response(body)
    assert caught.value.reason == "encoding"


@pytest.mark.parametrize("declared", ["utf-8", "UTF-8", "gbk", "GBK", "gb2312", "GB2312",
                                      "gb18030", "GB18030"])
def test_the_gateway_charsets_are_read(declared: str) -> None:
    body = (f'<?xml version="1.0" encoding="{declared}"?><alipay><is_success>F</is_success>'
            "<error>业务</error></alipay>").encode("gb18030" if "18030" in declared else
                                                  "utf-8" if "8" in declared else "gbk")
    assert parse_response(body).error == "业务"


def gb2312_answer(customer_code: str, type_code: str) -> bytes:
    """A success declared gb2312 by a gateway that writes (and signs) it as GBK."""
    sign = md5_hex(f"customer_code={customer_code}&type_code={type_code}", "gbk")
    return ('<?xml version="1.0" encoding="gb2312"?><alipay><is_success>T</is_success>'
            f"<response><customer><customer_code>{customer_code}</customer_code>"
            f"<type_code>{type_code}</type_code></customer></response>"
            f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>").encode("gbk")


def test_a_gb2312_answer_with_a_middle_dot_verifies_with_the_codec_it_was_read_with() -> None:
    # '·' is GBK 0xA1A4; Python's strict gb2312 cannot encode it: the signed bytes are GBK's
    body = gb2312_answer("1118400000013", "李·雷")
    answer = parse_response(body, verifier=Md5Signer(KEY), charset="gb2312")
    assert answer.verified and answer.customer["type_code"] == "李·雷"


gbk_text = st.text(st.characters(codec="gbk", exclude_categories=("Cs", "Cc", "Zs")),
                   min_size=1, max_size=12).filter(lambda t: "<" not in t and "&" not in t
                                                   and t == t.strip())


@given(gbk_text)
def test_any_gbk_text_in_a_gb2312_answer_verifies(type_code: str) -> None:
    answer = parse_response(gb2312_answer("1", type_code), verifier=Md5Signer(KEY),
                            charset="gb2312")
    assert answer.verified and answer.customer["type_code"] == type_code


@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True), xml_text,
                       max_size=4), st.booleans())
def test_an_unsigned_success_is_never_a_success_with_a_verifier(customer: dict[str, str],
                                                                 with_query_shape: bool) -> None:
    # a forged answer: whatever it holds, without a signature it is no unsign
    fields = {"charge_agent": "F"} if with_query_shape else None
    body = render_response(is_success=True, customer=customer or None, fields=fields)
    with pytest.raises(ResponseError):
        parse_response(body, verifier=Md5Signer(KEY), trusted_channel=True)
