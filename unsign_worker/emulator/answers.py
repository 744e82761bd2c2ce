"""The XML answers, as the documents' samples show them (technical document 5.3, query
document 4.3). Pure: values in, bytes out.

- ``customer_unsign`` success: ``<is_success>T``, the ``<request>`` echo (every parameter but
  ``sign``/``sign_type``), ``<response><customer>`` with ``customer_code`` and ``type_code``,
  then ``<sign>`` and ``<sign_type>``; its signature covers the children of ``<customer>``.
- error: ``<is_success>F`` and ``<error>``, unsigned as in the sample; when a signed error is
  asked for, the signature covers the ``<error>`` node only (7.1.1).
- ``query_customer_protocol`` success: ``is_success``, ``charge_agent``, ``refund_charge``,
  ``user_id``, unsigned as in its sample; when a signed one is asked for, the signature covers
  every returned parameter but ``sign``/``sign_type`` (query document 6.1.1).

The body is declared and encoded in ``encoding``; a character that encoding cannot carry is
written as an XML character reference, so the parsed text is always the value itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from xml.sax.saxutils import escape

#: Signs name/value pairs: returns ``(sign, sign_type)``.
Sign = Callable[[Mapping[str, str]], tuple[str, str]]


def _text(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _leaves(fields: Mapping[str, str]) -> str:
    return "".join(f"<{name}>{_text(value)}</{name}>" for name, value in fields.items())


def _document(inner: str, covered: Mapping[str, str], sign: Sign | None, encoding: str
              ) -> bytes:
    if sign is not None:
        signature, sign_type = sign(covered)
        inner += f"<sign>{_text(signature)}</sign><sign_type>{sign_type}</sign_type>"
    text = f'<?xml version="1.0" encoding="{encoding}"?><alipay>{inner}</alipay>'
    return text.encode(encoding, errors="xmlcharrefreplace")


def unsign_success(echo: Mapping[str, str], customer: Mapping[str, str], sign: Sign | None,
                   encoding: str = "utf-8") -> bytes:
    """Section 5.3 "正常输出"."""
    params = "".join(f'<param name="{_text(k)}">{_text(v)}</param>' for k, v in echo.items())
    inner = (f"<is_success>T</is_success><request>{params}</request>"
             f"<response><customer>{_leaves(customer)}</customer></response>")
    return _document(inner, customer, sign, encoding)


def unsign_error(code: str, sign: Sign | None, encoding: str = "utf-8") -> bytes:
    """Section 5.3 "发生错误时输出"; a signature, if any, covers ``error`` only."""
    return _document(f"<is_success>F</is_success><error>{_text(code)}</error>",
                     {"error": code}, sign, encoding)


def query_answer(fields: Mapping[str, str], sign: Sign | None, encoding: str = "utf-8"
                 ) -> bytes:
    """Query document 4.3: ``fields`` start with ``is_success``; a signature, if any, covers
    every field."""
    return _document(_leaves(fields), fields, sign, encoding)
