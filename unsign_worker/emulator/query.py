"""``query_customer_protocol`` (query document v1.2): is a ``biz_type=10004`` agreement still
signed? Its own codes, checked in the order of its table 7-1 where they apply:

- ``biz_type`` must be ``10004``: ``ILLEGAL_BIZ_TPYE`` (sic, as documented);
- ``user_email`` and ``account_no`` must not both be empty: ``NULL_EMAIL_AND_ACCOUNT_NO``;
- ``account_no`` is 16 digits starting with 2088: ``ILLEGAL_ACCOUNT_NO``;
- no partner-protocol agreement found: ``NO_SIGN_CUSTOMER``.

A success answers ``charge_agent`` (T signed, F not signed), ``refund_charge`` and the
``user_id`` when known (table 4-1; the parameter table spells ``acount_no``, its sample
``account_no``: the sample's name is the one read). Unsigned unless asked for.
"""

from __future__ import annotations

import re

from unsign_worker.emulator.agreements import UNSIGNED
from unsign_worker.emulator.reply import Outcome, Reply
from unsign_worker.emulator.rules import PARTNER_BIZ_TYPE
from unsign_worker.emulator.state import EmulatorState

_USER_ID = re.compile(r"2088[0-9]{12}")


def answer_query(state: EmulatorState, params: dict[str, str], reply: Reply) -> Outcome:
    state.stats.query_requests += 1
    email, account_no = params.get("user_email", ""), params.get("account_no", "")
    if params.get("biz_type", "") != PARTNER_BIZ_TYPE:
        return reply.error("ILLEGAL_BIZ_TPYE")
    if not email and not account_no:
        return reply.error("NULL_EMAIL_AND_ACCOUNT_NO")
    if account_no and not _USER_ID.fullmatch(account_no):
        return reply.error("ILLEGAL_ACCOUNT_NO")
    code = state.faults.draw_error(state.rand)
    if code is not None:
        state.stats.faults["ERROR_RATE"] += 1
        return reply.error(code)
    spoil = state.faults.draw_body(state.rand)
    agreement = state.book.find_partner_protocol(user_email=email, user_id=account_no)
    if agreement is None:
        return reply.error("NO_SIGN_CUSTOMER", spoil=spoil)
    fields = {"charge_agent": "F" if agreement.status == UNSIGNED else "T",
              "refund_charge": "F"}
    if agreement.user_id:
        fields["user_id"] = agreement.user_id
    return reply.query(fields, spoil=spoil)
