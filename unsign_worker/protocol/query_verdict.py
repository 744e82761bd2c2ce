"""What a ``query_customer_protocol`` answer says about an unsign whose answer was lost. Pure.

The worker queries only after customer_unsign answered that a ``biz_type=10004`` agreement is
not (or no longer) signed while an earlier attempt of ours may have reached the gateway. The
query document (sections 4.2, 4.3, 7) decides:

- ``is_success=T`` with ``charge_agent=F`` (not signed), or the error ``NO_SIGN_CUSTOMER`` (the
  customer has no agreement): our earlier attempt unsigned it -> ``already_unsigned``;
- ``charge_agent=T``: the agreement is still signed, the unsign did not happen -> ``rejected``,
  with that reason;
- a code that says the same for every query (``ILLEGAL_PARTNER``, ``NOT_AIR_PLANE_PARTNER``,
  ``ILLEGAL_BIZ_TPYE``, a signature or charset code) -> ``halt``: the breaker opens;
- anything else (``NO_NORMAL_SIGN_CUSTOMER``, no or another ``charge_agent``, an unknown code)
  cannot say whether the agreement is gone -> ``dead_letter`` with the advice, never a
  rejection by default.

Retryable codes (``SYSTEM_ERROR``...) never reach here: :func:`unsign_worker.protocol.attempt.send`
raises for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from unsign_worker.protocol.catalogue import Category, ErrorCode, lookup_query
from unsign_worker.protocol.response import GatewayResponse

#: Code recorded when a successful query answer does not say T or F.
CODE_NO_CHARGE_AGENT = "QUERY_NO_CHARGE_AGENT"


class VerdictKind(StrEnum):
    """What a query answer says about the agreement."""

    ALREADY_UNSIGNED = "already_unsigned"
    REJECTED = "rejected"
    HALT = "halt"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class QueryVerdict:
    """The kind of verdict, its reason, and the catalogue entry behind it."""

    kind: VerdictKind
    reason: str
    #: the catalogue entry behind the verdict (the query's code, or the undecided answer's)
    entry: ErrorCode | None = None


def judge_query(response: GatewayResponse) -> QueryVerdict:
    """The verdict of one trusted ``query_customer_protocol`` answer (see the module doc)."""
    kind = VerdictKind
    if response.is_success:
        agent = response.fields.get("charge_agent", "")
        if agent == "F":
            return QueryVerdict(kind.ALREADY_UNSIGNED, "query_customer_protocol confirms the "
                                "agreement is no longer signed (charge_agent=F)")
        if agent == "T":
            return QueryVerdict(kind.REJECTED, "query_customer_protocol says the agreement is "
                                "still signed (charge_agent=T): the unsign did not happen")
        shown = agent[:10] if agent else "none"
        return QueryVerdict(kind.DEAD_LETTER, f"query_customer_protocol answered is_success=T "
                            f"without charge_agent T or F ({shown!r})", _undecided(shown))
    entry = lookup_query(response.error)
    if entry.category is Category.GONE:
        return QueryVerdict(kind.ALREADY_UNSIGNED, f"query_customer_protocol answered "
                            f"{entry.code}: the customer holds no agreement any more", entry)
    if entry.category is Category.HALT:
        return QueryVerdict(kind.HALT, f"query_customer_protocol answered {entry.code}", entry)
    return QueryVerdict(kind.DEAD_LETTER, f"query_customer_protocol answered {entry.code}: "
                        "it cannot say whether the agreement is still signed", entry)


def _undecided(shown: str) -> ErrorCode:
    return ErrorCode(code=CODE_NO_CHARGE_AGENT, zh="查询结果缺少自动扣款签约状态",
                     en=f"The query answer gives no charge_agent T/F ({shown})",
                     category=Category.ESCALATE,
                     advice="query_customer_protocol answered without saying whether the "
                     "agreement is signed; look it up in Alipay's merchant console, then requeue "
                     "the job or settle it by hand.", section="query 4.2")
