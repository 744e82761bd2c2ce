"""The character sets the gateway speaks: ``_input_charset`` of requests, and answers.

Technical document table 4-1: ``_input_charset`` is "utf-8、gbk、gb2312 等"; the usage rules make
it mandatory. The emulator accepts those three and gb18030 (the GB superset), in any case, and
nothing else (``ILLEGAL_CHARSET``).
"""

from __future__ import annotations

#: Accepted ``_input_charset`` values (lower case) -> the Python codec that reads them.
CODECS: dict[str, str] = {"utf-8": "utf-8", "gbk": "gbk", "gb2312": "gb2312",
                          "gb18030": "gb18030"}


def codec_for(value: str) -> str:
    """The codec for a charset name (case-insensitive, surrounding spaces ignored), or "" if
    the gateway does not know it."""
    return CODECS.get(value.strip().lower(), "")
