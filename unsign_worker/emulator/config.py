"""The emulator's identity and keys, and the loading of its agreements file.

The emulator plays Alipay: for MD5 it shares the merchant's key; for RSA/DSA it verifies
requests with the merchant's PUBLIC key and signs answers with an "Alipay" PRIVATE key (the
worker holds the matching Alipay public key). Keys are held inside key objects
(:mod:`unsign_worker.emulator.signatures`), whose reprs hide them; this module never logs or
prints them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unsign_worker.emulator.agreements import Agreement, agreement_from_entry
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.signatures import Md5Key, SignKey, asymmetric_key

#: The partner ID (table 4-1): 16 digits starting with 2088 (ASCII digits only).
PARTNER_PATTERN = re.compile(r"2088[0-9]{12}")


@dataclass(frozen=True)
class EmulatorConfig:
    """The partner the emulator answers for and one key per accepted sign type."""

    partner: str
    #: sign type -> key that verifies requests and signs answers
    keys: Mapping[str, SignKey]

    @property
    def sign_types(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def key_for(self, sign_type: str) -> SignKey | None:
        """The key of a configured sign type, else None (``ILLEGAL_SECURITY_PROFILE``)."""
        return self.keys.get(sign_type)

    def __repr__(self) -> str:
        return f"EmulatorConfig(partner={self.partner!r}, sign_types={self.sign_types!r})"


def build_config(*, partner: str, key: str = "", merchant_public_key_pem: str | bytes = "",
                 alipay_private_key_pem: str | bytes = "") -> EmulatorConfig:
    """Check the identity and load the keys.

    Parameters:
        partner: the merchant ID the emulator answers for (16 digits starting with 2088).
        key: the MD5 key shared with the merchant ("" disables MD5).
        merchant_public_key_pem: verifies RSA/DSA requests (with ``alipay_private_key_pem``).
        alipay_private_key_pem: signs RSA/DSA answers.

    Raises:
        EmulatorConfigError: a bad partner, no usable key, or keys that do not load or match.
    """
    if not PARTNER_PATTERN.fullmatch(partner):
        raise EmulatorConfigError("ALIPAY_PARTNER: must be 16 digits starting with 2088")
    keys: dict[str, SignKey] = {}
    if key:
        keys["MD5"] = Md5Key(key)
    if bool(merchant_public_key_pem) != bool(alipay_private_key_pem):
        raise EmulatorConfigError("--merchant-public-key and --alipay-private-key go together "
                                  "(RSA/DSA needs both)")
    if merchant_public_key_pem:
        pair = asymmetric_key(merchant_public_key_pem, alipay_private_key_pem)
        keys[pair.sign_type] = pair
    if not keys:
        raise EmulatorConfigError("ALIPAY_KEY: give the MD5 key (ALIPAY_KEY or --key-file) "
                                  "and/or --merchant-public-key with --alipay-private-key")
    return EmulatorConfig(partner=partner, keys=keys)


@dataclass(frozen=True)
class AgreementsFile:
    """What an agreements file holds."""

    partner: str
    agreements: list[Agreement]


def parse_agreements(data: object, *, source: str = "agreements") -> AgreementsFile:
    """Check and build the content of an agreements file (already JSON-decoded).

    Raises:
        EmulatorConfigError: the shape or a field is wrong; the message names ``source`` and
            the path.
    """
    if not isinstance(data, Mapping):
        raise EmulatorConfigError(f"{source}: must be a JSON object with 'agreements'")
    unknown = set(data) - {"partner", "agreements", "note"}
    if unknown:
        raise EmulatorConfigError(f"{source}: unknown top-level field(s) "
                                  f"{', '.join(sorted(unknown))} "
                                  "(allowed: partner, agreements, note)")
    partner = data.get("partner", "")
    if not isinstance(partner, str):
        raise EmulatorConfigError(f"{source}.partner: must be a string")
    entries = data.get("agreements")
    if not isinstance(entries, list):
        raise EmulatorConfigError(f"{source}.agreements: must be a list")
    agreements = [agreement_from_entry(entry, f"{source}: agreements[{i}]")
                  for i, entry in enumerate(entries)]
    return AgreementsFile(partner=partner, agreements=agreements)


def read_json_file(path: str | Path, option: str) -> object:
    """The JSON value of the file ``option`` names. Raises: EmulatorConfigError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EmulatorConfigError(f"{option}: cannot read {str(path)!r}: "
                                  f"{exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EmulatorConfigError(f"{path}: not valid JSON: {exc.msg} at line "
                                  f"{exc.lineno}") from None


def load_agreements_file(path: str | Path) -> AgreementsFile:
    """Read and check an agreements file. Raises: EmulatorConfigError naming the file."""
    data = read_json_file(path, "--agreements")
    return parse_agreements(data, source=str(path))
