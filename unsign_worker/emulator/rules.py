"""Which agreement a ``customer_unsign`` request names, and when it is ``ILLEGAL_ARGUMENT``.

Read afresh from the documents, and only as strict as they are (the emulator must let a
too-strict client show itself):

- lengths (technical document table 4-1): ``type_code`` String(30), ``biz_type`` String(5),
  ``trans_account_out`` String(20), ``user_email`` String(100); ``customer_code`` is String(12)
  in the request table but String(20) in the answer table, whose sample hands out the 13-digit
  ``1118400000013``: the gateway accepts the codes it gives out, so up to 20 here;
- the forms (section 4.2 notes, usage rules 3 "参数配置" and "错误码处理"): ``customer_code``
  alone, or ``type_code`` + ``trans_account_out``, or ``biz_type`` + ``user_email``; without
  ``customer_code``, ``type_code``/``biz_type`` must not both be empty, nor
  ``trans_account_out``/``user_email``, and one of the two pairs must be complete;
- ``biz_type`` + ``user_email`` only for ``sign_protocol_with_partner`` agreements, so the
  ``biz_type`` that names an agreement must be ``10004`` (usage rules 4; "biz_type 取值不合法");
- a parameter sent with an empty value counts as not sent (it is not signed either, 7.1.2).

No format is imposed where the documents give none (an account that is not ``user_id+0156``
simply names no agreement). Priorities (usage rules 4): ``trans_account_out`` over
``user_email``, ``type_code`` over ``biz_type``; ``customer_code``, when given, names the
agreement alone. Pure functions.
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


def argument_problems(params: Mapping[str, str]) -> list[str]:
    """Why the gateway would answer ``ILLEGAL_ARGUMENT`` (empty list: it would not)."""
    get = {name: params.get(name, "") for name in BUSINESS}
    problems = [f"{name}: longer than {limit} characters"
                for name, limit in MAX_LENGTHS.items() if len(get[name]) > limit]
    if get["customer_code"]:
        return problems
    if not get["type_code"] and not get["biz_type"]:
        problems.append("without customer_code, type_code and biz_type are both empty")
    if not get["trans_account_out"] and not get["user_email"]:
        problems.append("without customer_code, trans_account_out and user_email are both empty")
    cae_pair = bool(get["type_code"] and get["trans_account_out"])
    partner_pair = bool(get["biz_type"] and get["user_email"])
    if not problems and not (cae_pair or partner_pair):
        problems.append("without customer_code, neither type_code + trans_account_out nor "
                        "biz_type + user_email is complete")
    if partner_pair and not cae_pair and get["biz_type"] != PARTNER_BIZ_TYPE:
        problems.append(f"biz_type + user_email: biz_type must be {PARTNER_BIZ_TYPE}")
    return problems


def identity(params: Mapping[str, str]) -> Identity:
    """The agreement a valid request names, after the priorities (e-mails compared in lower
    case: a login is not case-sensitive)."""
    code = params.get("customer_code", "")
    if code:
        return ("customer_code", code)
    type_code = params.get("type_code", "")
    kind, agreement = ("type_code", type_code) if type_code else (
        "biz_type", params.get("biz_type", ""))
    account = params.get("trans_account_out", "") or params.get("user_email", "").lower()
    return (kind, agreement, account)
