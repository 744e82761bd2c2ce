"""The emulator's own reading of the parameter rules (table 4-1, usage rules 3 and 4)."""

from __future__ import annotations

import pytest

from unsign_worker.emulator.loopback import is_loopback
from unsign_worker.emulator.rules import argument_problems, identity

CODE = "118400000013"
TYPE = "BUSI003100021000301"
ACCOUNT = "20880020070189160156"
EMAIL = "maoamo@alipay.com"


@pytest.mark.parametrize("params", [
    {"customer_code": CODE},                                     # customer_code alone
    {"customer_code": "1118400000013"},                          # the answer sample's code
    {"customer_code": "C" * 20},                                 # String(20)
    {"type_code": TYPE, "trans_account_out": ACCOUNT},           # the CAE pair
    {"biz_type": "10004", "user_email": EMAIL},                  # the partner pair
    # both pairs complete: the priorities agree on type_code + trans_account_out
    {"type_code": TYPE, "trans_account_out": ACCOUNT, "biz_type": "10004", "user_email": EMAIL},
    {"type_code": TYPE, "trans_account_out": "12345"},           # no format is documented
    {"biz_type": "10004", "user_email": "13800138000"},          # a phone-number login
    {"biz_type": "10004", "user_email": " 李雷@例子.公司 "},
    {"customer_code": CODE, "user_email": ""},                   # empty = not sent
])
def test_what_the_documents_allow_is_accepted(params):
    assert argument_problems(params) == []


@pytest.mark.parametrize(("params", "why"), [
    ({}, "both empty"),
    ({"customer_code": ""}, "both empty"),
    ({"customer_code": "C" * 21}, "customer_code: longer than 20"),
    ({"type_code": TYPE}, "trans_account_out and user_email are both empty"),
    ({"trans_account_out": ACCOUNT}, "type_code and biz_type are both empty"),
    ({"type_code": TYPE, "user_email": EMAIL}, "neither"),
    ({"biz_type": "10004", "trans_account_out": ACCOUNT}, "neither"),
    ({"biz_type": "10003", "user_email": EMAIL}, "biz_type must be 10004"),
    ({"biz_type": "1004", "user_email": EMAIL}, "biz_type must be 10004"),
    # section 4.3's sample request: all five, biz_type 10003 beside a customer_code
    ({"customer_code": CODE, "type_code": TYPE, "biz_type": "10003",
      "trans_account_out": ACCOUNT, "user_email": EMAIL}, "customer_code names the agreement"),
    ({"customer_code": CODE, "type_code": TYPE}, "customer_code names the agreement alone"),
    ({"type_code": TYPE, "trans_account_out": ACCOUNT, "biz_type": "10003"},
     "biz_type: sent without the rest of biz_type + user_email"),
    ({"type_code": TYPE, "biz_type": "10004", "user_email": EMAIL},
     "type_code: sent without the rest of type_code + trans_account_out"),
    ({"type_code": TYPE, "trans_account_out": ACCOUNT, "biz_type": "10003",
      "user_email": EMAIL}, "biz_type must be 10004"),
    ({"type_code": "T" * 31, "trans_account_out": ACCOUNT}, "type_code: longer than 30"),
    ({"biz_type": "100040", "user_email": EMAIL}, "biz_type: longer than 5"),
    ({"type_code": TYPE, "trans_account_out": ACCOUNT + "1"}, "longer than 20"),
    ({"biz_type": "10004", "user_email": "a" * 101}, "user_email: longer than 100"),
])
def test_what_the_documents_forbid_is_an_illegal_argument(params, why):
    problems = argument_problems(params)
    assert problems and any(why in p for p in problems), problems


@pytest.mark.parametrize(("params", "expected"), [
    ({"customer_code": CODE, "type_code": ""}, ("customer_code", CODE)),
    ({"type_code": TYPE, "trans_account_out": ACCOUNT, "biz_type": "10004",
      "user_email": EMAIL}, ("type_code", TYPE, ACCOUNT)),   # both priorities at once
    ({"biz_type": "10004", "user_email": "MaoAmo@Alipay.com"}, ("biz_type", "10004", EMAIL)),
])
def test_the_identity_applies_the_usage_rules_priorities(params, expected):
    assert identity(params) == expected


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("0.0.0.0", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io", False), ("", False), ("::ffff:10.0.0.1", False),
])
def test_loopback_addresses(host, expected):
    assert is_loopback(host) is expected
