"""The unsign request model: every rule of table 4-1 and the usage rules, and the identity."""

from __future__ import annotations

import pytest

from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.protocol.param_rules import validate_charset, validate_partner
from unsign_worker.protocol.params import (
    SERVICE,
    Identity,
    UnsignRequest,
    build_params,
    build_query_params,
)

PARTNER = "2088101568338364"
ACCOUNT = "20880020070189160156"  # user_id + 0156, the document's sample
OTHER_ACCOUNT = "20880099999999990156"
EMAIL = "maoamo@alipay.com"


def rules(request: UnsignRequest, charset: str = "utf-8") -> set[tuple[str, str]]:
    return {(e.field, e.rule) for e in request.errors(charset=charset)}


# --- valid forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(UnsignRequest(customer_code="118400000013"), id="customer_code alone"),
        pytest.param(UnsignRequest(type_code="BUSI003100021000301", trans_account_out=ACCOUNT),
                     id="type_code + trans_account_out"),
        pytest.param(UnsignRequest(biz_type="10004", user_email=EMAIL),
                     id="biz_type 10004 + user_email"),
        pytest.param(UnsignRequest(biz_type="10004", user_email="13800138000"),
                     id="biz_type 10004 + a phone-number login"),
        pytest.param(UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, biz_type="10004",
                                   user_email=EMAIL),
                     id="both pairs complete (the priorities agree on the CAE pair)"),
    ],
)
def test_valid_requests_of_each_agreement_form_pass_validation(request_: UnsignRequest) -> None:
    assert request_.errors(charset="utf-8") == []
    assert request_.validate(charset="gbk") is request_


def test_build_params_adds_service_partner_and_charset_and_drops_empty_values() -> None:
    request = UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, user_email="")
    params = build_params(request, partner=PARTNER, charset="gbk")
    assert params == {
        "service": SERVICE,
        "partner": PARTNER,
        "_input_charset": "gbk",
        "type_code": "BUSI1",
        "trans_account_out": ACCOUNT,
    }


# --- one failing case per rule -------------------------------------------------------------------

FAILING = [
    ("customer_code longer than 20", UnsignRequest(customer_code="1" * 21),
     "customer_code", "max_length"),
    ("type_code longer than 30", UnsignRequest(type_code="B" * 31, trans_account_out=ACCOUNT),
     "type_code", "max_length"),
    ("biz_type longer than 5", UnsignRequest(biz_type="100041", user_email=EMAIL),
     "biz_type", "max_length"),
    ("trans_account_out longer than 20",
     UnsignRequest(type_code="B", trans_account_out=ACCOUNT + "0"),
     "trans_account_out", "max_length"),
    ("user_email longer than 100",
     UnsignRequest(biz_type="10004", user_email="a" * 90 + "@alipay.com"),
     "user_email", "max_length"),
    ("a control character", UnsignRequest(customer_code="1184\n0013"),
     "customer_code", "no_control_chars"),
    ("a zero-width character", UnsignRequest(biz_type="10004", user_email="a\u200b@b.com"),
     "user_email", "no_control_chars"),
    ("leading white space", UnsignRequest(biz_type="10004", user_email=" " + EMAIL),
     "user_email", "no_edge_whitespace"),
    ("trailing white space", UnsignRequest(customer_code="118400000013 "),
     "customer_code", "no_edge_whitespace"),
    ("customer_code with punctuation", UnsignRequest(customer_code="1184&0013"),
     "customer_code", "format"),
    ("type_code with a Chinese character", UnsignRequest(type_code="业务1",
                                                         trans_account_out=ACCOUNT),
     "type_code", "format"),
    ("biz_type that is not digits", UnsignRequest(biz_type="1000A", user_email=EMAIL),
     "biz_type", "format"),
    ("biz_type in full-width digits", UnsignRequest(biz_type="１０００４", user_email=EMAIL),
     "biz_type", "format"),
    ("trans_account_out without the 0156 suffix",
     UnsignRequest(type_code="B", trans_account_out="20880020070189160157"),
     "trans_account_out", "format"),
    ("trans_account_out not starting with 2088",
     UnsignRequest(type_code="B", trans_account_out="10880020070189160156"),
     "trans_account_out", "format"),
    ("user_email with an inner space", UnsignRequest(biz_type="10004", user_email="a b@c.com"),
     "user_email", "format"),
    ("user_email too short to be a login", UnsignRequest(biz_type="10004", user_email="ab"),
     "user_email", "format"),
    ("neither customer_code nor type_code nor biz_type", UnsignRequest(trans_account_out=ACCOUNT),
     "type_code", "type_code_or_biz_type"),
    ("neither customer_code nor trans_account_out nor user_email",
     UnsignRequest(type_code="BUSI1"), "trans_account_out", "account_or_email"),
    ("type_code with only user_email (no complete pair)",
     UnsignRequest(type_code="BUSI1", user_email=EMAIL), "trans_account_out", "complete_pair"),
    ("biz_type with only trans_account_out (no complete pair)",
     UnsignRequest(biz_type="10004", trans_account_out=ACCOUNT), "user_email", "complete_pair"),
    ("biz_type + user_email with a biz_type other than 10004",
     UnsignRequest(biz_type="10003", user_email=EMAIL), "biz_type", "biz_type_10004"),
    ("both pairs complete with a biz_type other than 10004",
     UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, biz_type="10003",
                   user_email=EMAIL), "biz_type", "biz_type_10004"),
    ("all five, as in the document's sample 4.3 (customer_code names the agreement alone)",
     UnsignRequest(customer_code="118400000013", type_code="BUSI003100021000301",
                   biz_type="10003", trans_account_out=ACCOUNT, user_email=EMAIL),
     "type_code", "one_form"),
    ("customer_code beside user_email", UnsignRequest(customer_code="1", user_email=EMAIL),
     "user_email", "one_form"),
    ("trans_account_out beside biz_type + user_email (no type_code)",
     UnsignRequest(biz_type="10004", user_email=EMAIL, trans_account_out=ACCOUNT),
     "trans_account_out", "incomplete_pair"),
    ("type_code beside biz_type + user_email (no trans_account_out)",
     UnsignRequest(type_code="BUSI1", biz_type="10004", user_email=EMAIL),
     "type_code", "incomplete_pair"),
    ("user_email beside type_code + trans_account_out (no biz_type)",
     UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, user_email=EMAIL),
     "user_email", "incomplete_pair"),
    ("biz_type beside type_code + trans_account_out (no user_email)",
     UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, biz_type="10004"),
     "biz_type", "incomplete_pair"),
]


@pytest.mark.parametrize(
    ("request_", "field", "rule"),
    [pytest.param(r, f, rule, id=name) for name, r, f, rule in FAILING],
)
def test_each_rule_is_reported_with_its_field_and_rule(
    request_: UnsignRequest, field: str, rule: str
) -> None:
    assert (field, rule) in rules(request_)
    with pytest.raises(ValidationError) as caught:
        request_.validate(charset="utf-8")
    assert any((e.field, e.rule) == (field, rule) for e in caught.value.errors)
    # the message a human reads names the field and the rule
    assert field in str(caught.value) and f"[{rule}]" in str(caught.value)


def test_a_value_not_encodable_in_the_charset_is_refused_naming_the_charset() -> None:
    # Given a login with a character outside GB2312 but inside GBK and UTF-8
    request = UnsignRequest(biz_type="10004", user_email="\u9ed2@example.com")  # 黒 (Japanese)
    # Then gb2312 refuses it while utf-8 accepts it
    assert ("user_email", "charset") in rules(request, "gb2312")
    assert rules(request, "utf-8") == set()
    assert "gb2312" in next(e.message for e in request.errors(charset="gb2312"))


def test_an_emoji_cannot_be_sent_in_gbk() -> None:
    request = UnsignRequest(biz_type="10004", user_email="a\U0001f600@b.com")
    assert ("user_email", "charset") in rules(request, "gbk")


def test_validate_refuses_an_unknown_charset_before_looking_at_values() -> None:
    with pytest.raises(ValidationError) as caught:
        UnsignRequest(customer_code="1").validate(charset="latin-1")
    assert [(e.field, e.rule) for e in caught.value.errors] == [("_input_charset", "charset_known")]


def test_charsets_of_the_document_are_known_in_any_case() -> None:
    assert validate_charset("utf-8") == validate_charset("GBK") == validate_charset("gb2312") == []
    assert validate_charset("big5")[0].rule == "charset_known"


@pytest.mark.parametrize(
    ("partner", "rule"),
    [
        pytest.param("", "required", id="empty partner is required"),
        pytest.param("208810156833836", "format", id="15 digits"),
        pytest.param("20881015683383640", "format", id="17 digits"),
        pytest.param("1088101568338364", "format", id="not starting with 2088"),
        pytest.param("2088１01568338364", "format", id="a full-width digit"),
    ],
)
def test_partner_must_be_16_digits_starting_with_2088(partner: str, rule: str) -> None:
    assert [(e.field, e.rule) for e in validate_partner(partner)] == [("partner", rule)]


def test_a_valid_partner_passes() -> None:
    assert validate_partner(PARTNER) == []


def test_build_params_refuses_a_bad_partner_and_names_it() -> None:
    with pytest.raises(ValidationError, match=r"partner: .*\[format\]"):
        build_params(UnsignRequest(customer_code="1"), partner="12345", charset="utf-8")


def test_build_params_refuses_a_bad_request() -> None:
    with pytest.raises(ValidationError, match=r"\[account_or_email\]"):
        build_params(UnsignRequest(type_code="B"), partner=PARTNER, charset="utf-8")


def test_several_broken_rules_are_all_reported_at_once() -> None:
    request = UnsignRequest(customer_code="x" * 20 + "!", biz_type="abc")
    assert {("customer_code", "max_length"), ("customer_code", "format"),
            ("biz_type", "format")} <= rules(request)


# --- from_mapping ----------------------------------------------------------------------------


def test_from_mapping_builds_a_request_and_skips_none() -> None:
    request = UnsignRequest.from_mapping({"customer_code": "1184", "type_code": None})
    assert request == UnsignRequest(customer_code="1184")


def test_from_mapping_refuses_unknown_names_and_non_strings() -> None:
    with pytest.raises(ValidationError) as caught:
        UnsignRequest.from_mapping({"sign": "x", "customer_code": 1184})
    assert {(e.field, e.rule) for e in caught.value.errors} == {
        ("'sign'", "unknown_field"), ("customer_code", "type")
    }


# --- identity and priorities ------------------------------------------------------------------


def test_identity_of_a_customer_code_is_the_code() -> None:
    request = UnsignRequest(customer_code="118400000013")
    assert request.identity(PARTNER) == Identity(PARTNER, "customer_code", ("118400000013",))


def test_with_both_pairs_complete_the_priorities_pick_type_code_and_trans_account_out() -> None:
    request = UnsignRequest(type_code="BUSI1", biz_type="10004", trans_account_out=ACCOUNT,
                            user_email=EMAIL)
    assert request.identity(PARTNER) == Identity(PARTNER, "type_code", ("BUSI1", ACCOUNT))


@pytest.mark.parametrize("request_", [
    UnsignRequest(customer_code="118400000013", type_code="B", trans_account_out=ACCOUNT),
    UnsignRequest(biz_type="10004", user_email=EMAIL, trans_account_out=ACCOUNT),
    UnsignRequest(type_code="BUSI1", biz_type="10004", user_email=EMAIL),
    UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, user_email=EMAIL),
])
def test_a_request_that_mixes_forms_has_no_identity(request_: UnsignRequest) -> None:
    # the pairs issue 23 found (biz_type/trans_account_out, type_code/user_email) name nothing
    with pytest.raises(ValidationError, match=r"\[(one_form|incomplete_pair)\]"):
        request_.identity(PARTNER)


def test_biz_type_and_user_email_identify_a_partner_protocol_agreement() -> None:
    request = UnsignRequest(biz_type="10004", user_email="MaoAmo@Alipay.com")
    identity = request.identity(PARTNER)
    assert identity == Identity(PARTNER, "biz_type", ("10004", "maoamo@alipay.com"))
    assert request.is_partner_protocol


def test_the_same_agreement_written_differently_has_the_same_identity_key() -> None:
    # A complete partner pair beside the CAE pair, and the case of the login, do not change
    # which agreement it is
    a = UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT)
    b = UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT, biz_type="10004",
                      user_email=EMAIL)
    c = UnsignRequest(biz_type="10004", user_email="MAOAMO@alipay.com")
    d = UnsignRequest(biz_type="10004", user_email=EMAIL)
    assert a.identity(PARTNER).key == b.identity(PARTNER).key
    assert c.identity(PARTNER).key == d.identity(PARTNER).key


def test_different_agreements_or_partners_have_different_identity_keys() -> None:
    a = UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT).identity(PARTNER)
    b = UnsignRequest(type_code="BUSI1", trans_account_out=OTHER_ACCOUNT).identity(PARTNER)
    c = UnsignRequest(type_code="BUSI1", trans_account_out=ACCOUNT).identity("2088000000000001")
    assert len({a.key, b.key, c.key}) == 3


def test_identity_key_and_masked_form_hide_personal_data() -> None:
    identity = UnsignRequest(biz_type="10004", user_email=EMAIL).identity(PARTNER)
    assert "maoamo" not in identity.key and "maoamo" not in identity.identity_masked
    assert identity.identity_masked == "biz_type:10004/m***@alipay.com"
    assert str(identity) == identity.identity_masked
    account = UnsignRequest(type_code="B", trans_account_out=ACCOUNT).identity(PARTNER)
    assert account.identity_masked == "type_code:B/2088********0156"


def test_a_cae_request_is_not_a_partner_protocol_one() -> None:
    assert not UnsignRequest(type_code="B", trans_account_out=ACCOUNT, biz_type="10004",
                             user_email=EMAIL).is_partner_protocol
    assert not UnsignRequest(customer_code="1").is_partner_protocol


@pytest.mark.parametrize("request_", [
    UnsignRequest(biz_type="10004", user_email=EMAIL, trans_account_out=ACCOUNT),
    UnsignRequest(biz_type="10004", user_email=EMAIL, type_code="BUSI1"),
    UnsignRequest(biz_type="10004", user_email=EMAIL, customer_code="1"),
    UnsignRequest(biz_type="10003", user_email=EMAIL),
])
def test_only_exactly_biz_type_10004_and_user_email_is_confirmed_by_a_query(
        request_: UnsignRequest) -> None:
    # the confirming query checks the agreement the identity names, or none at all
    assert not request_.is_partner_protocol
    with pytest.raises(ValidationError, match="biz_type_10004"):
        build_query_params(request_, partner=PARTNER, charset="utf-8")


def test_masked_parameters_hide_email_and_account() -> None:
    masked = UnsignRequest(type_code="B", trans_account_out=ACCOUNT,
                           user_email=EMAIL).params_masked()
    assert masked == {"type_code": "B", "trans_account_out": "2088********0156",
                      "user_email": "m***@alipay.com"}


def test_query_params_exist_only_for_partner_protocol_agreements() -> None:
    params = build_query_params(UnsignRequest(biz_type="10004", user_email=EMAIL),
                                partner=PARTNER, charset="utf-8")
    assert params == {"service": "query_customer_protocol", "partner": PARTNER,
                      "_input_charset": "utf-8", "biz_type": "10004", "user_email": EMAIL}
    with pytest.raises(ValidationError, match="biz_type_10004"):
        build_query_params(UnsignRequest(customer_code="1"), partner=PARTNER, charset="utf-8")


@pytest.mark.parametrize("code", ["1118400000013", "C" * 20])
def test_a_customer_code_the_gateway_hands_out_is_accepted(code: str) -> None:
    # table 4-1 says String(12), but the answer table 5-1 says String(20) and the 5.3 sample
    # answers the 13-digit 1118400000013: a code copied from a real answer must go through
    request = UnsignRequest(customer_code=code).validate(charset="utf-8")
    assert build_params(request, partner=PARTNER, charset="utf-8")["customer_code"] == code
