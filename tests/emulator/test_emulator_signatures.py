"""The emulator's own signatures (technical document section 7) against answers computed here,
independently, with hashlib and cryptography."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.signatures import (
    Md5Key,
    asymmetric_key,
    sign_fields,
    sign_string,
    verify_fields,
)

KEY = "0123456789abcdefghijklmnopqrstuv"
#: Section 7.1.2's parameter array and the string it gives, byte for byte.
DOC_PARAMS = {"service": "customer_unsign", "partner": "2088101568338364",
              "_input_charset": "GBK", "customer_code": "118400000013"}
DOC_STRING = ("_input_charset=GBK&customer_code=118400000013&partner=2088101568338364"
              "&service=customer_unsign")
#: The query document's 6.1.2 example.
QUERY_PARAMS = {"service": "query_customer_protocol", "partner": "2088002464631181",
                "_input_charset": "utf-8", "biz_type": "10004"}
QUERY_STRING = ("_input_charset=utf-8&biz_type=10004&partner=2088002464631181"
                "&service=query_customer_protocol")
ZH = {"service": "customer_unsign", "partner": "2088101568338364", "_input_charset": "gbk",
      "biz_type": "10004", "user_email": "李雷@例子.公司"}


@pytest.mark.parametrize(("params", "expected"), [
    (DOC_PARAMS, DOC_STRING),
    (QUERY_PARAMS, QUERY_STRING),
    ({**DOC_PARAMS, "sign": "x", "sign_type": "MD5", "type_code": ""}, DOC_STRING),
    ({"email": "test@msn.com"}, "email=test@msn.com"),            # raw, never test%40msn.com
    ({"b": "1", "a_b": "2", "a": "3", "_x": "4"}, "_x=4&a=3&a_b=2&b=1"),
])
def test_the_string_to_sign_is_the_documents(params, expected):
    assert sign_string(params) == expected


@pytest.mark.parametrize(("params", "charset", "known"), [
    # computed once with hashlib.md5((string + KEY).encode(charset)).hexdigest()
    (DOC_PARAMS, "gbk", "4a12310d66c9caebc86eb4cf7b6c22e9"),
    (ZH, "gbk", "cdacb491bd38e96eaf867c7060b2145d"),
    (ZH, "utf-8", "f648db3dee6042bb2a384f8dad6b56b1"),
])
def test_md5_signatures_match_a_known_answer_table(params, charset, known):
    assert hashlib.md5((sign_string(params) + KEY).encode(charset)).hexdigest() == known
    assert sign_fields(params, Md5Key(KEY), charset) == known
    assert verify_fields(params, known, Md5Key(KEY), charset)


def test_md5_verification_refuses_upper_case_other_keys_and_other_charsets():
    key = Md5Key(KEY)
    good = sign_fields(ZH, key, "gbk")
    assert not verify_fields(ZH, good.upper(), key, "gbk")
    assert not verify_fields(ZH, good, Md5Key("x" * 32), "gbk")
    assert not verify_fields(ZH, good, key, "utf-8")
    assert not verify_fields({"user_email": "ü"}, good, key, "gb2312")  # not encodable
    assert not verify_fields(ZH, "签名", key, "gbk")


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_public(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem_private(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_rsa_is_sha1_with_rsa_pkcs1_v15_in_base64_both_ways():
    merchant, alipay = _rsa(), _rsa()
    pair = asymmetric_key(_pem_public(merchant), _pem_private(alipay))
    data = sign_string(ZH).encode("gbk")
    # the emulator's answer signature verifies with Alipay's public key, done here
    alipay.public_key().verify(base64.b64decode(pair.sign(data)), data, padding.PKCS1v15(),
                               hashes.SHA1())
    # PKCS#1 v1.5 is deterministic: the same bytes as signing here
    expected = base64.b64encode(alipay.sign(data, padding.PKCS1v15(), hashes.SHA1())).decode()
    assert pair.sign(data) == expected and pair.sign_type == "RSA"
    # a request signed here with the merchant's private key verifies; a changed one does not
    request_sign = base64.b64encode(merchant.sign(data, padding.PKCS1v15(), hashes.SHA1()))
    assert pair.verify(data, request_sign.decode())
    assert not pair.verify(data + b"x", request_sign.decode())
    assert not pair.verify(data, "not base64!")


def test_dsa_is_sha1_with_dsa_der_in_base64_both_ways():
    merchant = dsa.generate_private_key(key_size=2048)
    alipay = dsa.generate_private_key(key_size=2048)
    # bare base64 keys, as Alipay's tools hand them out, load too
    bare_public = b"".join(_pem_public(merchant).splitlines()[1:-1])
    pair = asymmetric_key(bare_public, _pem_private(alipay))
    data = sign_string(DOC_PARAMS).encode("gbk")
    signature = base64.b64decode(pair.sign(data))
    alipay.public_key().verify(signature, data, hashes.SHA1())
    with pytest.raises(InvalidSignature):
        alipay.public_key().verify(signature, data + b"x", hashes.SHA1())
    assert pair.sign_type == "DSA"
    assert pair.verify(data, base64.b64encode(merchant.sign(data, hashes.SHA1())).decode())
    assert not pair.verify(data, base64.b64encode(alipay.sign(data, hashes.SHA1())).decode())


def test_keys_of_different_kinds_or_unreadable_are_refused_without_their_text():
    with pytest.raises(EmulatorConfigError, match="not a RSA private key|not an RSA"):
        asymmetric_key(_pem_public(_rsa()), _pem_private(dsa.generate_private_key(2048)))
    with pytest.raises(EmulatorConfigError, match="--merchant-public-key") as info:
        asymmetric_key("secret-looking-garbage", _pem_private(_rsa()))
    assert "secret-looking-garbage" not in str(info.value)


def test_reprs_never_show_key_material():
    alipay = _rsa()
    pair = asymmetric_key(_pem_public(_rsa()), _pem_private(alipay))
    assert KEY not in repr(Md5Key(KEY))
    assert "PRIVATE" not in repr(pair) and "MII" not in repr(pair)
