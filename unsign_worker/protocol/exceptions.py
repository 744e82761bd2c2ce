"""The exception tree: one base, one child per way a job can fail before it has an answer.

A non-retryable gateway answer is not an exception: the processor routes it by its category in
the error catalogue (:mod:`unsign_worker.protocol.catalogue`).

``UnsignError``
├── ``ConfigError``            bad settings (startup; never raised per job)
├── ``ValidationError``        a job's parameters break the rules -> terminal ``rejected``
├── ``GatewayError``           an answer or a fault from the gateway
│   └── ``RetryableError``     retry with the original parameters (``retry`` codes, network, 5xx)
│       └── ``TransportError`` a network-level fault; ``may_have_reached`` tells if it was sent
└── ``ResponseError``          an answer that cannot be trusted (malformed, oversized, bad sign)
    └── ``BadSignatureError``  the answer's signature does not verify

Messages never include secrets: they name fields and rules, never values of keys or signatures.
"""

from __future__ import annotations


class UnsignError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(UnsignError):
    """A setting is missing or malformed; the message names the variable and the rule."""


class FieldError:
    """One broken rule: the field it concerns, a short rule id and a human message."""

    __slots__ = ("field", "rule", "message")

    def __init__(self, field: str, rule: str, message: str) -> None:
        self.field = field
        self.rule = rule
        self.message = message

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.rule!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldError) and (self.field, self.rule, self.message) == (
            other.field,
            other.rule,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.field, self.rule, self.message))

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"


class ValidationError(UnsignError, ValueError):
    """The job's parameters break one or more rules of the interface."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid request")


class GatewayError(UnsignError):
    """An answer or a fault from the gateway; ``code`` is the gateway's error code if any."""

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class RetryableError(GatewayError):
    """Try again later with the original parameters."""

    #: True when the request may have reached the gateway (sent, answer lost or unknown).
    may_have_reached: bool = True


class TransportError(RetryableError):
    """A network-level fault (refused, reset, timeout, 5xx, truncated or oversized body)."""

    def __init__(
        self,
        message: str,
        *,
        may_have_reached: bool,
        http_status: int | None = None,
        code: str = "",
        network: bool = False,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.may_have_reached = may_have_reached
        #: True when no answer came at all: connect or read timeout, refused, reset, TLS
        #: handshake (the path to the gateway may be cut); False for an answer (5xx, oversized)
        self.network = network


class ResponseError(UnsignError):
    """The gateway's answer cannot be parsed or trusted (malformed, DTD, oversized)."""

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        #: short machine-readable reason: malformed, dtd, entity, too_large, too_deep, bad_sign
        self.reason = reason


class BadSignatureError(ResponseError):
    """The answer carries a signature that does not verify: never treat it as success."""

    def __init__(self, message: str = "response signature does not verify") -> None:
        super().__init__(message, reason="bad_sign")


#: Characters of a foreign field name shown in an error (the rest is cut).
SHOWN_NAME_CHARS = 40


def shown_name(name: str) -> str:
    """A field name fit for a reason, a log line or a terminal: cut, quoted and escaped
    (``repr``: no newline, escape sequence or lone surrogate gets through)."""
    if len(name) <= SHOWN_NAME_CHARS:
        return repr(name)
    return f"{name[:SHOWN_NAME_CHARS]!r}... ({len(name)} characters)"
