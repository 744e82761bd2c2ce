"""The unsign request: the five business parameters, their rules, and the agreement's identity.

Pure: no I/O, no globals read. Rules come from the technical document (table 4-1) and the usage
rules (section 3 "参数配置", section 4 "业务操作"):

- lengths: customer_code <= 20, type_code <= 30, biz_type <= 5, trans_account_out <= 20,
  user_email <= 100; partner is 16 digits starting with 2088;
- trans_account_out is the customer's RMB fund account: user_id (2088 + 12 digits) + ``0156``;
- which agreement: ``customer_code`` alone, or ``type_code`` + ``trans_account_out``, or
  ``biz_type=10004`` + ``user_email``; without ``customer_code``, ``type_code``/``biz_type`` must
  not both be empty and ``trans_account_out``/``user_email`` must not both be empty, and one of
  the two pairs must be complete;
- ``biz_type`` + ``user_email`` only with ``biz_type=10004``;
- every value must be encodable in ``_input_charset``, with no control characters and no
  surrounding white space (the gateway would sign and match the value as given).

Priorities when both are given: ``type_code`` over ``biz_type``, ``trans_account_out`` over
``user_email``. :meth:`UnsignRequest.identity` applies them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from unsign_worker.protocol.exceptions import FieldError, ValidationError, shown_name
from unsign_worker.protocol.masking import mask_email, mask_params

SERVICE = "customer_unsign"
QUERY_SERVICE = "query_customer_protocol"
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
    :meth:`UnsignRequest.errors` says, without building the request."""
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


def _combination_errors(params: Mapping[str, str]) -> list[FieldError]:
    """The rules of which parameters must go together."""
    if params.get("customer_code"):
        return []
    type_code, biz_type = params.get("type_code"), params.get("biz_type")
    account, email = params.get("trans_account_out"), params.get("user_email")
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
    cae_pair = bool(type_code and account)
    partner_pair = bool(biz_type and email)
    if not cae_pair and not partner_pair:
        field = "trans_account_out" if type_code else "user_email"
        errors.append(FieldError(field, "complete_pair",
                                 "without customer_code, give type_code + trans_account_out or "
                                 "biz_type + user_email"))
    elif partner_pair and not cae_pair and biz_type != PARTNER_PROTOCOL_BIZ_TYPE:
        errors.append(FieldError("biz_type", "biz_type_10004",
                                 "biz_type + user_email is only for sign_protocol_with_partner "
                                 "agreements: biz_type must be 10004"))
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


@dataclass(frozen=True)
class Identity:
    """Which agreement a request means, after the priorities are applied."""

    partner: str
    #: ``customer_code``, ``type_code`` or ``biz_type``: the form that names the agreement
    kind: str
    #: the values that identify it within the partner, in a fixed order
    values: tuple[str, ...]

    @cached_property
    def key(self) -> str:
        """A stable digest used in Redis key names, so no personal data sits in a key."""
        raw = "\x1f".join((self.partner, self.kind, *self.values))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]

    @cached_property
    def identity_masked(self) -> str:
        """A human-readable form with personal data masked (computed once): the one name of
        a masked identity, here as in records, requests and dead-letter entries."""
        if len(self.values) == 1:
            return f"{self.kind}:{self.values[0]}"
        agreement, account = self.values
        return f"{self.kind}:{agreement}/{mask_email(account)}"

    def __str__(self) -> str:
        return self.identity_masked


@dataclass(frozen=True)
class UnsignRequest:
    """The business parameters of one unsign; empty string means "not given"."""

    customer_code: str = ""
    type_code: str = ""
    trans_account_out: str = ""
    biz_type: str = ""
    user_email: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> UnsignRequest:
        """Build from a mapping of business parameters; unknown names or non-strings raise.

        Raises:
            ValidationError: a name is not a business parameter, or a value is not a string.
        """
        errors: list[FieldError] = []
        values: dict[str, str] = {}
        for name, value in data.items():
            if name not in BUSINESS_FIELDS:
                # a foreign name may be huge or hold control characters: cut and escaped
                errors.append(FieldError(shown_name(str(name)), "unknown_field",
                                         "is not a parameter of customer_unsign"))
                continue
            if value is None:
                continue
            if not isinstance(value, str):
                errors.append(FieldError(name, "type", "must be a string"))
                continue
            values[name] = value
        if errors:
            raise ValidationError(errors)
        return cls(**values)

    def business_params(self) -> dict[str, str]:
        """The non-empty business parameters (empty ones are neither sent nor signed)."""
        return {name: getattr(self, name) for name in BUSINESS_FIELDS if getattr(self, name)}

    def errors(self, *, charset: str) -> list[FieldError]:
        """Every rule this request breaks, one FieldError each (empty list: valid)."""
        return params_errors(self.business_params(), charset=charset)

    def validate(self, *, charset: str) -> UnsignRequest:
        """Return self if valid. Raises: ValidationError listing every broken rule."""
        errors = validate_charset(charset) or self.errors(charset=charset)
        if errors:
            raise ValidationError(errors)
        return self

    def identity(self, partner: str) -> Identity:
        """The agreement meant, with the rules' priorities (type_code > biz_type,
        trans_account_out > user_email). Call on a valid request."""
        if self.customer_code:
            return Identity(partner, "customer_code", (self.customer_code,))
        kind, agreement = (
            ("type_code", self.type_code) if self.type_code else ("biz_type", self.biz_type)
        )
        account = self.trans_account_out or self.user_email.lower()
        return Identity(partner, kind, (agreement, account))

    @property
    def is_partner_protocol(self) -> bool:
        """True for sign_protocol_with_partner agreements (biz_type=10004 + user_email),
        which query_customer_protocol can check."""
        return (
            not self.customer_code
            and not (self.type_code and self.trans_account_out)
            and self.biz_type == PARTNER_PROTOCOL_BIZ_TYPE
            and bool(self.user_email)
        )

    def params_masked(self) -> dict[str, str]:
        """The business parameters with personal data masked, for logs, events and tables
        (:func:`~unsign_worker.protocol.masking.mask_params`)."""
        return {name: str(value) for name, value in mask_params(self.business_params()).items()}


def build_params(
    request: UnsignRequest, *, partner: str, charset: str, service: str = SERVICE
) -> dict[str, str]:
    """The full parameter set to sign and send: service, partner, _input_charset and the
    non-empty business parameters (``_input_charset`` is always sent and signed).

    Raises:
        ValidationError: the request, partner or charset break a rule.
    """
    errors = validate_partner(partner) + validate_charset(charset)
    if not errors:
        errors = request.errors(charset=charset)
    if errors:
        raise ValidationError(errors)
    params = {"service": service, "partner": partner, "_input_charset": charset}
    params.update(request.business_params())
    return params


def request_params(request: UnsignRequest, *, partner: str, charset: str,
                   service: str = SERVICE) -> dict[str, str]:
    """:func:`build_params` for a request already validated with :meth:`UnsignRequest.validate`
    and a partner and charset checked once at start-up (the worker's hot path)."""
    params = {"service": service, "partner": partner, "_input_charset": charset}
    params.update(request.business_params())
    return params


def build_query_params(request: UnsignRequest, *, partner: str, charset: str) -> dict[str, str]:
    """Parameters of query_customer_protocol for a biz_type=10004 agreement."""
    if not request.is_partner_protocol:
        raise ValidationError([FieldError("biz_type", "biz_type_10004",
                                          "query_customer_protocol only checks biz_type=10004 "
                                          "+ user_email agreements")])
    return {
        "service": QUERY_SERVICE,
        "partner": partner,
        "_input_charset": charset,
        "biz_type": request.biz_type,
        "user_email": request.user_email,
    }
