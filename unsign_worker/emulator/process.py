"""One gateway request, from raw bytes to the answer: the checks, the state change, the faults.

The checks run in this order, each refusing with its code (technical document section 3: the
gateway first runs its security checks, then processes the request):

1. ``service`` is ``customer_unsign`` or ``query_customer_protocol``: ``ILLEGAL_SERVICE``
2. ``partner`` is 16 digits starting with 2088 and the configured one: ``ILLEGAL_PARTNER``
3. ``sign_type`` is MD5, RSA or DSA (upper case): ``ILLEGAL_SIGN_TYPE``; and a key is
   configured for it: ``ILLEGAL_SECURITY_PROFILE`` ("未找到匹配的密钥配置")
4. ``_input_charset`` is utf-8, gbk, gb2312 or gb18030 (any case): ``ILLEGAL_CHARSET``
5. every parameter is in the service's request table (:mod:`.strictness`): ``ILLEGAL_SIGN``;
   then the signature, recomputed from the parameters as received: ``ILLEGAL_SIGN``
6. strict mode (the default): no parameter sent with an empty value (:mod:`.strictness`):
   ``ILLEGAL_ARGUMENT``
7. ``customer_unsign``: the parameter rules (:mod:`unsign_worker.emulator.rules`):
   ``ILLEGAL_ARGUMENT``; ``query_customer_protocol``: its own codes (:mod:`.query`)

Then ``customer_unsign`` finds the agreement: unknown -> ``NOT_EXIST_CUST_SIGN``, not signed ->
``STATUS_CUSTOMER_SIGN``, signed -> it is unsigned and the success of section 5.3 is answered.
A ``SYSTEM_ERROR`` or ``ILLEGAL_SYSTEM`` (scripted or drawn) leaves the agreement as it was,
except for the share ``system_error_applied_share`` of them, which unsign it first (the rules:
"用户可能未解约成功": it may or may not have happened).
Error answers are unsigned unless asked for (:mod:`.options`), and an answer is never signed
with another sign type than the request's. Runs in the event loop; no I/O here.
"""

from __future__ import annotations

from dataclasses import replace

from unsign_worker.emulator.agreements import UNSIGNED, Agreement
from unsign_worker.emulator.decode import decode_request
from unsign_worker.emulator.faults import BODY_STEPS, MAYBE_APPLIED_CODES, OK, TRANSPORT_STEPS
from unsign_worker.emulator.query import answer_query
from unsign_worker.emulator.reply import QUERY_SERVICE, UNSIGN_SERVICE, Outcome, Reply
from unsign_worker.emulator.rules import argument_problems, identity
from unsign_worker.emulator.signatures import NOT_SIGNED, SIGN_TYPES, verify_fields
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.strictness import (
    EMPTY_VALUE_CODE,
    UNKNOWN_PARAMETER_CODE,
    empty_parameters,
    unknown_parameters,
)

__all__ = ["Outcome", "process"]


def process(state: EmulatorState, query: bytes, body: bytes = b"") -> Outcome:
    """Answer one request given its raw query string and form body (the outcome names the
    request's service, and the agreement an unsign reached)."""
    decoded = decode_request(query, body)
    outcome = _process(state, decoded.params, decoded.charset)
    return replace(outcome, service=decoded.params.get("service", ""))


def _process(state: EmulatorState, params: dict[str, str], codec: str) -> Outcome:
    config = state.config
    service = params.get("service", "")
    sign_type = params.get("sign_type", "")
    partner_ok = params.get("partner") == config.partner
    key = config.key_for(sign_type) if partner_ok else None
    reply = Reply(state, service=service, codec=codec or "utf-8",
                  encoding=state.options.encoding_for(codec), key=key)
    if state.faults.global_code:
        state.stats.faults["GLOBAL_CODE"] += 1
        return reply.error(state.faults.global_code)
    if service not in (UNSIGN_SERVICE, QUERY_SERVICE):
        return reply.error("ILLEGAL_SERVICE")
    if not partner_ok:  # the configured partner is 16 digits starting with 2088
        return reply.error("ILLEGAL_PARTNER")
    if sign_type not in SIGN_TYPES:
        return reply.error("ILLEGAL_SIGN_TYPE")
    if key is None:
        return reply.error("ILLEGAL_SECURITY_PROFILE")
    if not codec:
        return reply.error("ILLEGAL_CHARSET")
    if unknown_parameters(service, params):
        state.stats.unknown_parameters += 1
        return reply.error(UNKNOWN_PARAMETER_CODE)
    if not verify_fields(params, params.get("sign", ""), key, codec):
        state.stats.bad_signatures += 1
        return reply.error("ILLEGAL_SIGN")
    if empty_parameters(params):
        state.stats.empty_values += 1
        if not state.options.lenient:
            return reply.error(EMPTY_VALUE_CODE)
    if service == QUERY_SERVICE:
        return answer_query(state, params, reply)
    return _unsign(state, params, reply)


def _unsign(state: EmulatorState, params: dict[str, str], reply: Reply) -> Outcome:
    stats = state.stats
    stats.unsign_requests += 1
    if argument_problems(params):
        return reply.error("ILLEGAL_ARGUMENT")
    agreement = state.book.find(identity(params))
    outcome = _answer_unsign(state, params, reply, agreement)
    return replace(outcome, agreement=agreement.id) if agreement is not None else outcome


def _answer_unsign(state: EmulatorState, params: dict[str, str], reply: Reply,
                   agreement: Agreement | None) -> Outcome:
    stats = state.stats
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
            return _error(state, agreement, step, reply)
    else:
        code = state.faults.draw_error(state.rand)
        if code is not None:
            stats.faults["ERROR_RATE"] += 1
            return _error(state, agreement, code, reply)
    spoil = step if step in BODY_STEPS else (None if step else state.faults.draw_body(state.rand))
    if agreement is None:
        return reply.error("NOT_EXIST_CUST_SIGN", spoil=spoil)
    if agreement.status == UNSIGNED:
        if agreement.unsigned_here:
            stats.reached_after_success(agreement.id)
        return reply.error("STATUS_CUSTOMER_SIGN", spoil=spoil)
    _apply_unsign(state, agreement)
    echo = {k: v for k, v in params.items() if k not in NOT_SIGNED}
    return reply.unsigned(echo, agreement.customer_block(), spoil=spoil)


def _error(state: EmulatorState, agreement: Agreement | None, code: str,
           reply: Reply) -> Outcome:
    """Answer an injected ``code``; a system error may have unsigned a signed agreement."""
    if (agreement is not None and code in MAYBE_APPLIED_CODES and agreement.status != UNSIGNED
            and state.faults.draw_applied(state.rand)):
        state.stats.faults["ERROR_APPLIED"] += 1
        _apply_unsign(state, agreement)
    return reply.error(code)


def _apply_unsign(state: EmulatorState, agreement: Agreement) -> None:
    agreement.status = UNSIGNED
    agreement.unsigned_here = True
    state.stats.unsigned(agreement.id)
