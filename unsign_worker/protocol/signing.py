"""Signing and verification (technical document section 7). Pure: no I/O, no globals.

1. Every parameter except ``sign`` and ``sign_type``; parameters with empty values dropped.
2. Sorted by name; joined as ``name=value&...`` with the RAW values (never URL-encoded).
3. The string is encoded in ``_input_charset`` before hashing or signing.
4. MD5: lower-case hex MD5 of ``string + key``. RSA: SHA1withRSA (PKCS#1 v1.5), base64.
   DSA: SHA1withDSA, DER signature, base64.

A signer holds the key material it needs; its repr never shows it. The same classes serve both
sides: the worker signs with the merchant's private key and verifies with Alipay's public key;
the emulator does the opposite.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import warnings
from collections.abc import Iterator, Mapping
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from unsign_worker.protocol.exceptions import ConfigError


@contextlib.contextmanager
def _dsa_quietly() -> Iterator[None]:
    """Silence cryptography's DSA deprecation (51 and newer warn on every key class use and DSA
    key load). Alipay's MAPI still offers sign_type DSA, so a merchant whose contract uses it
    keeps working, and ``check-config`` tells the operator once instead. Used only at import
    and while loading keys (start-up), as ``catch_warnings`` is process-wide."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DSA is deprecated",
                                category=CryptographyDeprecationWarning)
        yield


with _dsa_quietly():
    from cryptography.hazmat.primitives.asymmetric.dsa import DSAPrivateKey, DSAPublicKey

#: Parameters that never enter the string to sign.
UNSIGNED_PARAMS = frozenset({"sign", "sign_type"})


def string_to_sign(params: Mapping[str, str]) -> str:
    """The string to sign: non-empty params but sign/sign_type, sorted, raw, joined by ``&``."""
    items = sorted(
        (name, value) for name, value in params.items()
        if name not in UNSIGNED_PARAMS and value not in (None, "")
    )
    return "&".join(f"{name}={value}" for name, value in items)


class Signer(Protocol):
    """What signing and verifying need; ``sign_type`` is ``MD5``, ``RSA`` or ``DSA``."""

    sign_type: str

    @property
    def can_sign(self) -> bool: ...

    @property
    def can_verify(self) -> bool: ...

    def sign(self, data: bytes) -> str: ...

    def verify(self, data: bytes, signature: str) -> bool: ...


class Md5Signer:
    """MD5 with the merchant's 32-character key (shared by both sides)."""

    sign_type = "MD5"

    def __init__(self, key: str) -> None:
        self._key = key.encode("ascii", errors="strict") if key.isascii() else key.encode()

    @property
    def can_sign(self) -> bool:
        return bool(self._key)

    @property
    def can_verify(self) -> bool:
        return bool(self._key)

    def sign(self, data: bytes) -> str:
        if not self._key:
            raise ConfigError("ALIPAY_KEY: an MD5 key is required to sign")
        return hashlib.md5(data + self._key).hexdigest()

    def verify(self, data: bytes, signature: str) -> bool:
        if not self._key:
            return False
        # compare bytes: compare_digest refuses str with non-ASCII characters (a forged answer
        # may carry any text in <sign>), and a refusal must read as "does not verify"
        given = signature.strip().lower().encode("utf-8", errors="replace")
        return hmac.compare_digest(self.sign(data).encode("ascii"), given)

    def __repr__(self) -> str:
        return "Md5Signer(key='********')"


class _AsymmetricSigner:
    sign_type = ""

    def __init__(self, *, private_key_pem: str | bytes | None = None,
                 public_key_pem: str | bytes | None = None) -> None:
        self._private = _load_private(private_key_pem, self.sign_type) if private_key_pem else None
        self._public = _load_public(public_key_pem, self.sign_type) if public_key_pem else None

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    @property
    def can_verify(self) -> bool:
        return self._public is not None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(private_key={'********' if self._private else None}, "
                f"public_key={'set' if self._public else None})")


class RsaSigner(_AsymmetricSigner):
    """SHA1withRSA, PKCS#1 v1.5, base64 — what the legacy MAPI gateway uses."""

    sign_type = "RSA"

    def sign(self, data: bytes) -> str:
        if self._private is None:
            raise ConfigError("ALIPAY_PRIVATE_KEY_FILE: a private key is required to sign")
        assert isinstance(self._private, rsa.RSAPrivateKey)
        raw = self._private.sign(data, padding.PKCS1v15(), hashes.SHA1())
        return base64.b64encode(raw).decode("ascii")

    def verify(self, data: bytes, signature: str) -> bool:
        if self._public is None:
            return False
        assert isinstance(self._public, rsa.RSAPublicKey)
        try:
            self._public.verify(_b64(signature), data, padding.PKCS1v15(), hashes.SHA1())
        except (InvalidSignature, ValueError):
            return False
        return True


class DsaSigner(_AsymmetricSigner):
    """SHA1withDSA, DER-encoded signature, base64."""

    sign_type = "DSA"

    def sign(self, data: bytes) -> str:
        if self._private is None:
            raise ConfigError("ALIPAY_PRIVATE_KEY_FILE: a private key is required to sign")
        assert isinstance(self._private, DSAPrivateKey)
        return base64.b64encode(self._private.sign(data, hashes.SHA1())).decode("ascii")

    def verify(self, data: bytes, signature: str) -> bool:
        if self._public is None:
            return False
        assert isinstance(self._public, DSAPublicKey)
        try:
            self._public.verify(_b64(signature), data, hashes.SHA1())
        except (InvalidSignature, ValueError):
            return False
        return True


def _b64(signature: str) -> bytes:
    try:
        return base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _as_bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def _load_private(pem: str | bytes, sign_type: str) -> object:
    try:
        raw = _as_bytes(pem)
        if b"BEGIN" not in raw:  # Alipay's key tool writes bare base64 PKCS#8 private keys
            raw = (b"-----BEGIN PRIVATE KEY-----\n" + raw.strip()
                   + b"\n-----END PRIVATE KEY-----\n")
        with _dsa_quietly():
            key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ConfigError("ALIPAY_PRIVATE_KEY_FILE: not a readable unencrypted PEM private key"
                          ) from None
    expected = rsa.RSAPrivateKey if sign_type == "RSA" else DSAPrivateKey
    if not isinstance(key, expected):
        raise ConfigError(f"ALIPAY_PRIVATE_KEY_FILE: the key is not a {sign_type} key, but "
                          f"ALIPAY_SIGN_TYPE is {sign_type}")
    return key


def _load_public(pem: str | bytes, sign_type: str) -> object:
    try:
        raw = _as_bytes(pem)
        if b"BEGIN" not in raw:  # Alipay hands out bare base64 public keys
            raw = (b"-----BEGIN PUBLIC KEY-----\n" + raw.strip() + b"\n-----END PUBLIC KEY-----\n")
        with _dsa_quietly():
            key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ConfigError("ALIPAY_PUBLIC_KEY_FILE: not a readable PEM public key") from None
    expected = rsa.RSAPublicKey if sign_type == "RSA" else DSAPublicKey
    if not isinstance(key, expected):
        raise ConfigError(f"ALIPAY_PUBLIC_KEY_FILE: the key is not a {sign_type} key, but "
                          f"ALIPAY_SIGN_TYPE is {sign_type}")
    return key


def make_signer(sign_type: str, *, key: str = "", private_key_pem: str | bytes | None = None,
                public_key_pem: str | bytes | None = None) -> Signer:
    """A signer for ``sign_type`` (upper case, as the gateway demands).

    Raises:
        ConfigError: unknown sign type, or key material that does not load or match.
    """
    if sign_type == "MD5":
        return Md5Signer(key)
    if sign_type == "RSA":
        return RsaSigner(private_key_pem=private_key_pem, public_key_pem=public_key_pem)
    if sign_type == "DSA":
        return DsaSigner(private_key_pem=private_key_pem, public_key_pem=public_key_pem)
    raise ConfigError(f"ALIPAY_SIGN_TYPE: {sign_type!r} is not MD5, RSA or DSA (upper case)")


def sign_string(params: Mapping[str, str], signer: Signer, charset: str) -> tuple[str, str]:
    """Return ``(string_to_sign, sign)`` for ``params``."""
    text = string_to_sign(params)
    return text, signer.sign(text.encode(charset))


def sign_params(params: Mapping[str, str], signer: Signer, charset: str) -> dict[str, str]:
    """A copy of ``params`` with ``sign`` and ``sign_type`` added."""
    _, signature = sign_string(params, signer, charset)
    signed = {k: v for k, v in params.items() if k not in UNSIGNED_PARAMS}
    signed["sign"] = signature
    signed["sign_type"] = signer.sign_type
    return signed


def verify_params(params: Mapping[str, str], signature: str, signer: Signer,
                  charset: str) -> bool:
    """True if ``signature`` is the signature of ``params`` (sign/sign_type ignored)."""
    try:
        data = string_to_sign(params).encode(charset)
    except (UnicodeEncodeError, LookupError):
        return False
    return signer.verify(data, signature)
