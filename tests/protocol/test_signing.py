"""Signing (section 7): the string to sign, MD5 known answers, RSA and DSA round trips."""

from __future__ import annotations

import base64
import hashlib
import warnings
from urllib.parse import parse_qs, urlencode

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.signing import (
    DsaSigner,
    Md5Signer,
    RsaSigner,
    make_signer,
    sign_params,
    sign_string,
    string_to_sign,
    verify_params,
)

KEY = "0123456789abcdefghijklmnopqrstuv"  # 32 letters and digits, like a real MD5 key
PARTNER = "2088101568338364"


def md5_hex(text: str, charset: str) -> str:
    """The rule of section 7.2.1, written independently of the code under test."""
    return hashlib.md5((text + KEY).encode(charset)).hexdigest()


# --- the string to sign ----------------------------------------------------------------------


def test_string_to_sign_matches_the_document_example_of_section_7_1_2() -> None:
    params = {
        "service": "customer_unsign",
        "partner": PARTNER,
        "_input_charset": "GBK",
        "customer_code": "118400000013",
    }
    assert string_to_sign(params) == (
        "_input_charset=GBK&customer_code=118400000013&partner=2088101568338364"
        "&service=customer_unsign"
    )


def test_string_to_sign_uses_raw_values_never_url_encoded() -> None:
    assert string_to_sign({"email": "test@msn.com"}) == "email=test@msn.com"


def test_sign_and_sign_type_and_empty_values_are_left_out() -> None:
    params = {"b": "2", "a": "1", "sign": "abc", "sign_type": "MD5", "c": ""}
    assert string_to_sign(params) == "a=1&b=2"


# --- MD5 known answers ----------------------------------------------------------------------

MD5_CASES = [
    pytest.param(
        {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "utf-8",
         "customer_code": "118400000013"},
        "_input_charset=utf-8&customer_code=118400000013&partner=2088101568338364"
        "&service=customer_unsign",
        "utf-8", id="plain ascii in utf-8"),
    pytest.param(
        {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "utf-8",
         "biz_type": "10004", "user_email": "张三 a&b=c%20d@例子.com"},
        "_input_charset=utf-8&biz_type=10004&partner=2088101568338364&service=customer_unsign"
        "&user_email=张三 a&b=c%20d@例子.com",
        "utf-8", id="Chinese, &, @, =, % and a space in utf-8"),
    pytest.param(
        {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "gbk",
         "biz_type": "10004", "user_email": "张三 a&b=c%20d@例子.com"},
        "_input_charset=gbk&biz_type=10004&partner=2088101568338364&service=customer_unsign"
        "&user_email=张三 a&b=c%20d@例子.com",
        "gbk", id="the same values in gbk"),
    pytest.param(
        {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "gbk",
         "type_code": "BUSI003100021000301", "trans_account_out": "20880020070189160156",
         "sign": "stale", "sign_type": "MD5"},
        "_input_charset=gbk&partner=2088101568338364&service=customer_unsign"
        "&trans_account_out=20880020070189160156&type_code=BUSI003100021000301",
        "gbk", id="a CAE pair, with a stale sign ignored"),
]


@pytest.mark.parametrize(("params", "expected_string", "charset"), MD5_CASES)
def test_md5_sign_is_the_lower_hex_md5_of_string_plus_key_in_the_charset(
    params: dict[str, str], expected_string: str, charset: str
) -> None:
    text, signature = sign_string(params, Md5Signer(KEY), charset)
    assert text == expected_string
    assert signature == md5_hex(expected_string, charset)
    assert signature == signature.lower() and len(signature) == 32


def test_utf8_and_gbk_give_different_signatures_for_chinese_values() -> None:
    params = {"user_email": "张三@例子.com"}
    assert sign_string(params, Md5Signer(KEY), "utf-8")[1] != sign_string(
        params, Md5Signer(KEY), "gbk")[1]


def test_md5_verifies_its_own_signature_in_either_case_and_refuses_others() -> None:
    signer = Md5Signer(KEY)
    params = {"partner": PARTNER, "customer_code": "1"}
    signature = sign_params(params, signer, "utf-8")["sign"]
    assert verify_params(params, signature, signer, "utf-8")
    assert verify_params(params, signature.upper(), signer, "utf-8")
    assert not verify_params({**params, "customer_code": "2"}, signature, signer, "utf-8")
    assert not verify_params(params, signature, Md5Signer("x" * 32), "utf-8")
    assert not verify_params(params, "", signer, "utf-8")


def test_md5_verification_of_a_non_ascii_signature_is_a_plain_no() -> None:
    assert Md5Signer(KEY).verify(b"a=1", "签名不正确") is False


def test_a_value_the_charset_cannot_encode_never_verifies() -> None:
    signer = Md5Signer(KEY)
    assert not verify_params({"a": "\U0001f600"}, md5_hex("a=\U0001f600", "utf-8"), signer, "gbk")
    assert not verify_params({"a": "1"}, md5_hex("a=1", "utf-8"), signer, "no-such-charset")


def test_md5_without_a_key_cannot_sign_and_never_verifies() -> None:
    signer = Md5Signer("")
    assert not signer.can_sign and not signer.can_verify
    with pytest.raises(ConfigError, match="ALIPAY_KEY"):
        signer.sign(b"a=1")
    assert signer.verify(b"a=1", md5_hex("a=1", "utf-8")) is False


def test_sign_params_adds_sign_and_sign_type_and_replaces_a_stale_sign() -> None:
    signed = sign_params({"a": "1", "sign": "old", "sign_type": "RSA"}, Md5Signer(KEY), "utf-8")
    assert signed == {"a": "1", "sign": md5_hex("a=1", "utf-8"), "sign_type": "MD5"}


def test_signer_reprs_never_show_key_material() -> None:
    assert KEY not in repr(Md5Signer(KEY))
    assert "BEGIN" not in repr(make_signer("RSA", private_key_pem=_pem_private(_rsa_key())))


# --- RSA and DSA -----------------------------------------------------------------------------


def _pem_private(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey,
                 fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _pem_public(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


_KEYS: dict[str, object] = {}


def _rsa_key(name: str = "rsa") -> rsa.RSAPrivateKey:
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = _KEYS[name]
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _dsa_key(name: str = "dsa") -> dsa.DSAPrivateKey:
    if name not in _KEYS:  # 1024 bits: the size the legacy gateway's SHA1withDSA keys have
        _KEYS[name] = dsa.generate_private_key(key_size=1024)
    key = _KEYS[name]
    assert isinstance(key, dsa.DSAPrivateKey)
    return key


PARAMS = {"service": "customer_unsign", "partner": PARTNER, "_input_charset": "gbk",
          "biz_type": "10004", "user_email": "张三@例子.com"}


def test_rsa_signature_is_sha1withrsa_pkcs1v15_in_base64() -> None:
    key = _rsa_key()
    text, signature = sign_string(PARAMS, make_signer("RSA", private_key_pem=_pem_private(key)),
                                  "gbk")
    # verified with cryptography directly, not with the code under test
    key.public_key().verify(base64.b64decode(signature), text.encode("gbk"), padding.PKCS1v15(),
                            hashes.SHA1())


def test_dsa_signature_is_sha1withdsa_der_in_base64() -> None:
    key = _dsa_key()
    text, signature = sign_string(PARAMS, make_signer("DSA", private_key_pem=_pem_private(key)),
                                  "gbk")
    key.public_key().verify(base64.b64decode(signature), text.encode("gbk"), hashes.SHA1())


def test_dsa_keys_load_sign_and_verify_without_a_deprecation_warning() -> None:
    # cryptography 51 deprecates DSA; a merchant on sign_type DSA must not see it per process
    key = _dsa_key()
    private, public = _pem_private(key), _pem_public(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signer = make_signer("DSA", private_key_pem=private, public_key_pem=public)
        assert signer.verify(b"text", signer.sign(b"text"))


@pytest.mark.parametrize(("sign_type", "make_key"), [("RSA", _rsa_key), ("DSA", _dsa_key)])
def test_asymmetric_round_trip_verifies_and_refuses_wrong_key_and_tampering(
    sign_type: str, make_key: object
) -> None:
    # Given a merchant key pair and another, unrelated one
    assert callable(make_key)
    mine, other = make_key(), make_key(f"{sign_type}-other")
    signer = make_signer(sign_type, private_key_pem=_pem_private(mine))
    verifier = make_signer(sign_type, public_key_pem=_pem_public(mine))
    stranger = make_signer(sign_type, public_key_pem=_pem_public(other))
    # When the parameters are signed
    signature = sign_params(PARAMS, signer, "gbk")["sign"]
    # Then only the matching public key verifies them, and only unchanged
    assert verify_params(PARAMS, signature, verifier, "gbk")
    assert not verify_params(PARAMS, signature, stranger, "gbk")
    assert not verify_params({**PARAMS, "user_email": "李四@例子.com"}, signature, verifier, "gbk")
    raw = bytearray(base64.b64decode(signature))
    raw[len(raw) // 2] ^= 0x01
    assert not verify_params(PARAMS, base64.b64encode(bytes(raw)).decode(), verifier, "gbk")
    assert not verify_params(PARAMS, "not base64!", verifier, "gbk")
    assert not verify_params(PARAMS, "", verifier, "gbk")
    # And the same bytes in another charset do not verify (the charset is part of the contract)
    assert not verify_params(PARAMS, signature, verifier, "utf-8")


def test_rsa_keys_load_from_pkcs1_pem_and_bare_base64() -> None:
    key = _rsa_key()
    pkcs1 = _pem_private(key, serialization.PrivateFormat.TraditionalOpenSSL)
    bare_private = b"".join(_pem_private(key).splitlines()[1:-1])
    bare_public = b"".join(_pem_public(key).splitlines()[1:-1])  # as Alipay hands it out
    verifier = RsaSigner(public_key_pem=bare_public)
    for pem in (pkcs1, bare_private, pkcs1.decode("ascii")):
        signature = sign_params({"a": "1"}, RsaSigner(private_key_pem=pem), "utf-8")["sign"]
        assert verify_params({"a": "1"}, signature, verifier, "utf-8")


def test_signers_report_what_they_can_do() -> None:
    key = _dsa_key()
    only_private = DsaSigner(private_key_pem=_pem_private(key))
    only_public = DsaSigner(public_key_pem=_pem_public(key))
    assert only_private.can_sign and not only_private.can_verify
    assert only_public.can_verify and not only_public.can_sign
    assert only_public.verify(b"a=1", "AAAA") is False
    with pytest.raises(ConfigError, match="ALIPAY_PRIVATE_KEY_FILE"):
        only_public.sign(b"a=1")


def test_a_private_key_of_the_wrong_type_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ALIPAY_PRIVATE_KEY_FILE: the key is not a DSA key"):
        make_signer("DSA", private_key_pem=_pem_private(_rsa_key()))


def test_a_public_key_of_the_wrong_type_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ALIPAY_PUBLIC_KEY_FILE: the key is not a RSA key"):
        make_signer("RSA", public_key_pem=_pem_public(_dsa_key()))


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                     id="garbage inside PEM armour"),
        pytest.param("私钥", id="non-ascii text"),
        pytest.param(None, id="an encrypted key"),
    ],
)
def test_an_unreadable_private_key_is_refused_without_showing_it(pem: bytes | str | None) -> None:
    if pem is None:
        pem = _rsa_key().private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ConfigError) as caught:
        make_signer("RSA", private_key_pem=pem)
    assert str(caught.value).startswith("ALIPAY_PRIVATE_KEY_FILE: not a readable")
    assert "AAAA" not in str(caught.value) and "私钥" not in str(caught.value)


def test_an_unreadable_public_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ALIPAY_PUBLIC_KEY_FILE: not a readable"):
        make_signer("RSA", public_key_pem="not a key")


@pytest.mark.parametrize("sign_type", ["md5", "SHA256", ""])
def test_an_unknown_or_lower_case_sign_type_is_refused(sign_type: str) -> None:
    with pytest.raises(ConfigError, match=r"ALIPAY_SIGN_TYPE: .* \(upper case\)"):
        make_signer(sign_type, key=KEY)


def test_the_independent_rsa_check_itself_can_fail() -> None:
    # guards the known-answer test above: a different message must not verify
    key = _rsa_key()
    _, signature = sign_string({"a": "1"}, RsaSigner(private_key_pem=_pem_private(key)), "utf-8")
    with pytest.raises(InvalidSignature):
        key.public_key().verify(base64.b64decode(signature), b"a=2", padding.PKCS1v15(),
                                hashes.SHA1())


# --- properties ----------------------------------------------------------------------------

names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
    lambda n: n not in ("sign", "sign_type"))
values = st.text(min_size=1, max_size=20)


@given(st.dictionaries(names, values, max_size=8), st.randoms(use_true_random=False))
def test_string_to_sign_does_not_depend_on_parameter_order(
    params: dict[str, str], rnd: object
) -> None:
    items = list(params.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert string_to_sign(dict(items)) == string_to_sign(params)


@given(
    st.dictionaries(names, st.text(alphabet=st.characters(exclude_characters="&"), min_size=1,
                                   max_size=20), max_size=8),
    st.sets(names, max_size=4),
    st.text(max_size=10),
    st.text(max_size=10),
)
def test_empty_values_and_sign_and_sign_type_never_enter_the_string(
    params: dict[str, str], empty_names: set[str], sign: str, sign_type: str
) -> None:
    noisy = {**{n: "" for n in empty_names}, **params, "sign": sign, "sign_type": sign_type}
    text = string_to_sign(noisy)
    assert text == string_to_sign(params)
    entered = {part.partition("=")[0] for part in text.split("&")} if text else set()
    assert entered == set(params)


def wire_text(charset: str) -> st.SearchStrategy[str]:
    interesting = st.sampled_from(list("&@=%+ #?/;\\张三例子中文\n"))
    return st.text(st.one_of(st.characters(codec=charset), interesting), min_size=1, max_size=30)


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_url_encoding_on_the_wire_round_trips_to_the_raw_values(charset: str) -> None:
    @given(st.dictionaries(names, wire_text(charset), min_size=1, max_size=6))
    def round_trip(params: dict[str, str]) -> None:
        # When the parameters are form-encoded in the charset and decoded by the receiver
        body = urlencode(params, encoding=charset)
        received = parse_qs(body, encoding=charset, errors="strict", keep_blank_values=True)
        # Then the receiver sees the raw values, and computes the same string to sign
        assert {k: v[0] for k, v in received.items()} == params
        assert all(len(v) == 1 for v in received.values())
        assert string_to_sign({k: v[0] for k, v in received.items()}) == string_to_sign(params)
        assert body.isascii()

    round_trip()


@given(st.dictionaries(names, wire_text("gbk"), max_size=6))
def test_md5_signatures_verify_for_any_gbk_text(params: dict[str, str]) -> None:
    signer = Md5Signer(KEY)
    signed = sign_params(params, signer, "gbk")
    assert signed["sign"] == md5_hex(string_to_sign(params), "gbk")
    assert verify_params(signed, signed["sign"], signer, "gbk")
