"""Masking of personal data wherever a human looks (logs, Flower, tables, reports).

Emails keep their first character and the domain (``m***@example.com``, ``张***@公司.cn``);
account numbers keep the first and last four characters around a fixed run of eight stars
(``2088********0156``), so the length is not revealed either; a mainland mobile number (a common
Alipay login) keeps its first three and last two digits (``138********00``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Parameters whose values are secrets or signatures: never shown, not even masked.
SECRET_FIELDS = frozenset({"sign", "key", "private_key", "password"})
#: Parameters holding a login (email or phone number) or an account: always masked by name.
LOGIN_FIELDS = frozenset({"user_email", "email", "login", "logon_id", "user_login"})
ACCOUNT_FIELDS = frozenset({"trans_account_out", "account_no", "user_id"})
#: A mainland China mobile number, the usual non-email Alipay login.
PHONE = re.compile(r"1[3-9]\d{9}")


def mask_phone(value: str) -> str:
    """``13800138000`` -> ``138********00``."""
    return f"{value[:3]}********{value[-2:]}"


def mask_email(value: str) -> str:
    """``maoamo@alipay.com`` -> ``m***@alipay.com``; a login that is not an email is masked as
    an account."""
    if "@" not in value:
        return mask_phone(value) if PHONE.fullmatch(value) else mask_account(value)
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def mask_account(value: str) -> str:
    """``20880020070189160156`` -> ``2088********0156``; short values become ``****``."""
    if len(value) <= 8:
        return "****" if value else ""
    return f"{value[:4]}********{value[-4:]}"


def mask_field(name: object, value: str) -> str:
    """``value`` masked as the field ``name`` holds it (unchanged if ``name`` is not personal)."""
    lowered = name.lower() if isinstance(name, str) else ""
    if value and lowered in LOGIN_FIELDS:
        return mask_email(value)
    if value and lowered in ACCOUNT_FIELDS:
        return mask_account(value)
    return value


def mask_params(params: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``params`` with personal data masked and secrets removed."""
    return {name: mask_field(name, value) if isinstance(value, str) else value
            for name, value in params.items() if name not in SECRET_FIELDS}
