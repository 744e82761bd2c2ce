"""One gateway request, from raw bytes to the answer: the checks, the state change, the faults.

The checks run in the gateway's order, each refusing with its code:

1. ``service`` is ``customer_unsign`` or ``query_customer_protocol``: ``ILLEGAL_SERVICE``
2. ``partner`` is the configured one: ``ILLEGAL_PARTNER``
3. ``sign_type`` is MD5, RSA or DSA: ``ILLEGAL_SIGN_TYPE``; and a key is configured for it:
   ``ILLEGAL_SECURITY_PROFILE``
4. ``_input_charset`` is utf-8, gbk or gb2312 (any case): ``ILLEGAL_CHARSET``
5. the signature, recomputed from the parameters as received: ``ILLEGAL_SIGN``
6. the parameter rules and priorities (:mod:`unsign_worker.params`): ``ILLEGAL_ARGUMENT``

Then ``customer_unsign`` finds the agreement: unknown -> ``NOT_EXIST_CUST_SIGN``, not signed ->
``STATUS_CUSTOMER_SIGN``, signed -> it is unsigned and the success XML of section 5.3 is
answered. Error answers carry a signature over the ``<error>`` node. Runs in the event loop;
no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unsign_worker.emulator.agreements import UNSIGNED, Agreement
from unsign_worker.emulator.decode import decode_request
from unsign_worker.emulator.faults import BODY_STEPS, OK, TRANSPORT_STEPS
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.params import (
    BUSINESS_FIELDS,
    PARTNER_PROTOCOL_BIZ_TYPE,
    QUERY_SERVICE,
    SERVICE,
    UnsignRequest,
)
from unsign_worker.response import render_response
from unsign_worker.settings import SUPPORTED_SIGN_TYPES
from unsign_worker.signing import UNSIGNED_PARAMS, Signer, verify_params

_USER_ID_LEN = 16


@dataclass(frozen=True)
class Outcome:
    """What to do with the connection: write ``body`` with ``status``, or one of
    :data:`~unsign_worker.emulator.faults.TRANSPORT_STEPS` / ``LOST_ANSWER``."""

    body: bytes = b""
    action: str = "answer"
    status: int = 200


class _TamperedSigner:
    """Signs something else than what it is given: answers whose signature does not verify."""

    def __init__(self, inner: Signer) -> None:
        self.sign_type = inner.sign_type
        self._inner = inner

    @property
    def can_sign(self) -> bool:
        return True

    @property
    def can_verify(self) -> bool:
        return False

    def sign(self, data: bytes) -> str:
        return self._inner.sign(data + b"&tampered=1")

    def verify(self, data: bytes, signature: str) -> bool:
        return False


def process(state: EmulatorState, query: bytes, body: bytes = b"") -> Outcome:
    """Answer one request given its raw query string and form body."""
    decoded = decode_request(query, body)
    params, codec = decoded.params, decoded.charset
    charset = codec or "utf-8"
    config = state.config
    sign_type = params.get("sign_type", "")
    signer = config.answer_signer(sign_type)
    if state.faults.global_code:
        state.stats.faults["GLOBAL_CODE"] += 1
        return _error(state, state.faults.global_code, signer, charset)
    service = params.get("service", "")
    if service != SERVICE and service != QUERY_SERVICE:
        return _error(state, "ILLEGAL_SERVICE", signer, charset)
    if params.get("partner") != config.partner:
        return _error(state, "ILLEGAL_PARTNER", signer, charset)
    if sign_type not in SUPPORTED_SIGN_TYPES:
        return _error(state, "ILLEGAL_SIGN_TYPE", signer, charset)
    verifier = config.signer_for(sign_type)
    if verifier is None:
        return _error(state, "ILLEGAL_SECURITY_PROFILE", signer, charset)
    if not codec:
        return _error(state, "ILLEGAL_CHARSET", signer, charset)
    if not verify_params(params, params.get("sign", ""), verifier, codec):
        state.stats.bad_signatures += 1
        return _error(state, "ILLEGAL_SIGN", signer, charset)
    if service == QUERY_SERVICE:
        return _query(state, params, verifier, codec)
    return _unsign(state, params, verifier, codec)


def _unsign(state: EmulatorState, params: dict[str, str], signer: Signer,
            charset: str) -> Outcome:
    stats = state.stats
    stats.unsign_requests += 1
    request = UnsignRequest(**{name: params.get(name, "") for name in BUSINESS_FIELDS})
    if request.errors(charset=charset):
        return _error(state, "ILLEGAL_ARGUMENT", signer, charset)
    identity = request.identity(state.config.partner)
    agreement = state.book.find(identity.kind, identity.values)
    step = None
    if agreement is not None:
        stats.counts(agreement.id).requests += 1
        step = state.next_step(agreement.id)
    if step is not None:
        stats.faults["SCRIPTED"] += 1
        if step in TRANSPORT_STEPS:
            stats.faults[step] += 1
            return Outcome(action=step)
        if step != OK and step not in BODY_STEPS:
            return _error(state, step, signer, charset)
    else:
        code = state.faults.draw_error(state.rand)
        if code is not None:
            stats.faults["ERROR_RATE"] += 1
            return _error(state, code, signer, charset)
    spoil = step if step in BODY_STEPS else (None if step else state.faults.draw_body(state.rand))
    if agreement is None:
        return _error(state, "NOT_EXIST_CUST_SIGN", signer, charset, spoil=spoil)
    if agreement.status == UNSIGNED:
        if agreement.unsigned_here:
            stats.reached_after_success(agreement.id)
        return _error(state, "STATUS_CUSTOMER_SIGN", signer, charset, spoil=spoil)
    _apply_unsign(state, agreement)
    echo = {k: v for k, v in params.items() if k not in UNSIGNED_PARAMS}
    return _answer(state, "T", spoil, signer, lambda s: render_response(
        is_success=True, request=echo, customer=agreement.customer_block(), signer=s,
        charset=charset))


def _apply_unsign(state: EmulatorState, agreement: Agreement) -> None:
    agreement.status = UNSIGNED
    agreement.unsigned_here = True
    state.stats.unsigned(agreement.id)


def _query(state: EmulatorState, params: dict[str, str], signer: Signer,
           charset: str) -> Outcome:
    """query_customer_protocol: is a biz_type 10004 agreement still signed (charge_agent)?"""
    state.stats.query_requests += 1
    email, account_no = params.get("user_email", ""), params.get("account_no", "")
    if params.get("biz_type", "") != PARTNER_PROTOCOL_BIZ_TYPE:
        return _error(state, "ILLEGAL_BIZ_TPYE", signer, charset)  # sic, as documented
    if not email and not account_no:
        return _error(state, "NULL_EMAIL_AND_ACCOUNT_NO", signer, charset)
    if account_no and not (len(account_no) == _USER_ID_LEN and account_no.isdigit()
                           and account_no.startswith("2088")):
        return _error(state, "ILLEGAL_ACCOUNT_NO", signer, charset)
    code = state.faults.draw_error(state.rand)
    if code is not None:
        state.stats.faults["ERROR_RATE"] += 1
        return _error(state, code, signer, charset)
    spoil = state.faults.draw_body(state.rand)
    agreement = state.book.find_partner_protocol(user_email=email, user_id=account_no)
    if agreement is None:
        return _error(state, "NO_SIGN_CUSTOMER", signer, charset, spoil=spoil)
    fields = {"charge_agent": "F" if agreement.status == UNSIGNED else "T",
              "refund_charge": "F"}
    if agreement.user_id:
        fields["user_id"] = agreement.user_id
    return _answer(state, "T", spoil, signer, lambda s: render_response(
        is_success=True, fields=fields, signer=s, charset=charset))


def _error(state: EmulatorState, code: str, signer: Signer, charset: str, *,
           spoil: str | None = None) -> Outcome:
    return _answer(state, code, spoil, signer, lambda s: render_response(
        is_success=False, error=code, signer=s, charset=charset))


def _answer(state: EmulatorState, code: str, spoil: str | None, signer: Signer,
            render: Callable[[Signer], bytes]) -> Outcome:
    """Render the answer (``render(signer) -> bytes``), spoiled by a body fault if drawn."""
    if spoil is not None:
        state.stats.faults[spoil] += 1
        if spoil == "LOST_ANSWER":
            return Outcome(action="LOST_ANSWER")
    if spoil == "WRONG_SIGN":
        body = render(_TamperedSigner(signer))
    else:
        body = render(signer)
    if spoil == "MALFORMED":
        body = body[: len(body) // 2]
    elif spoil == "OVERSIZED":
        pad = max(0, state.faults.oversized_bytes - len(body) - len(b"<memo></memo>"))
        body = body.replace(b"</alipay>", b"<memo>" + b"x" * pad + b"</memo></alipay>")
    state.stats.answers[code] += 1
    return Outcome(body=body)
