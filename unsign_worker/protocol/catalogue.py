"""The error catalogues: every code of sections 8.1 and 8.2 of the technical document, and
every code of section 7 of the query_customer_protocol document.

Each code has its Chinese meaning (verbatim from the document), an English meaning, a category
that decides the route, and the operator advice the usage rules give. Pure data and lookups.

Categories:
- ``retry``: transient; send again with the ORIGINAL parameters (rules: SYSTEM_ERROR,
  ILLEGAL_SYSTEM).
- ``escalate``: merchant-agreement problems only Alipay support can fix -> dead-letter queue.
- ``reject``: this job's arguments or customer -> terminal, retrying unchanged is pointless.
- ``halt``: the integration is misconfigured or blocked -> open the breaker, stop the line.
- ``gone``: (query_customer_protocol only) the customer has no agreement: settles a lost answer
  as ``already_unsigned``.
An unknown code is ``escalate``: never retried forever, always seen by a human.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    RETRY = "retry"
    ESCALATE = "escalate"
    REJECT = "reject"
    HALT = "halt"
    GONE = "gone"


@dataclass(frozen=True)
class ErrorCode:
    code: str
    zh: str
    en: str
    category: Category
    advice: str
    #: "8.1" (business), "8.2" (system), "extra" (named by the usage rules only) or "query 7"
    #: (section 7 of the query_customer_protocol document)
    section: str

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "zh": self.zh,
            "en": self.en,
            "category": str(self.category),
            "advice": self.advice,
            "section": self.section,
        }


_R, _E, _J, _H, _G = (Category.RETRY, Category.ESCALATE, Category.REJECT, Category.HALT,
                      Category.GONE)

_SUPPORT = "Contact Alipay technical support (system error, section 8.2)."
_CONFIG = (
    "The integration is misconfigured or blocked; every job would fail the same way. "
    "Fix the configuration (unsign-worker check-config), then reset the breaker."
)

_ROWS: tuple[tuple[str, str, str, Category, str, str], ...] = (
    # --- 8.1 business codes -------------------------------------------------------------------
    ("FAIL_UNSIGN_BATCH_PAY_PRIVILEGE", "K 计划客户解约时解除即时付款到卡的权限失败",
     "Removing the customer's instant pay-to-card privilege failed (K plan only)", _E,
     "Contact Alipay technical support: removing the batch-pay privilege failed "
     "(happens only for Ali K-plan customers).", "8.1"),
    ("ILLEGAL_SYSTEM", "客户解约系统异常", "Unsign system error", _R,
     "Alipay did not finish in time and the customer may not be unsigned: send the unsign "
     "again with the ORIGINAL request parameters.", "8.1"),
    ("ILLEGAL_SERVICE_TIME_OUT", "签约服务超期", "The merchant's signing service has expired", _E,
     "Contact Alipay technical support: the merchant agreement has expired and must be "
     "renewed, or is waiting for risk review.", "8.1"),
    ("ILLEGAL_ARGUMENT", "输入参数有错误", "Invalid input parameters", _J,
     "Check the request parameters: without customer_code, type_code+trans_account_out or "
     "biz_type+user_email must be a complete pair; biz_type must be legal (10004).", "8.1"),
    ("NOT_EXIST_CUST_SIGN", "客户签约信息不存在", "The customer's agreement does not exist", _J,
     "Check the agreement identifiers; if an earlier attempt of ours may have reached the "
     "gateway, the agreement is most likely already unsigned.", "8.1"),
    ("STATUS_CUSTOMER_SIGN", "客户签约状态非正常",
     "The customer's agreement is not in a normal state", _J,
     "The agreement is not active (often: already unsigned). If an earlier attempt of ours "
     "may have reached the gateway, treat it as already unsigned.", "8.1"),
    ("NOT_EXIST_PARTNER_TYPE_CODE", "商户的签约信息不存在",
     "The merchant's agreement (type_code) does not exist", _E,
     "Contact Alipay technical support: the merchant agreement does not exist or was "
     "modified and awaits review.", "8.1"),
    ("NOT_EXIST_CUSTOMER", "要解约的客户不存在", "The customer to unsign does not exist", _J,
     "Check the customer identifiers (trans_account_out / user_email).", "8.1"),
    ("FAIL_UNFREEZE_STANDARD_BAIL", "解冻保证金失败", "Unfreezing the standard deposit failed", _E,
     "Contact Alipay technical support to check that the Alipay account behind this "
     "agreement exists and is not frozen.", "8.1"),
    ("TOO_MUCH_TYPE_CODE", "商户存在多条签约信息", "The merchant has several agreements", _E,
     "Contact Alipay technical support to check that the merchant agreement under this "
     "biz_type is unique; until then the customer cannot unsign.", "8.1"),
    ("ILLEGAL_SIGN", "签名不正确", "Incorrect signature", _H,
     "Requests are signed wrongly: check the key / private key, the sign type and the charset "
     "(unsign-worker sign shows the string to sign).", "8.1"),
    ("ILLEGAL_DYN_MD5_KEY", "动态密钥信息错误", "Dynamic key information is wrong", _H, _CONFIG,
     "8.1"),
    ("ILLEGAL_ENCRYPT", "加密不正确", "Incorrect encryption", _H, _CONFIG, "8.1"),
    ("ILLEGAL_SERVICE", "Service 参数不正确", "Incorrect service parameter", _H, _CONFIG, "8.1"),
    ("ILLEGAL_USER", "客户 ID 不正确", "Incorrect customer ID", _J,
     "Check the customer identifiers of this job.", "8.1"),
    ("ILLEGAL_PARTNER", "商户 ID 不正确", "Incorrect partner ID", _H,
     "ALIPAY_PARTNER does not match the contract: check it.", "8.1"),
    ("ILLEGAL_EXTERFACE", "接口配置不正确", "Interface configuration is wrong", _H, _CONFIG, "8.1"),
    ("ILLEGAL_PARTNER_EXTERFACE", "商户接口信息不正确", "Merchant interface information is wrong",
     _H, _CONFIG, "8.1"),
    ("ILLEGAL_SECURITY_PROFILE", "未找到匹配的密钥配置", "No matching key profile found", _H,
     "No key profile matches the sign type: check ALIPAY_SIGN_TYPE and the keys uploaded to "
     "Alipay.", "8.1"),
    ("ILLEGAL_AGENT", "代理 ID 不正确", "Incorrect agent ID", _H, _CONFIG, "8.1"),
    ("ILLEGAL_SIGN_TYPE", "签名类型不正确", "Incorrect sign type", _H,
     "ALIPAY_SIGN_TYPE must be MD5, RSA or DSA, in upper case.", "8.1"),
    ("ILLEGAL_CHARSET", "字符集不合法", "Illegal charset", _H,
     "ALIPAY_INPUT_CHARSET must be one the gateway knows (utf-8, gbk, gb2312).", "8.1"),
    ("ILLEGAL_CLIENT_IP", "客户端 IP 地址无权访问服务", "Client IP is not allowed", _H,
     "This host's IP address is not allowed to call the service: ask Alipay support.", "8.1"),
    ("ILLEGAL_DIGEST_TYPE", "摘要类型不正确", "Incorrect digest type", _H, _CONFIG, "8.1"),
    ("ILLEGAL_DIGEST", "文件摘要不正确", "Incorrect file digest", _H, _CONFIG, "8.1"),
    ("ILLEGAL_FILE_FORMAT", "文件格式不正确", "Incorrect file format", _H, _CONFIG, "8.1"),
    ("ILLEGAL_ENCODING", "不支持该编码类型", "Encoding not supported", _H, _CONFIG, "8.1"),
    ("ILLEGAL_REQUEST_REFERER", "防钓鱼检查不支持该请求来源",
     "Anti-phishing check: request origin not supported", _H, _CONFIG, "8.1"),
    ("ILLEGAL_ANTI_PHISHING_KEY", "防钓鱼检查非法时间戳参数",
     "Anti-phishing check: illegal timestamp parameter", _H, _CONFIG, "8.1"),
    ("ANTI_PHISHING_KEY_TIMEOUT", "防钓鱼检查时间戳超时", "Anti-phishing check: timestamp expired",
     _H, _CONFIG, "8.1"),
    ("ILLEGAL_EXTER_INVOKE_IP", "防钓鱼检查非法调用 IP", "Anti-phishing check: illegal caller IP",
     _H, _CONFIG, "8.1"),
    ("HAS_NO_PRIVILEGE", "无权访问", "No privilege", _H,
     "The partner has no privilege for customer_unsign: ask Alipay support to open it.", "8.1"),
    # --- 8.2 system codes ---------------------------------------------------------------------
    ("SYSTEM_ERROR", "支付宝系统错误", "Alipay system error", _R,
     "Alipay did not finish in time: send the unsign again with the ORIGINAL request "
     "parameters; if it persists, contact Alipay technical support.", "8.2"),
    ("SESSION_TIMEOUT", "session 超时", "Session timeout", _R,
     "Transient session timeout: retried with the original parameters; if it persists, "
     "contact Alipay technical support.", "8.2"),
    ("ILLEGAL_TARGET_SERVICE", "错误的 target_service", "Wrong target_service", _H, _SUPPORT,
     "8.2"),
    ("ILLEGAL_ACCESS_SWITCH_SYSTEM", "partner 不允许访问该类型的系统",
     "The partner may not access this kind of system", _H, _SUPPORT, "8.2"),
    ("ILLEGAL_SWITCH_SYSTEM", "切换系统异常", "System switch error", _H, _SUPPORT, "8.2"),
    ("EXTERFACE_IS_CLOSED", "接口已关闭", "The interface is closed", _H,
     "The customer_unsign interface is closed for this partner: contact Alipay support.", "8.2"),
    # --- named by the usage rules ---------------------------------------------------------------
    ("STATUS_TYPE_CODE", "商户协议状态非正常", "The merchant agreement is not in a normal state",
     _E,
     "Contact Alipay technical support: the merchant agreement has expired and needs renewal, "
     "or was modified and awaits risk review.", "extra"),
)

CATALOGUE: dict[str, ErrorCode] = {
    row[0]: ErrorCode(code=row[0], zh=row[1], en=row[2], category=row[3], advice=row[4],
                      section=row[5])
    for row in _ROWS
}


def lookup(code: str) -> ErrorCode:
    """The catalogue entry for ``code``; an unknown code is escalated, never retried forever."""
    entry = CATALOGUE.get(code)
    if entry is not None:
        return entry
    return ErrorCode(
        code=code,
        zh="未知错误码",
        en="Unknown error code",
        category=Category.ESCALATE,
        advice="The gateway answered a code this worker does not know: ask Alipay technical "
        "support what it means before requeueing.",
        section="unknown",
    )


# --- query_customer_protocol, section 7 (table 7-1) --------------------------------------------
# The worker queries only to settle an unsign whose answer was lost, always with biz_type=10004
# and user_email. A code that says the same for every query (a partner not allowed to query, a
# biz_type refused although it is the documented 10004) stops the line; one that does not say
# whether the agreement is gone is for a human, never a rejection by default.
_QUERY_ADVICE = ("query_customer_protocol could not say whether the agreement is still signed; "
                 "look it up in Alipay's merchant console (or ask Alipay technical support), then "
                 "requeue the job or settle it by hand.")
_QUERY_ROWS: tuple[tuple[str, str, str, Category, str], ...] = (
    ("ILLEGAL_PARTNER", "不是合法的机票 partner", "Not a legal air-ticket partner", _H,
     "ALIPAY_PARTNER may not use query_customer_protocol: check the partner ID and ask Alipay "
     "support to open the air-ticket (10004) business for it."),
    ("NOT_AIR_PLANE_PARTNER", "没有开通机票业务或者没有签署机票协议",
     "The air-ticket business is not opened or its agreement not signed", _H,
     "The partner has not opened the air-ticket business (biz_type 10004) or not signed its "
     "agreement: ask Alipay support; until then lost answers cannot be settled."),
    ("ILLEGAL_ACCOUNT_NO", "不合法账号", "Illegal account number", _E,
     "The gateway refused the account of this agreement: check the job's user_email. "
     + _QUERY_ADVICE),
    ("NO_SIGN_CUSTOMER", "没签约的客户", "The customer has no agreement", _G,
     "Nothing to do: the customer holds no 10004 agreement (an earlier attempt unsigned it)."),
    ("NULL_EMAIL_AND_ACCOUNT_NO", "查询的用户账户和 userEmail 不能同时为空",
     "The account and userEmail of the query must not both be empty", _E,
     "The gateway received no user_email for this agreement (check ALIPAY_INPUT_CHARSET and the "
     "job's user_email). " + _QUERY_ADVICE),
    ("NO_NORMAL_SIGN_CUSTOMER", "签约状态不正常", "The agreement is not in a normal state", _E,
     "The agreement exists but is not in a normal state: neither proof that it is unsigned nor "
     "that it is still signed. " + _QUERY_ADVICE),
    ("ILLEGAL_BIZ_TPYE", "非法的业务类型，本接口必需输入 10004",
     "Illegal business type; this interface needs 10004", _H,
     "The gateway refuses biz_type 10004 for this partner, so every query would fail the same "
     "way: ask Alipay support (the code is spelt TPYE by the gateway)."),
)

QUERY_CATALOGUE: dict[str, ErrorCode] = {
    row[0]: ErrorCode(code=row[0], zh=row[1], en=row[2], category=row[3], advice=row[4],
                      section="query 7")
    for row in _QUERY_ROWS
}


def lookup_query(code: str) -> ErrorCode:
    """The entry for a code answered by ``query_customer_protocol``.

    The query document's own codes first; then the gateway-wide codes of the technical document
    that mean the same for every service (``retry``: system errors, ``halt``: signature, charset,
    partner...); anything else (an unsign business code, an unknown code) is ``escalate``.
    """
    entry = QUERY_CATALOGUE.get(code)
    if entry is not None:
        return entry
    general = CATALOGUE.get(code)
    if general is not None and general.category in (Category.RETRY, Category.HALT):
        return general
    return ErrorCode(code=code, zh=general.zh if general else "未知错误码",
                     en=general.en if general else "Unknown error code",
                     category=Category.ESCALATE,
                     advice="query_customer_protocol answered a code its document does not "
                     "list. " + _QUERY_ADVICE, section="unknown")


def codes_in(category: Category) -> list[str]:
    """Every known code of one category, sorted."""
    return sorted(c for c, e in CATALOGUE.items() if e.category is category)
