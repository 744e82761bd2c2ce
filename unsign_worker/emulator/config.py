"""The emulator's identity and keys, and the loading of its agreements file.

The emulator plays Alipay: for MD5 it shares the merchant's key; for RSA/DSA it verifies
requests with the merchant's PUBLIC key and signs answers with an "Alipay" PRIVATE key (the
worker holds the matching Alipay public key). Keys are held inside signers, whose reprs hide
them; this module never logs or prints them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unsign_worker.emulator.agreements import Agreement, agreement_from_entry
from unsign_worker.exceptions import ConfigError
from unsign_worker.params import validate_partner
from unsign_worker.signing import Signer, make_signer


@dataclass(frozen=True)
class EmulatorConfig:
    """The partner the emulator answers for and one signer per accepted sign type."""

    partner: str
    #: sign type -> signer that verifies requests and signs answers
    signers: Mapping[str, Signer]

    @property
    def sign_types(self) -> tuple[str, ...]:
        return tuple(self.signers)

    def signer_for(self, sign_type: str) -> Signer | None:
        return self.signers.get(sign_type)

    def answer_signer(self, sign_type: str) -> Signer:
        """The signer for answers to a request of ``sign_type`` (the first one as a fallback,
        for requests refused before their sign type is known to be usable)."""
        return self.signers.get(sign_type) or next(iter(self.signers.values()))

    def __repr__(self) -> str:
        return f"EmulatorConfig(partner={self.partner!r}, sign_types={self.sign_types!r})"


def _asymmetric(public_pem: str | bytes, private_pem: str | bytes) -> Signer:
    for sign_type in ("RSA", "DSA"):
        try:
            signer = make_signer(sign_type, public_key_pem=public_pem)
        except ConfigError:
            continue
        try:
            return make_signer(sign_type, public_key_pem=public_pem, private_key_pem=private_pem)
        except ConfigError:
            raise ConfigError(f"--alipay-private-key: not a {signer.sign_type} private key like "
                              "the merchant public key") from None
    raise ConfigError("--merchant-public-key: not a readable RSA or DSA public key")


def build_config(*, partner: str, key: str = "", merchant_public_key_pem: str | bytes = "",
                 alipay_private_key_pem: str | bytes = "") -> EmulatorConfig:
    """Check the identity and build the signers.

    Parameters:
        partner: the merchant ID the emulator answers for (16 digits starting with 2088).
        key: the MD5 key shared with the merchant ("" disables MD5).
        merchant_public_key_pem: verifies RSA/DSA requests (with ``alipay_private_key_pem``).
        alipay_private_key_pem: signs RSA/DSA answers.

    Raises:
        ConfigError: a bad partner, no usable key, or keys that do not load or match.
    """
    problems = validate_partner(partner)
    if problems:
        raise ConfigError(f"ALIPAY_PARTNER: {problems[0].message}")
    signers: dict[str, Signer] = {}
    if key:
        signers["MD5"] = make_signer("MD5", key=key)
    if bool(merchant_public_key_pem) != bool(alipay_private_key_pem):
        raise ConfigError("--merchant-public-key and --alipay-private-key go together "
                          "(RSA/DSA needs both)")
    if merchant_public_key_pem:
        signer = _asymmetric(merchant_public_key_pem, alipay_private_key_pem)
        signers[signer.sign_type] = signer
    if not signers:
        raise ConfigError("ALIPAY_KEY: give the MD5 key (ALIPAY_KEY or --key-file) and/or "
                          "--merchant-public-key with --alipay-private-key")
    return EmulatorConfig(partner=partner, signers=signers)


@dataclass(frozen=True)
class AgreementsFile:
    """What an agreements file holds."""

    partner: str
    agreements: list[Agreement]


def parse_agreements(data: object, *, source: str = "agreements") -> AgreementsFile:
    """Check and build the content of an agreements file (already JSON-decoded).

    Raises:
        ConfigError: the shape or a field is wrong; the message names ``source`` and the path.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: must be a JSON object with 'agreements'")
    unknown = set(data) - {"partner", "agreements", "note"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level field(s) {', '.join(sorted(unknown))} "
                          "(allowed: partner, agreements, note)")
    partner = data.get("partner", "")
    if not isinstance(partner, str):
        raise ConfigError(f"{source}.partner: must be a string")
    entries = data.get("agreements")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}.agreements: must be a list")
    agreements = [agreement_from_entry(entry, f"{source}: agreements[{i}]")
                  for i, entry in enumerate(entries)]
    return AgreementsFile(partner=partner, agreements=agreements)


def load_agreements_file(path: str | Path) -> AgreementsFile:
    """Read and check an agreements file. Raises: ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--agreements: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_agreements(data, source=str(path))
