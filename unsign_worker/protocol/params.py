"""The unsign request: the five business parameters, the agreement's identity, and the
parameter sets to sign and send.

Pure: no I/O, no globals read. The rules each request must keep are in
:mod:`unsign_worker.protocol.param_rules` (their names are importable from here too).

A request names its agreement in exactly one form (:data:`~unsign_worker.protocol.param_rules.
FORMS`): ``customer_code`` alone, ``type_code`` + ``trans_account_out``, or ``biz_type=10004`` +
``user_email``; with both pairs complete the priorities (``type_code`` over ``biz_type``,
``trans_account_out`` over ``user_email``) pick ``type_code`` + ``trans_account_out``.
:meth:`UnsignRequest.identity` (the dedup key) and :func:`build_query_params` (the lost answer's
confirming query) follow that one rule.
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
    agreement_form,
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
    """Which agreement a request means: the form that names it (see the module docstring)."""

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
        """The agreement meant, by the form that names it: ``customer_code``, else the complete
        pair (``type_code`` + ``trans_account_out`` when both pairs are complete, the rules'
        priorities). Call on a valid request.

        Raises:
            ValidationError: the fields given name no agreement in one form.
        """
        params = self.business_params()
        kind = agreement_form(params)
        if kind is None:
            # never empty: the fields that name no form break a rule of which go together
            raise ValidationError(params_errors(params, charset="utf-8"))
        if kind == "customer_code":
            return Identity(partner, kind, (self.customer_code,))
        if kind == "type_code":
            return Identity(partner, kind, (self.type_code, self.trans_account_out))
        return Identity(partner, kind, (self.biz_type, self.user_email.lower()))

    @property
    def is_partner_protocol(self) -> bool:
        """True for sign_protocol_with_partner agreements: exactly biz_type=10004 + user_email,
        the only identity query_customer_protocol can check."""
        return agreement_form(self.business_params()) == "biz_type"

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
    """Parameters of query_customer_protocol for a biz_type=10004 agreement: exactly the two
    fields of its identity (:attr:`UnsignRequest.is_partner_protocol`).

    Raises:
        ValidationError: the request's identity is not of the biz_type + user_email form.
    """
    if not request.is_partner_protocol:
        raise ValidationError([FieldError("biz_type", "biz_type_10004",
                                          "query_customer_protocol only checks agreements "
                                          "named by exactly biz_type=10004 + user_email")])
    return {
        "service": QUERY_SERVICE,
        "partner": partner,
        "_input_charset": charset,
        "biz_type": request.biz_type,
        "user_email": request.user_email,
    }
