"""Signatures as the technical document defines them (section 7), written for the emulator.

- The string to sign: every parameter but ``sign`` and ``sign_type``, empty values left out,
  sorted by name, joined as ``name=value&...`` with the raw (never URL-encoded) values
  (7.1.2); it is turned into bytes with ``_input_charset``.
- MD5 (7.2.1): lower-case hex MD5 of the string followed directly by the 32-character key.
- RSA / DSA (7.2.2): the merchant signs requests with its private key; the gateway verifies
  them with the merchant's public key and signs its answers with Alipay's private key. The
  digest is SHA-1 (the MAPI gateway's SHA1withRSA, PKCS#1 v1.5, and SHA1withDSA with a DER
  signature), the signature is sent in base64.

Key material lives inside the key objects; their reprs never show it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from unsign_worker.emulator.errors import EmulatorConfigError

#: The three sign types, upper case as the document demands.
SIGN_TYPES = ("MD5", "RSA", "DSA")
#: Never part of the string to sign.
NOT_SIGNED = frozenset({"sign", "sign_type"})


def sign_string(params: Mapping[str, str]) -> str:
    """Section 7.1.2: ``_input_charset=GBK&customer_code=118400000013&partner=...``."""
    kept = sorted((k, v) for k, v in params.items() if k not in NOT_SIGNED and v)
    return "&".join(f"{name}={value}" for name, value in kept)


class SignKey:
    """What the gateway holds for one sign type: verifies requests, signs answers."""

    sign_type = ""

    def sign(self, data: bytes) -> str:
        raise NotImplementedError

    def verify(self, data: bytes, signature: str) -> bool:
        raise NotImplementedError


class Md5Key(SignKey):
    """The key the merchant and the gateway share."""

    sign_type = "MD5"

    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")

    def sign(self, data: bytes) -> str:
        return hashlib.md5(data + self._key).hexdigest()

    def verify(self, data: bytes, signature: str) -> bool:
        given = signature.encode("utf-8", errors="replace")
        return hmac.compare_digest(self.sign(data).encode("ascii"), given)

    def __repr__(self) -> str:
        return "Md5Key(key=<hidden>)"


class AsymmetricKey(SignKey):
    """The merchant's public key (verifies requests) and Alipay's private key (signs answers)."""

    def __init__(self, merchant_public: rsa.RSAPublicKey | dsa.DSAPublicKey,
                 alipay_private: rsa.RSAPrivateKey | dsa.DSAPrivateKey) -> None:
        self.merchant_public = merchant_public
        self.alipay_private = alipay_private
        self.sign_type = "RSA" if isinstance(alipay_private, rsa.RSAPrivateKey) else "DSA"

    def sign(self, data: bytes) -> str:
        key = self.alipay_private
        if isinstance(key, rsa.RSAPrivateKey):
            raw = key.sign(data, padding.PKCS1v15(), hashes.SHA1())
        else:
            raw = key.sign(data, hashes.SHA1())
        return base64.b64encode(raw).decode("ascii")

    def verify(self, data: bytes, signature: str) -> bool:
        try:
            raw = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        key = self.merchant_public
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(raw, data, padding.PKCS1v15(), hashes.SHA1())
            else:
                key.verify(raw, data, hashes.SHA1())
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"AsymmetricKey(sign_type={self.sign_type!r}, keys=<hidden>)"


def _pem(text: str | bytes, label: str) -> bytes:
    raw = text.encode("ascii", errors="replace") if isinstance(text, str) else text
    if b"-----BEGIN" not in raw:  # Alipay's tools hand out bare base64 keys
        raw = (b"-----BEGIN " + label + b"-----\n" + raw.strip()
               + b"\n-----END " + label + b"-----\n")
    return raw


def load_public(text: str | bytes, option: str) -> rsa.RSAPublicKey | dsa.DSAPublicKey:
    """An RSA or DSA public key from PEM (or bare base64). Raises: EmulatorConfigError."""
    try:
        key = serialization.load_pem_public_key(_pem(text, b"PUBLIC KEY"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EmulatorConfigError(f"{option}: not a readable PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        raise EmulatorConfigError(f"{option}: not an RSA or DSA public key")
    return key


def load_private(text: str | bytes, option: str) -> rsa.RSAPrivateKey | dsa.DSAPrivateKey:
    """An unencrypted RSA or DSA private key. Raises: EmulatorConfigError (no key text)."""
    try:
        key = serialization.load_pem_private_key(_pem(text, b"PRIVATE KEY"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EmulatorConfigError(f"{option}: not a readable unencrypted PEM private key"
                                  ) from None
    if not isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        raise EmulatorConfigError(f"{option}: not an RSA or DSA private key")
    return key


def asymmetric_key(merchant_public_pem: str | bytes, alipay_private_pem: str | bytes
                   ) -> AsymmetricKey:
    """Both keys, of the same kind. Raises: EmulatorConfigError naming the option."""
    public = load_public(merchant_public_pem, "--merchant-public-key")
    private = load_private(alipay_private_pem, "--alipay-private-key")
    if isinstance(public, rsa.RSAPublicKey) != isinstance(private, rsa.RSAPrivateKey):
        kind = "RSA" if isinstance(public, rsa.RSAPublicKey) else "DSA"
        raise EmulatorConfigError(f"--alipay-private-key: not a {kind} private key like the "
                                  "merchant public key")
    return AsymmetricKey(merchant_public=public, alipay_private=private)


def sign_fields(fields: Mapping[str, str], key: SignKey, charset: str) -> str:
    """The signature of ``fields`` (their string to sign encoded in ``charset``)."""
    return key.sign(sign_string(fields).encode(charset))


def verify_fields(fields: Mapping[str, str], signature: str, key: SignKey, charset: str) -> bool:
    """True if ``signature`` signs ``fields``; a string the charset cannot encode never does."""
    try:
        data = sign_string(fields).encode(charset)
    except UnicodeEncodeError:
        return False
    return key.verify(data, signature)
