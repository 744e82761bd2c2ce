"""The unsign request: the five business parameters, the agreement's identity, and the
parameter sets to sign and send.

Pure: no I/O, no globals read. The rules each request must keep are in
:mod:`unsign_worker.protocol.param_rules` (their names are importable from here too).

Priorities when both are given: ``type_code`` over ``biz_type``, ``trans_account_out`` over
``user_email``. :meth:`UnsignRequest.identity` applies them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from unsign_worker.protocol.exceptions import FieldError, ValidationError, shown_name
from unsign_worker.protocol.masking import mask_email, mask_params
from unsign_worker.protocol.param_rules import (
    BUSINESS_FIELDS,
    PARTNER_PROTOCOL_BIZ_TYPE,
    params_errors,
    validate_charset,
    validate_partner,
)

__all__ = ["QUERY_SERVICE", "SERVICE", "Identity", "UnsignRequest", "build_params",
           "build_query_params", "request_params"]

SERVICE = "customer_unsign"
QUERY_SERVICE = "query_customer_protocol"


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
