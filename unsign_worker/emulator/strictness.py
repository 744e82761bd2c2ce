"""What the gateway refuses in the shape of a request, before its parameter rules: a parameter
that is not in the interface's request table, and (strict mode) a parameter sent empty.

- **Only the table's parameters** (usage rules, table 3-1, 接口构造): between ``<form>`` and
  ``</form>`` "包含的数据只允许是要请求给支付宝的参数, 禁止出现商户自行命名, 不在接口技术文档请求
  参数列表中的其他数据", or the request is refused with ``ILLEGAL_SIGN``. Each service has its
  own table: customer_unsign's table 4-1, query_customer_protocol's table 3-1 (whose
  ``acount_no`` is read as ``account_no``, the name its sample 3.3 sends and the one the
  emulator reads). Always on: it is the answer the rules name.
- **No empty value** (usage rules, table 3-1, 签名): "对于请求参数列表中那些可空的参数, 如果选择
  使用它们, 那么这些参数的参数值必须不能为空或空值"; technical document 7.1.2: "没有值的参数无需
  传递". The rules give no code for it, so strict mode answers :data:`EMPTY_VALUE_CODE`,
  ``ILLEGAL_ARGUMENT`` ("输入参数有错误"; usage rules: "遇到错误码 ILLEGAL_ARGUMENT，请检查请求
  参数是否正确"): the request is signed correctly (an empty value is left out of the string to
  sign), so ``ILLEGAL_SIGN`` would point at the wrong mistake. Strict mode is the default; the
  lenient mode (:class:`~unsign_worker.emulator.options.AnswerOptions` ``lenient``) lets such a
  request through, an empty value then counting as not sent.

Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping

from unsign_worker.emulator.reply import QUERY_SERVICE, UNSIGN_SERVICE

#: customer_unsign's request parameters (technical document, table 4-1).
UNSIGN_PARAMETERS = frozenset({
    "service", "partner", "sign_type", "sign", "_input_charset",
    "customer_code", "type_code", "biz_type", "trans_account_out", "user_email"})
#: query_customer_protocol's request parameters (query document, table 3-1; ``account_no`` as
#: its sample 3.3 spells it).
QUERY_PARAMETERS = frozenset({
    "service", "partner", "_input_charset", "sign_type", "sign",
    "biz_type", "user_email", "account_no"})
#: service -> the parameters its request table lists.
REQUEST_PARAMETERS: dict[str, frozenset[str]] = {UNSIGN_SERVICE: UNSIGN_PARAMETERS,
                                                 QUERY_SERVICE: QUERY_PARAMETERS}
#: The answer to a parameter outside the request table (usage rules, 接口构造).
UNKNOWN_PARAMETER_CODE = "ILLEGAL_SIGN"
#: The strict mode's answer to a parameter sent with an empty value.
EMPTY_VALUE_CODE = "ILLEGAL_ARGUMENT"


def unknown_parameters(service: str, params: Mapping[str, str]) -> list[str]:
    """The names in ``params`` that ``service``'s request table does not list, sorted (every
    name for a service the emulator does not serve)."""
    known = REQUEST_PARAMETERS.get(service, frozenset())
    return sorted(name for name in params if name not in known)


def empty_parameters(params: Mapping[str, str]) -> list[str]:
    """The names in ``params`` sent with an empty value, sorted."""
    return sorted(name for name, value in params.items() if not value)
