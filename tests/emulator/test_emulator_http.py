"""The emulator over real HTTP: the gateway's checks in order, the answers, GET/POST, charsets.

The answers are read with the worker's parser: two independent readings of the documents that
must agree. Error and query answers are unsigned by default, as in the documents' samples.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote, urlencode

import pytest

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer, make_signer, string_to_sign

CAE_1 = {"customer_code": "C00000000001"}
CAE_1_PAIR = {"type_code": "BUSI003100021000301", "trans_account_out": "20880020070189160156"}
PP_1 = {"biz_type": "10004", "user_email": "li.wei@example.com"}


def answer(emu: Emulator, params: dict[str, str], *, method: str = "POST",
           charset: str = "utf-8") -> tuple[bool, str, dict[str, str]]:
    """Send, parse and verify: (is_success, error code, customer block); a success is signed,
    an error is not (the defaults follow sample 5.3)."""
    resp = emu.send(params, method=method)
    assert resp.status_code == 200
    parsed = parse_response(resp.content, verifier=Md5Signer(emu.key), charset=charset)
    assert parsed.verified == parsed.is_success and bool(parsed.sign) == parsed.is_success
    return parsed.is_success, parsed.error, parsed.customer


def code_of(emu: Emulator, params: dict[str, str], **kwargs: str) -> str:
    ok, error, _ = answer(emu, params, **kwargs)
    return "T" if ok else error


def test_a_signed_unsign_of_a_signed_agreement_succeeds_and_unsigns_it(emulator):
    assert code_of(emulator, emulator.signed(**CAE_1)) == "T"
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_get_and_post_are_both_accepted(emulator, method):
    assert code_of(emulator, emulator.signed(**CAE_1), method=method) == "T"


def test_the_success_answer_has_the_exact_shape_and_signature_of_section_5_3(emulator):
    # Given a signed GET request naming cae-1 by customer_code
    params = emulator.signed(**CAE_1)
    # When it is sent
    body = emulator.send(params, method="GET").content
    # Then the answer echoes the parameters (not sign/sign_type), gives the customer block and
    # signs the customer block's children with the shared key
    echo = "".join(f'<param name="{k}">{v}</param>' for k, v in params.items()
                   if k not in ("sign", "sign_type"))
    signed = "customer_code=C00000000001&type_code=BUSI003100021000301"
    sign = hashlib.md5((signed + emulator.key).encode()).hexdigest()
    assert body.decode("utf-8") == (
        '<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>'
        f"<request>{echo}</request>"
        "<response><customer><customer_code>C00000000001</customer_code>"
        "<type_code>BUSI003100021000301</type_code></customer></response>"
        f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>")


def test_error_answers_are_unsigned_like_the_sample_of_section_5_3(emulator):
    body = emulator.send(emulator.signed(customer_code="C99999999999")).content
    assert body.decode() == ('<?xml version="1.0" encoding="utf-8"?><alipay>'
                             "<is_success>F</is_success><error>NOT_EXIST_CUST_SIGN</error>"
                             "</alipay>")


def test_signed_errors_when_asked_carry_a_signature_over_the_error_node(emulator):
    emulator.admin.set_options(sign_errors=True)
    body = emulator.send(emulator.signed(customer_code="C99999999999")).content
    sign = hashlib.md5(("error=NOT_EXIST_CUST_SIGN" + emulator.key).encode()).hexdigest()
    assert body.decode() == ('<?xml version="1.0" encoding="utf-8"?><alipay>'
                             "<is_success>F</is_success><error>NOT_EXIST_CUST_SIGN</error>"
                             f"<sign>{sign}</sign><sign_type>MD5</sign_type></alipay>")


def test_an_unconfigured_sign_type_is_never_answered_with_another_types_signature(emulator):
    # Given signed errors asked for, and a request of a sign type the emulator has no key for
    emulator.admin.set_options(sign_errors=True)
    params = emulator.signed(**CAE_1)
    params["sign_type"] = "RSA"
    # Then the refusal is unsigned: there is no RSA key to sign it, and MD5 would be a lie
    body = emulator.send(params).content.decode()
    assert body.endswith("<error>ILLEGAL_SECURITY_PROFILE</error></alipay>")
    assert "<sign" not in body


def test_an_unknown_service_is_refused_before_anything_else(emulator):
    params = emulator.signed(service="customer_unsign_v2", **CAE_1)
    params["partner"] = "2088000000000000"
    assert code_of(emulator, params) == "ILLEGAL_SERVICE"


def test_a_missing_service_is_an_illegal_service(emulator):
    params = emulator.signed(**CAE_1)
    del params["service"]
    assert code_of(emulator, params) == "ILLEGAL_SERVICE"


def test_another_partner_is_refused_before_the_sign_type_is_looked_at(emulator):
    params = emulator.signed(**CAE_1)
    params.update(partner="2088000000000000", sign_type="md5")
    assert code_of(emulator, params) == "ILLEGAL_PARTNER"


@pytest.mark.parametrize("sign_type", ["md5", "SHA256", ""])
def test_a_sign_type_other_than_md5_rsa_dsa_in_upper_case_is_refused(emulator, sign_type):
    params = emulator.signed(**CAE_1)
    params.update(sign_type=sign_type, _input_charset="latin-1")
    assert code_of(emulator, params, charset="utf-8") == "ILLEGAL_SIGN_TYPE"


def test_a_sign_type_without_a_configured_key_is_an_illegal_security_profile(emulator):
    params = emulator.signed(**CAE_1)
    params["sign_type"] = "RSA"
    assert code_of(emulator, params) == "ILLEGAL_SECURITY_PROFILE"


def test_an_unknown_charset_is_refused_before_the_signature_is_checked(emulator):
    params = emulator.signed(**CAE_1)
    params.update(_input_charset="latin-1", sign="0" * 32)
    assert code_of(emulator, params, charset="utf-8") == "ILLEGAL_CHARSET"


def test_a_request_without_input_charset_is_an_illegal_charset(emulator):
    params = {k: v for k, v in emulator.signed(**CAE_1).items() if k != "_input_charset"}
    resp = emulator.http.get(f"{emulator.url}?{urlencode(params)}", timeout=10)
    assert parse_response(resp.content, verifier=Md5Signer(emulator.key)).error == (
        "ILLEGAL_CHARSET")


def test_a_wrong_key_is_an_illegal_sign_even_with_bad_arguments(emulator):
    params = emulator.signed(customer_code="C0000000000123456")  # too long, too
    params["sign"] = make_signer("MD5", key="b" * 32).sign(
        string_to_sign(params).encode("utf-8"))
    assert code_of(emulator, params) == "ILLEGAL_SIGN"
    assert emulator.admin.stats()["bad_signatures"] == 1


def test_a_client_that_url_encodes_values_before_signing_gets_illegal_sign(emulator):
    # Given a client that signs the URL-encoded value (user_email=li.wei%40example.com)
    params = {"service": "customer_unsign", "partner": emulator.partner,
              "_input_charset": "utf-8", **PP_1}
    wrong = dict(params, user_email=quote(PP_1["user_email"], safe=""))
    params["sign"] = Md5Signer(emulator.key).sign(string_to_sign(wrong).encode("utf-8"))
    params["sign_type"] = "MD5"
    # Then the emulator, which decodes the wire value once, recomputes another signature
    assert code_of(emulator, params) == "ILLEGAL_SIGN"
    assert emulator.admin.agreement("pp-1")["status"] == "signed"


def test_a_value_changed_after_signing_is_an_illegal_sign(emulator):
    params = emulator.signed(**CAE_1)
    params["customer_code"] = "C00000000002"
    assert code_of(emulator, params) == "ILLEGAL_SIGN"
    assert emulator.admin.agreement("cae-2")["status"] == "signed"


@pytest.mark.parametrize("business", [
    {"customer_code": "C" + "0" * 20},                                # over String(20)
    {"type_code": "BUSI003100021000301"},                             # half a pair
    {"trans_account_out": "20880020070189160156", "biz_type": "10004"},
    {"biz_type": "10005", "user_email": "li.wei@example.com"},        # biz_type must be 10004
    {"trans_account_out": "20880020070189160156", "user_email": "x@example.com"},
    {"type_code": "B" * 31, "trans_account_out": "20880020070189160156"},
    {"user_email": "a" * 90 + "@example.com", "biz_type": "10004"},
    # two forms mixed (the request sample of section 4.3 sends all five identifiers)
    {"customer_code": "118400000013", "biz_type": "10003", "user_email": "maoamo@alipay.com"},
])
def test_correctly_signed_requests_that_break_a_parameter_rule_are_illegal_argument(
        emulator, business):
    assert code_of(emulator, emulator.signed(**business)) == "ILLEGAL_ARGUMENT"


@pytest.mark.parametrize("business", [
    {"customer_code": "1118400000013"},     # the answer sample's 13-digit code: String(20)
    {"type_code": "BUSI003100021000301", "trans_account_out": "20880020070189160157"},
])
def test_what_the_documents_do_not_forbid_is_looked_up_not_refused(emulator, business):
    # an account that is not user_id+0156 names no agreement
    assert code_of(emulator, emulator.signed(**business)) == "NOT_EXIST_CUST_SIGN"


def test_a_thirteen_digit_customer_code_handed_out_by_the_gateway_unsigns(emulator_factory):
    emu = emulator_factory(agreements=[{"id": "doc", "customer_code": "1118400000013",
                                        "type_code": "BUSI003100021000301"}])
    ok, _, customer = answer(emu, emu.signed(customer_code="1118400000013"))
    assert ok and customer == {"customer_code": "1118400000013",
                               "type_code": "BUSI003100021000301"}


def test_an_unknown_agreement_is_not_exist_cust_sign(emulator):
    assert code_of(emulator, emulator.signed(customer_code="C99999999999")) == (
        "NOT_EXIST_CUST_SIGN")


def test_an_agreement_loaded_as_unsigned_is_status_customer_sign(emulator):
    assert code_of(emulator, emulator.signed(customer_code="C00000000009")) == (
        "STATUS_CUSTOMER_SIGN")
    assert emulator.admin.stats()["after_success"] == 0


def test_a_second_unsign_of_the_same_agreement_is_status_customer_sign(emulator):
    assert code_of(emulator, emulator.signed(**CAE_1)) == "T"
    assert code_of(emulator, emulator.signed(**CAE_1_PAIR)) == "STATUS_CUSTOMER_SIGN"
    stats = emulator.admin.stats()
    assert (stats["unsigns"], stats["after_success"], stats["duplicates"]) == (1, 1, 0)


def test_the_type_code_and_account_pair_names_a_cae_agreement(emulator):
    ok, _, customer = answer(emulator, emulator.signed(**CAE_1_PAIR))
    assert ok and customer == {"customer_code": "C00000000001",
                               "type_code": "BUSI003100021000301"}


def test_customer_code_beside_another_identifier_is_refused_and_unsigns_nothing(emulator):
    # customer_code names the agreement alone (4.2 notes: one way or the other)
    params = emulator.signed(customer_code="C00000000002", type_code="BUSI003100021000302",
                             trans_account_out="20880020070189180156")
    assert code_of(emulator, params) == "ILLEGAL_ARGUMENT"
    assert emulator.admin.agreement("cae-2")["status"] == "signed"
    assert emulator.admin.agreement("cae-3")["status"] == "signed"


def test_type_code_beats_biz_type_and_trans_account_out_beats_user_email(emulator):
    params = emulator.signed(**CAE_1_PAIR, **PP_1)
    assert code_of(emulator, params) == "T"
    assert emulator.admin.agreement("cae-1")["status"] == "unsigned"
    assert emulator.admin.agreement("pp-1")["status"] == "signed"


def test_a_partner_protocol_agreement_is_found_by_biz_type_and_email_in_any_case(emulator):
    params = emulator.signed(biz_type="10004", user_email="Li.Wei@Example.com")
    assert code_of(emulator, params) == "T"
    assert emulator.admin.agreement("pp-1")["status"] == "unsigned"


@pytest.mark.parametrize("charset", ["utf-8", "gbk", "gb18030"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_chinese_values_are_decoded_with_the_declared_charset(emulator, charset, method):
    params = emulator.signed(charset=charset, biz_type="10004", user_email="李雷@例子.公司")
    resp = emulator.send(params, method=method)
    # the answer is declared utf-8 whatever the request's charset, as sample 5.3 (a GBK request)
    assert resp.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    parsed = parse_response(resp.content, verifier=Md5Signer(emulator.key), charset=charset)
    assert parsed.is_success and parsed.verified
    assert parsed.request["user_email"] == "李雷@例子.公司"
    assert emulator.admin.agreement("pp-zh")["status"] == "unsigned"


def test_the_charset_may_be_given_in_upper_case_and_is_echoed_as_given(emulator):
    params = emulator.signed(charset="GBK", **CAE_1)
    resp = emulator.send(params, charset="gbk")
    parsed = parse_response(resp.content, verifier=Md5Signer(emulator.key), charset="gbk")
    assert parsed.is_success and parsed.request["_input_charset"] == "GBK"


def test_bytes_sent_in_another_charset_than_declared_fail_the_signature(emulator):
    params = emulator.signed(charset="gbk", biz_type="10004", user_email="李雷@例子.公司")
    resp = emulator.send(params, charset="utf-8")  # declared gbk, encoded utf-8
    assert parse_response(resp.content, verifier=Md5Signer(emulator.key),
                          charset="gbk").error == "ILLEGAL_SIGN"


def query(emu: Emulator, **business: str) -> dict[str, str] | str:
    """A query answer, unsigned as the query document's answer table and sample."""
    resp = emu.send(emu.signed(service="query_customer_protocol", **business))
    assert b"<sign" not in resp.content
    parsed = parse_response(resp.content, service="query_customer_protocol")
    return parsed.fields if parsed.is_success else parsed.error


def test_query_customer_protocol_tells_a_signed_agreement_by_email(emulator):
    assert query(emulator, biz_type="10004", user_email="li.wei@example.com") == {
        "charge_agent": "T", "refund_charge": "F", "user_id": "2088102002723983"}


def test_query_customer_protocol_tells_an_unsigned_agreement_by_account_no(emulator):
    assert code_of(emulator, emulator.signed(**PP_1)) == "T"
    assert query(emulator, biz_type="10004", account_no="2088102002723983") == {
        "charge_agent": "F", "refund_charge": "F", "user_id": "2088102002723983"}


def test_the_query_answer_has_the_exact_shape_of_the_query_documents_sample(emulator):
    params = emulator.signed(service="query_customer_protocol", **PP_1)
    assert emulator.send(params).content.decode() == (
        '<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>'
        "<charge_agent>T</charge_agent><refund_charge>F</refund_charge>"
        "<user_id>2088102002723983</user_id></alipay>")


def test_signed_query_answers_when_asked_sign_every_returned_parameter(emulator):
    # query document 6.1.1: every returned parameter but sign/sign_type is signed
    emulator.admin.set_options(sign_query=True)
    params = emulator.signed(service="query_customer_protocol", **PP_1)
    body = emulator.send(params).content.decode()
    signed = "charge_agent=T&is_success=T&refund_charge=F&user_id=2088102002723983"
    assert body.endswith(f"<sign>{hashlib.md5((signed + emulator.key).encode()).hexdigest()}"
                         "</sign><sign_type>MD5</sign_type></alipay>")
    params = emulator.signed(service="query_customer_protocol", biz_type="10004",
                             user_email="nobody@example.com")
    body = emulator.send(params).content.decode()
    signed = "error=NO_SIGN_CUSTOMER&is_success=F"
    assert f"<sign>{hashlib.md5((signed + emulator.key).encode()).hexdigest()}</sign>" in body


@pytest.mark.parametrize(("business", "code"), [
    ({"biz_type": "10004", "user_email": "nobody@example.com"}, "NO_SIGN_CUSTOMER"),
    ({"biz_type": "10003", "user_email": "li.wei@example.com"}, "ILLEGAL_BIZ_TPYE"),
    ({"biz_type": "10004"}, "NULL_EMAIL_AND_ACCOUNT_NO"),
    ({"biz_type": "10004", "account_no": "1234"}, "ILLEGAL_ACCOUNT_NO"),
])
def test_query_customer_protocol_refusals_use_its_own_codes(emulator, business, code):
    assert query(emulator, **business) == code


def test_a_query_does_not_count_as_an_unsign_request(emulator):
    query(emulator, **PP_1)
    stats = emulator.admin.stats()
    assert (stats["query_requests"], stats["unsign_requests"], stats["unsigns"]) == (1, 0, 0)


def _keypair(sign_type: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa

    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if sign_type == "RSA"
           else dsa.generate_private_key(key_size=2048))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.mark.parametrize("sign_type", ["RSA", "DSA"])
def test_asymmetric_requests_are_verified_with_the_merchant_key_and_answers_signed_as_alipay(
        emulator_factory: EmulatorFactory, sign_type):
    # Given an emulator holding the merchant's public key and an "Alipay" private key
    merchant_private, merchant_public = _keypair(sign_type)
    alipay_private, alipay_public = _keypair(sign_type)
    emu = emulator_factory(merchant_public_key_pem=merchant_public,
                           alipay_private_key_pem=alipay_private)
    emu.signers[sign_type] = make_signer(sign_type, private_key_pem=merchant_private)
    # When the merchant signs with its private key
    resp = emu.send(emu.signed(sign_type=sign_type, **CAE_1))
    # Then the answer verifies with Alipay's public key
    parsed = parse_response(resp.content,
                            verifier=make_signer(sign_type, public_key_pem=alipay_public))
    assert parsed.is_success and parsed.verified and parsed.sign_type == sign_type
    # And a request signed with another private key is refused
    other_private, _ = _keypair(sign_type)
    emu.signers[sign_type] = make_signer(sign_type, private_key_pem=other_private)
    resp = emu.send(emu.signed(sign_type=sign_type, customer_code="C00000000002"))
    assert parse_response(resp.content).error == "ILLEGAL_SIGN"


def test_md5_still_works_beside_rsa(emulator_factory: EmulatorFactory):
    merchant_private, merchant_public = _keypair("RSA")
    alipay_private, _ = _keypair("RSA")
    emu = emulator_factory(merchant_public_key_pem=merchant_public,
                           alipay_private_key_pem=alipay_private)
    assert code_of(emu, emu.signed(**CAE_1)) == "T"
