"""Masking of personal data wherever a human looks (logs, Flower, tables, reports).

Emails keep their first character and the domain (``m***@example.com``); account numbers keep
the first and last four characters around a fixed run of eight stars (``2088********0156``), so
the length is not revealed either.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Parameters whose values are secrets or signatures: never shown, not even masked.
SECRET_FIELDS = frozenset({"sign", "key", "private_key", "password"})


def mask_email(value: str) -> str:
    """``maoamo@alipay.com`` -> ``m***@alipay.com``; a login that is not an email is masked as
    an account."""
    if "@" not in value:
        return mask_account(value)
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def mask_account(value: str) -> str:
    """``20880020070189160156`` -> ``2088********0156``; short values become ``****``."""
    if len(value) <= 8:
        return "****" if value else ""
    return f"{value[:4]}********{value[-4:]}"


def mask_params(params: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``params`` with personal data masked and secrets removed."""
    shown: dict[str, object] = {}
    for name, value in params.items():
        if name in SECRET_FIELDS:
            continue
        if isinstance(value, str) and value:
            if name == "user_email":
                value = mask_email(value)
            elif name in ("trans_account_out", "account_no"):
                value = mask_account(value)
        shown[name] = value
    return shown
