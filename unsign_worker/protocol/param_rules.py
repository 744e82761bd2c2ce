"""The rules of the unsign parameters: each field's own (length, characters, charset, format),
which fields must go together, and the partner ID and charset; with the common case (a plain
value) recognised by one regular expression per field.

Pure: no I/O, no globals read. Rules come from the technical document (table 4-1) and the usage
rules (section 3 "参数配置", section 4 "业务操作"):

- lengths: customer_code <= 20, type_code <= 30, biz_type <= 5, trans_account_out <= 20,
  user_email <= 100; partner is 16 digits starting with 2088;
- trans_account_out is the customer's RMB fund account: user_id (2088 + 12 digits) + ``0156``;
- which agreement (:func:`agreement_form`, docs/worker.md "Which pair names the agreement"): a
  request names it in exactly one form, ``customer_code`` alone, or ``type_code`` +
  ``trans_account_out``, or ``biz_type=10004`` + ``user_email``; the one mix allowed is both
  pairs complete, where the priorities (``type_code`` > ``biz_type``, ``trans_account_out`` >
  ``user_email``) agree on ``type_code`` + ``trans_account_out``. Any other field beside a form
  is refused (``one_form`` beside ``customer_code``, ``incomplete_pair`` beside a pair);
  without ``customer_code``, ``type_code``/``biz_type`` must not both be empty and
  ``trans_account_out``/``user_email`` must not both be empty, and one of the two pairs must be
  complete;
- ``biz_type`` + ``user_email`` only with ``biz_type=10004``;
- every value must be encodable in ``_input_charset``, with no control characters and no
  surrounding white space (the gateway would sign and match the value as given).

The request these rules judge, and its identity, are in :mod:`unsign_worker.protocol.params`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from unsign_worker.protocol.exceptions import FieldError

#: The five business parameters, in the order of the technical document.
BUSINESS_FIELDS = ("customer_code", "type_code", "trans_account_out", "biz_type", "user_email")
#: Maximum lengths from table 4-1 (characters), but customer_code: table 4-1 says String(12),
#: the answer table 5-1 String(20), and the answer sample of 5.3 carries a 13-digit code. The
#: gateway hands out the codes, so a code copied from its own answer must be accepted: 20.
MAX_LENGTHS = {
    "customer_code": 20,
    "type_code": 30,
    "biz_type": 5,
    "trans_account_out": 20,
    "user_email": 100,
}
CHARSETS = ("utf-8", "gbk", "gb2312")
#: biz_type of agreements signed through sign_protocol_with_partner.
PARTNER_PROTOCOL_BIZ_TYPE = "10004"
#: The two pairs that name an agreement without customer_code, by the field that leads each.
PAIRS = {"type_code": ("type_code", "trans_account_out"), "biz_type": ("biz_type", "user_email")}
#: The fields a request may give -> the form that names its agreement (the kind of its
#: identity). Nothing else names one: customer_code alone, one complete pair, or both pairs
#: complete, where both priorities of usage rules 4 pick type_code + trans_account_out.
FORMS: dict[frozenset[str], str] = {
    frozenset({"customer_code"}): "customer_code",
    frozenset(PAIRS["type_code"]): "type_code",
    frozenset(PAIRS["biz_type"]): "biz_type",
    frozenset((*PAIRS["type_code"], *PAIRS["biz_type"])): "type_code",
}

# re.ASCII: without it \d also matches full-width and other Unicode digits
_PARTNER_RE = re.compile(r"2088\d{12}", re.ASCII)
_ACCOUNT_RE = re.compile(r"2088\d{12}0156", re.ASCII)
_DIGITS_RE = re.compile(r"\d+", re.ASCII)
_CODE_RE = re.compile(r"[0-9A-Za-z_\-]+")


#: Values that break no rule of their field (length, characters, charset, format) whatever the
#: charset of ``CHARSETS`` (all hold ASCII): the common case, recognised by one match.
_PLAIN = {
    "customer_code": re.compile(rf"[0-9A-Za-z_\-]{{1,{MAX_LENGTHS['customer_code']}}}"),
    "type_code": re.compile(rf"[0-9A-Za-z_\-]{{1,{MAX_LENGTHS['type_code']}}}"),
    "biz_type": re.compile(rf"[0-9]{{1,{MAX_LENGTHS['biz_type']}}}"),
    "trans_account_out": _ACCOUNT_RE,
    # printable ASCII but the space: no control character, no edge space, no space at all
    "user_email": re.compile(rf"[!-~]{{3,{MAX_LENGTHS['user_email']}}}"),
}


def _format_errors(name: str, value: str) -> list[FieldError]:
    """The format rule of one field, if it has one and ``value`` breaks it."""
    if name in ("customer_code", "type_code") and not _CODE_RE.fullmatch(value):
        return [FieldError(name, "format", "must contain only letters, digits, '_' or '-'")]
    if name == "biz_type" and not _DIGITS_RE.fullmatch(value):
        return [FieldError("biz_type", "format", "must be digits")]
    if name == "trans_account_out" and not _ACCOUNT_RE.fullmatch(value):
        return [FieldError("trans_account_out", "format",
                           "must be the RMB fund account: user_id (16 digits starting with "
                           "2088) followed by 0156")]
    if name == "user_email" and (" " in value or len(value) < 3):
        return [FieldError("user_email", "format",
                           "must be an Alipay login account without spaces")]
    return []


def params_errors(params: Mapping[str, str], *, charset: str) -> list[FieldError]:
    """Every rule the business parameters ``params`` (non-empty strings, by name; a name
    absent or empty is "not given") break, one FieldError each: what
    :meth:`~unsign_worker.protocol.params.UnsignRequest.errors` says, without building the
    request."""
    # a value matching its field's _PLAIN pattern breaks no rule of its own: only the others
    # are checked one rule at a time (campaigns check 100,000s of rows)
    known = charset.lower() in CHARSETS
    checked = [name for name in BUSINESS_FIELDS
               if (value := params.get(name)) and not (known and _PLAIN[name].fullmatch(value))]
    errors: list[FieldError] = []
    for name in checked:
        value = params[name]
        if len(value) > MAX_LENGTHS[name]:
            errors.append(FieldError(name, "max_length",
                                     f"is longer than {MAX_LENGTHS[name]} characters"))
        errors.extend(check_value(name, value, charset=charset))
    for name in checked:
        errors.extend(_format_errors(name, params[name]))
    errors.extend(_combination_errors(params))
    return errors


_BIZ_TYPE_10004 = FieldError("biz_type", "biz_type_10004",
                             "biz_type + user_email is only for sign_protocol_with_partner "
                             "agreements: biz_type must be 10004")


def agreement_form(params: Mapping[str, str]) -> str | None:
    """The form that names the agreement of ``params`` (``customer_code``, ``type_code`` or
    ``biz_type``: see :data:`FORMS`), or None when the non-empty fields given are not exactly
    one form or send ``biz_type`` + ``user_email`` with a ``biz_type`` other than 10004; the
    values' own rules are :func:`params_errors`' business."""
    given = frozenset(name for name in BUSINESS_FIELDS if params.get(name))
    if "user_email" in given and params.get("biz_type") != PARTNER_PROTOCOL_BIZ_TYPE:
        return None
    return FORMS.get(given)


def _combination_errors(params: Mapping[str, str]) -> list[FieldError]:
    """The rules of which parameters must go together (see :data:`FORMS`)."""
    given = [name for name in BUSINESS_FIELDS if params.get(name)]
    biz_type = params.get("biz_type")
    if FORMS.get(frozenset(given)) is not None:
        if "user_email" in given and biz_type != PARTNER_PROTOCOL_BIZ_TYPE:
            return [_BIZ_TYPE_10004]
        return []
    if "customer_code" in given:
        return [FieldError(name, "one_form",
                           f"customer_code names the agreement alone: leave out {name}, or "
                           "leave out customer_code and name it by a complete pair")
                for name in given if name != "customer_code"]
    type_code, account, email = (params.get(name) for name in
                                 ("type_code", "trans_account_out", "user_email"))
    errors: list[FieldError] = []
    if not type_code and not biz_type:
        errors.append(FieldError("type_code", "type_code_or_biz_type",
                                 "without customer_code, type_code and biz_type must not both "
                                 "be empty"))
    if not account and not email:
        errors.append(FieldError("trans_account_out", "account_or_email",
                                 "without customer_code, trans_account_out and user_email must "
                                 "not both be empty"))
    if errors:
        return errors
    complete = [lead for lead, pair in PAIRS.items() if all(params.get(n) for n in pair)]
    if not complete:
        field = "trans_account_out" if type_code else "user_email"
        return [FieldError(field, "complete_pair",
                           "without customer_code, give type_code + trans_account_out or "
                           "biz_type + user_email")]
    # one pair complete (both would be a form) and a field of the other pair beside it
    (lead,) = complete
    other = PAIRS["biz_type" if lead == "type_code" else "type_code"]
    for name in given:
        if name in other:
            missing = other[1 - other.index(name)]
            errors.append(FieldError(name, "incomplete_pair",
                                     f"is given without {missing}; {' + '.join(PAIRS[lead])} "
                                     f"names the agreement: leave out {name}, or give "
                                     f"{' + '.join(other)} complete"))
    if lead == "biz_type" and biz_type != PARTNER_PROTOCOL_BIZ_TYPE:
        errors.append(_BIZ_TYPE_10004)
    return errors


def _charset_error(field: str, value: str, charset: str) -> FieldError | None:
    try:
        value.encode(charset)
    except UnicodeEncodeError:
        return FieldError(field, "charset", f"cannot be encoded in {charset}")
    except LookupError:
        return FieldError("_input_charset", "charset_known", f"unknown charset {charset!r}")
    return None


def check_value(field: str, value: str, *, charset: str) -> list[FieldError]:
    """Rules every value shares: no control characters, no edge white space, encodable."""
    errors: list[FieldError] = []
    # isprintable() is False for every control, format and line/paragraph separator character
    # (and for spaces other than ' '): only then is the per-character check needed
    if not value.isprintable() and any(
            unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        errors.append(FieldError(field, "no_control_chars", "contains control characters"))
    if value != value.strip():
        errors.append(FieldError(field, "no_edge_whitespace", "has leading or trailing spaces"))
    err = _charset_error(field, value, charset)
    if err is not None:
        errors.append(err)
    return errors


def validate_partner(partner: str) -> list[FieldError]:
    """The partner ID: 16 digits starting with 2088."""
    if not partner:
        return [FieldError("partner", "required", "is required")]
    if not _PARTNER_RE.fullmatch(partner):
        return [FieldError("partner", "format", "must be 16 digits starting with 2088")]
    return []


def validate_charset(charset: str) -> list[FieldError]:
    if charset.lower() not in CHARSETS:
        return [
            FieldError(
                "_input_charset", "charset_known", f"must be one of {', '.join(CHARSETS)}"
            )
        ]
    return []
