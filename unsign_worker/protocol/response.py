"""Parsing the gateway's synchronous XML answer (section 5), safely. Pure: bytes in, value out.

- Bodies over ``max_bytes`` are refused before any parsing.
- ``defusedxml`` refuses DTDs, entity declarations and external references (XXE, billion laughs).
- Nesting deeper than ``MAX_DEPTH`` or more than ``MAX_ELEMENTS`` elements is refused.
- The declared encoding is honoured (the gateway may answer in GBK), decoded here rather than
  by expat, which cannot read multi-byte encodings; ``gb2312`` is read as its superset GBK.
  Only ``utf-8``, ``gbk``, ``gb2312`` and ``gb18030`` may be declared.
- A top-level field, ``<request>``, ``<response>`` or ``<customer>`` given twice is refused.
- The answer is judged by the document of the service asked for. customer_unsign (section
  7.1.1): the signature covers the children of ``<response><customer>`` on success, the
  ``<error>`` node on failure; a success without ``<customer>`` (and its ``customer_code``) or
  without a signature is refused, and so is one the verifier cannot check.
  query_customer_protocol (its sections 4.2, 4.3): the answer carries no ``sign``/``sign_type``;
  it is believed unsigned only when the caller says the request went over a trusted channel
  (see docs/security.md); a signature, when present, is verified over every top-level field.
- A wrong signature raises :class:`BadSignatureError`: never a success.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as SafeET

from unsign_worker.protocol.exceptions import BadSignatureError, ResponseError
from unsign_worker.protocol.params import QUERY_SERVICE, SERVICE
from unsign_worker.protocol.signing import Signer, string_to_sign, verify_params

#: Default cap on the body size, bytes.
MAX_RESPONSE_BYTES = 64 * 1024
#: Deepest element nesting accepted.
MAX_DEPTH = 16
#: Most elements accepted in one answer.
MAX_ELEMENTS = 500

#: Encodings an answer may declare (the gateway's charsets; gb2312 is read as GBK).
DECLARED_ENCODINGS = ("utf-8", "gbk", "gb2312", "gb18030")

_DECL_RE = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_\-]+)[\"'][^>]*\?>")


@dataclass(frozen=True)
class GatewayResponse:
    """One answer of the gateway."""

    is_success: bool
    error: str = ""
    #: children of <response><customer> (success of customer_unsign)
    customer: dict[str, str] = field(default_factory=dict)
    #: the <request> echo: param name -> value
    request: dict[str, str] = field(default_factory=dict)
    #: other top-level leaf fields (query_customer_protocol: charge_agent, refund_charge, user_id)
    fields: dict[str, str] = field(default_factory=dict)
    sign: str = ""
    sign_type: str = ""
    #: True when a signature was present and verified
    verified: bool = False
    #: the service the request asked for (the answer was judged by its document)
    service: str = SERVICE

    def signed_params(self) -> dict[str, str]:
        return signed_content(self.is_success, self.error, self.customer, self.fields)


def signed_content(is_success: bool, error: str, customer: Mapping[str, str],
                   fields: Mapping[str, str]) -> dict[str, str]:
    """The name/value pairs the answer's signature covers."""
    if not is_success:
        return {"error": error}
    if customer:
        return dict(customer)
    return {k: v for k, v in fields.items() if k not in ("sign", "sign_type")}


def query_signed_content(flag: str, error: str, leaves: Mapping[str, str]) -> dict[str, str]:
    """What a signed query_customer_protocol answer's signature covers: every returned
    parameter but ``sign``/``sign_type`` (query document 6.1.1), ``is_success`` included."""
    return {"is_success": flag, **({"error": error} if error else {}), **leaves}


def _decode(body: bytes) -> str:
    match = _DECL_RE.match(body)
    encoding = match.group(1).decode("ascii").lower() if match else "utf-8"
    if encoding not in DECLARED_ENCODINGS:
        # the gateway answers in the charsets it accepts; any other codec Python happens to
        # know (utf-7, punycode, rot13...) would read bytes as something they are not
        raise ResponseError(f"XML encoding {encoding[:20]!r} refused: the gateway answers in "
                            f"{', '.join(DECLARED_ENCODINGS)}", reason="encoding")
    # GBK is a superset of GB2312, and answers declared gb2312 may carry GBK-only characters
    codec = signing_codec(encoding)
    try:
        text = body.decode(codec)
    except UnicodeError:  # UnicodeDecodeError, or its base from codecs such as punycode
        raise ResponseError(f"body is not valid {encoding}", reason="encoding") from None
    if match:
        text = text[len(match.group(0).decode("ascii", errors="replace")):]
    return text.lstrip("\ufeff")


def _check_shape(root: ET.Element) -> None:
    count = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise ResponseError("XML nested too deeply", reason="too_deep")
        if count > MAX_ELEMENTS:
            raise ResponseError("XML has too many elements", reason="too_large")
        stack.extend((child, depth + 1) for child in node)


def parse_xml(body: bytes, *, max_bytes: int = MAX_RESPONSE_BYTES) -> ET.Element:
    """Parse ``body`` safely into an element tree.

    Raises:
        ResponseError: too large, not decodable, DTD/entities, malformed, too deep.
    """
    if len(body) > max_bytes:
        raise ResponseError(f"body of {len(body)} bytes exceeds {max_bytes}", reason="too_large")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ResponseError("XML with a DTD or entity declaration refused", reason="dtd")
    text = _decode(body)
    try:
        root: ET.Element = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True,
                                             forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise ResponseError(f"unsafe XML refused: {type(exc).__name__}", reason="dtd") from None
    except ET.ParseError as exc:
        raise ResponseError(f"malformed XML: {exc}", reason="malformed") from None
    except UnicodeError:  # e.g. lone surrogates decoded by unicode_escape: not XML characters
        raise ResponseError("body decodes to characters XML cannot carry",
                            reason="encoding") from None
    _check_shape(root)
    return root


def parse_response(body: bytes, *, verifier: Signer | None = None, charset: str = "utf-8",
                   service: str = SERVICE, trusted_channel: bool = False,
                   max_bytes: int = MAX_RESPONSE_BYTES) -> GatewayResponse:
    """Parse and verify one answer to a request for ``service``.

    Parameters:
        body: the raw HTTP body.
        verifier: checks the answer's signature (MD5 key, or Alipay's public key). None parses
            the structure only (inspection and tests): the result is never ``verified``, and
            the worker never passes None.
        charset: the request's ``_input_charset``, used to encode the signed string (``gb2312``
            as its superset GBK, the codec the answer is read with).
        service: the service the request asked for; the answer is judged by its document.
        trusted_channel: the request went over verified TLS to the configured gateway (or to
            the loopback sandbox): only then is an unsigned ``query_customer_protocol`` answer,
            which its document defines without ``sign``/``sign_type``, believed.
        max_bytes: size cap.

    Raises:
        ResponseError: the body cannot be trusted as an answer (see :func:`parse_xml`), it is
            not an ``<alipay>`` document with ``is_success`` T or F, a block appears twice, or
            a customer_unsign success has no ``<response><customer>``.
        BadSignatureError: the signature is wrong; a success carries none (an unsigned query
            answer over a trusted channel excepted); or a verifier is given that cannot check
            it (a success never counts unchecked).
    """
    root = parse_xml(body, max_bytes=max_bytes)
    if root.tag != "alipay":
        raise ResponseError(f"root element is <{root.tag}>, not <alipay>", reason="malformed")
    leaves, customer, request = _read_blocks(root)
    flag = leaves.pop("is_success", "")
    if flag not in ("T", "F"):
        raise ResponseError("is_success is missing or not T/F", reason="malformed")
    is_success = flag == "T"
    error = leaves.pop("error", "")
    if not is_success and not error:
        raise ResponseError("is_success is F but no <error> code is given", reason="malformed")
    if is_success and service != QUERY_SERVICE and not (customer or {}).get("customer_code"):
        # section 5.3: a success carries <response><customer> and customer_code is never empty;
        # without it there is nothing the signature is defined over
        raise ResponseError("customer_unsign success without <response><customer> and its "
                            "customer_code", reason="malformed")
    customer = customer or {}
    sign = leaves.pop("sign", "")
    sign_type = leaves.pop("sign_type", "")
    verified = False
    if sign and verifier is not None:
        if not verifier.can_verify:
            raise BadSignatureError("answer signature cannot be checked: no verification key")
        content = (query_signed_content(flag, error, leaves) if service == QUERY_SERVICE
                   else signed_content(is_success, error, customer, {}))
        if not verify_params(content, sign, verifier, signing_codec(charset)):
            raise BadSignatureError()
        verified = True
    elif is_success and verifier is not None and not (
            service == QUERY_SERVICE and trusted_channel):
        raise BadSignatureError("success answer carries no signature")
    return GatewayResponse(is_success=is_success, error=error, customer=customer,
                           request=request, fields=leaves, sign=sign, sign_type=sign_type,
                           verified=verified, service=service)


def signing_codec(charset: str) -> str:
    """The codec of the signed bytes: ``gb2312`` is read and written as its superset GBK."""
    lowered = charset.lower()
    return "gbk" if lowered == "gb2312" else lowered


def _read_blocks(root: ET.Element
                 ) -> tuple[dict[str, str], dict[str, str] | None, dict[str, str]]:
    """The top-level leaves, the ``<response><customer>`` children (None when absent) and the
    ``<request>`` echo; any of them given twice is refused: which one would be believed?"""
    leaves: dict[str, str] = {}
    customer: dict[str, str] | None = None
    request: dict[str, str] = {}
    seen: set[str] = set()
    for child in root:
        if child.tag in ("request", "response"):
            if child.tag in seen:
                raise ResponseError(f"<{child.tag}> appears twice", reason="malformed")
            seen.add(child.tag)
        if child.tag == "request":
            for param in child:
                name = param.get("name")
                if name:
                    request[name] = param.text or ""
        elif child.tag == "response":
            nodes = child.findall("customer")
            if len(nodes) > 1:
                raise ResponseError("<customer> appears twice", reason="malformed")
            if nodes:
                customer = _unique_children(nodes[0], "customer")
        elif len(child) == 0:
            if child.tag in leaves:  # two <is_success> or two <sign>
                raise ResponseError(f"<{child.tag}> appears twice", reason="malformed")
            leaves[child.tag] = (child.text or "").strip()
    return leaves, customer, request


def _unique_children(node: ET.Element, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for child in node:
        if child.tag in out:
            raise ResponseError(f"<{where}><{child.tag}> appears twice", reason="malformed")
        out[child.tag] = child.text or ""
    return out


def _escape(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def render_response(*, is_success: bool, error: str = "", request: Mapping[str, str] | None = None,
                    customer: Mapping[str, str] | None = None,
                    fields: Mapping[str, str] | None = None, signer: Signer | None = None,
                    charset: str = "utf-8", sign_errors: bool = True) -> bytes:
    """Render an answer the way the gateway does (section 5.3), signed by ``signer``.

    A helper for tests and benchmarks that need an answer of the worker's own reading; the
    emulator renders its answers with its own code, written from the documents.
    """
    out = [f'<?xml version="1.0" encoding="{charset}"?>', "<alipay>",
           f"<is_success>{'T' if is_success else 'F'}</is_success>"]
    if not is_success:
        out.append(f"<error>{_escape(error)}</error>")
    if request:
        out.append("<request>")
        out.extend(f'<param name="{_escape(k)}">{_escape(v)}</param>' for k, v in request.items())
        out.append("</request>")
    if fields:
        out.extend(f"<{k}>{_escape(v)}</{k}>" for k, v in fields.items())
    if customer:
        out.append("<response><customer>")
        out.extend(f"<{k}>{_escape(v)}</{k}>" for k, v in customer.items())
        out.append("</customer></response>")
    if signer is not None and (is_success or sign_errors):
        content = signed_content(is_success, error, customer or {}, fields or {})
        sign = signer.sign(string_to_sign(content).encode(charset))
        out.append(f"<sign>{_escape(sign)}</sign><sign_type>{signer.sign_type}</sign_type>")
    out.append("</alipay>")
    return "".join(out).encode(charset)
