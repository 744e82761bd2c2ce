"""Masking of personal data wherever a human looks (logs, Flower, tables, reports).

Emails keep their first character and the domain (``m***@example.com``, ``张***@公司.cn``);
account numbers keep the first and last four characters around a fixed run of eight stars
(``2088********0156``), so the length is not revealed either; a mainland mobile number (a common
Alipay login) keeps its first three and last two digits (``138********00``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: What stands in for a secret (a password, a key, a signature) wherever it is shown.
MASK = "********"

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


# Unicode-aware: 张伟@公司.cn is an email as much as li@example.com.
_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# A mainland mobile number standing alone (a phone-number login).
_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
# A run of 12+ digits standing alone (not inside a hex id): an account or a 2088 user id.
_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{12,}(?![0-9A-Za-z])")
# sign='…', "sign": "…", sign=… (query string) and the same for key/password.
_SECRET_VALUE = re.compile(
    r"""(?P<name>(?<![\w])['"]?(?:sign|key|password|private_key)['"]?\s*[:=]\s*)"""
    r"""(?P<value>'[^']*'|"[^"]*"|[^\s&,'"}\]]+)""", re.IGNORECASE)
# user:password@ in URLs.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@",
                           re.IGNORECASE)


def mask_text(text: str) -> str:
    """``text`` with emails, account-like digit runs, secret values and URL passwords masked.

    Idempotent: ``mask_text(mask_text(t)) == mask_text(t)``.
    """
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _SECRET_VALUE.sub(lambda m: f"{m['name']}'{MASK}'", text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _DIGITS.sub(lambda m: mask_account(m.group(0)), text)
