"""Which agreement a ``customer_unsign`` request names, and when it is ``ILLEGAL_ARGUMENT``.

Read afresh from the documents, and only as strict as they are (the emulator must let a
too-strict client show itself):

- lengths (technical document table 4-1): ``type_code`` String(30), ``biz_type`` String(5),
  ``trans_account_out`` String(20), ``user_email`` String(100); ``customer_code`` is String(12)
  in the request table but String(20) in the answer table, whose sample hands out the 13-digit
  ``1118400000013``: the gateway accepts the codes it gives out, so up to 20 here;
- the forms (section 4.2 notes, usage rules 3 "参数配置" and "错误码处理", usage rules 4): a
  request names its agreement in one form. CAE agreements: ``customer_code`` alone, or
  ``type_code`` + ``trans_account_out`` ("同时传入 type_code 和 trans_account_out 与只传入
  customer_code 两种方式任选其一": one way or the other, not both); partner-protocol agreements:
  ``biz_type`` + ``user_email``, "两个参数均为必填参数". Without ``customer_code``,
  ``type_code``/``biz_type`` must not both be empty, nor ``trans_account_out``/``user_email``,
  and one of the two pairs must be complete;
- a request that mixes forms is a bad parameter combination, answered ``ILLEGAL_ARGUMENT``
  ("请检查请求参数是否正确"): ``customer_code`` beside any other identifier, or a lone field of
  the other pair beside a complete one. The one mix the documents give a meaning to is both
  pairs complete: the priorities (usage rules 4: ``trans_account_out`` > ``user_email``,
  ``type_code`` > ``biz_type``) both pick ``type_code`` + ``trans_account_out``;
- ``biz_type`` + ``user_email`` only for ``sign_protocol_with_partner`` agreements, so whenever
  both are sent ``biz_type`` must be ``10004`` (usage rules 4; "biz_type 取值不合法");
- a parameter sent with an empty value counts as not sent here (it is not signed either, 7.1.2).

No format is imposed where the documents give none (an account that is not ``user_id+0156``
simply names no agreement). The section 4.3 sample request ("本样例仅供参考") sends all five
identifiers with ``biz_type=10003``: it breaks both the notes of 4.2 and usage rules 4, and is
answered ``ILLEGAL_ARGUMENT`` here. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping

#: biz_type of agreements signed through sign_protocol_with_partner.
PARTNER_BIZ_TYPE = "10004"
#: Longest accepted value of each business parameter, characters.
MAX_LENGTHS: dict[str, int] = {"customer_code": 20, "type_code": 30, "biz_type": 5,
                               "trans_account_out": 20, "user_email": 100}
BUSINESS = tuple(MAX_LENGTHS)
#: An agreement's identity: ``("customer_code", code)`` or ``(kind, agreement, account)``.
Identity = tuple[str, ...]


#: The two pairs that name an agreement without customer_code.
CAE_PAIR = ("type_code", "trans_account_out")
PARTNER_PAIR = ("biz_type", "user_email")


def _sent(params: Mapping[str, str]) -> set[str]:
    return {name for name in BUSINESS if params.get(name, "")}


def _complete(sent: set[str]) -> tuple[bool, bool]:
    """Whether the CAE pair and the partner-protocol pair are both sent."""
    return set(CAE_PAIR) <= sent, set(PARTNER_PAIR) <= sent


def argument_problems(params: Mapping[str, str]) -> list[str]:
    """Why the gateway would answer ``ILLEGAL_ARGUMENT`` (empty list: it would not)."""
    get = {name: params.get(name, "") for name in BUSINESS}
    problems = [f"{name}: longer than {limit} characters"
                for name, limit in MAX_LENGTHS.items() if len(get[name]) > limit]
    sent = _sent(params)
    if "customer_code" in sent:
        problems.extend(f"{name}: customer_code names the agreement alone, {name} beside it "
                        "mixes two forms" for name in sorted(sent - {"customer_code"}))
        return problems
    if not get["type_code"] and not get["biz_type"]:
        problems.append("without customer_code, type_code and biz_type are both empty")
    if not get["trans_account_out"] and not get["user_email"]:
        problems.append("without customer_code, trans_account_out and user_email are both empty")
    cae, partner = _complete(sent)
    if not problems and not (cae or partner):
        problems.append("without customer_code, neither type_code + trans_account_out nor "
                        "biz_type + user_email is complete")
    if cae != partner:  # one pair complete: nothing of the other may be sent
        other = PARTNER_PAIR if cae else CAE_PAIR
        problems.extend(f"{name}: sent without the rest of {' + '.join(other)}, beside the "
                        "complete other pair" for name in other if name in sent)
    if partner and get["biz_type"] != PARTNER_BIZ_TYPE:
        problems.append(f"biz_type + user_email: biz_type must be {PARTNER_BIZ_TYPE}")
    return problems


def identity(params: Mapping[str, str]) -> Identity:
    """The agreement a valid request names (e-mails compared in lower case: a login is not
    case-sensitive): ``customer_code``; else ``type_code`` + ``trans_account_out`` when sent
    (alone, or beside a complete partner pair: the priorities); else ``biz_type`` +
    ``user_email``."""
    code = params.get("customer_code", "")
    if code:
        return ("customer_code", code)
    cae, _ = _complete(_sent(params))
    if cae:
        return ("type_code", params["type_code"], params["trans_account_out"])
    return ("biz_type", params.get("biz_type", ""), params.get("user_email", "").lower())
