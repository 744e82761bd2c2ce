"""One request to the gateway, and its classification. No Redis here.

``send`` posts signed parameters and returns a trusted :class:`GatewayResponse`, or raises:

- :class:`RetryableError` / :class:`TransportError` for ``retry`` codes, network faults, 5xx,
  and answers that cannot be trusted (malformed, oversized, wrong signature: the request did
  reach the gateway, so ``may_have_reached`` is true and the answer is never success);
- nothing else: a non-retryable error answer is returned for the caller to route by category.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from unsign_worker.protocol.catalogue import Category, lookup, lookup_query
from unsign_worker.protocol.exceptions import (
    BadSignatureError,
    ResponseError,
    RetryableError,
)
from unsign_worker.protocol.gateway import GatewayClient
from unsign_worker.protocol.params import QUERY_SERVICE, SERVICE
from unsign_worker.protocol.response import GatewayResponse, parse_response
from unsign_worker.protocol.signing import Signer

#: Codes recorded for faults that are not gateway error codes.
CODE_NETWORK = "NETWORK_ERROR"
CODE_BAD_RESPONSE_SIGN = "BAD_RESPONSE_SIGN"


class AttemptOutcome(StrEnum):
    """How one attempt ended, as the audit log records it."""

    SUCCESS = "success"
    #: the gateway answered an error that is not retried
    ERROR = "error"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt did, for the audit log."""

    attempt: int
    started_at: float
    duration_ms: float
    http_status: int | None
    code: str
    outcome: AttemptOutcome
    may_have_reached: bool
    #: why a failed attempt failed, as the error says it ("TLS failure: the gateway's
    #: certificate has expired", "read timeout while reading the answer"...; never a parameter)
    reason: str = ""


def send(gateway: GatewayClient, signed: Mapping[str, str], *, charset: str, signer: Signer,
         max_bytes: int) -> tuple[GatewayResponse, int]:
    """Post and parse; returns ``(response, http_status)``. Raises RetryableError (see above).

    The answer is judged by the document of ``signed["service"]``: an unsigned
    ``query_customer_protocol`` answer is believed only over the client's trusted channel.
    """
    service = signed.get("service", SERVICE)
    raw = gateway.post(signed, charset=charset)
    try:
        resp = parse_response(raw.body, verifier=signer, charset=charset, service=service,
                              trusted_channel=gateway.trusted_channel, max_bytes=max_bytes)
    except BadSignatureError:
        raise RetryableError("answer signature does not verify; never taken as success",
                             code=CODE_BAD_RESPONSE_SIGN, http_status=raw.status) from None
    except ResponseError as exc:
        raise RetryableError(f"answer cannot be trusted ({exc.reason})",
                             code=f"RESPONSE_{exc.reason.upper()}", http_status=raw.status
                             ) from None
    catalogue = lookup_query if service == QUERY_SERVICE else lookup
    if not resp.is_success and catalogue(resp.error).category is Category.RETRY:
        raise RetryableError(f"gateway answered {resp.error}", code=resp.error,
                             http_status=raw.status)
    return resp, raw.status


def record_of(attempt: int, started_at: float, *, response: GatewayResponse | None = None,
              http_status: int | None = None, error: Exception | None = None) -> AttemptRecord:
    duration_ms = round((time.time() - started_at) * 1000, 1)
    if error is not None:
        code = getattr(error, "code", "") or CODE_NETWORK
        reached = error.may_have_reached if isinstance(error, RetryableError) else True
        status = getattr(error, "http_status", None)
        return AttemptRecord(attempt, started_at, duration_ms, status, code,
                             AttemptOutcome.RETRYABLE, reached, reason=str(error))
    assert response is not None
    return AttemptRecord(attempt, started_at, duration_ms, http_status, response.error,
                         AttemptOutcome.SUCCESS if response.is_success else AttemptOutcome.ERROR,
                         True)

