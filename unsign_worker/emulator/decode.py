"""The emulator's own request decoding: raw query string and form body bytes -> parameters.

Deliberately independent of the HTTP framework's helpers (which assume UTF-8): pairs are split
on ``&``, ``+`` becomes a space, ``%XX`` becomes a byte, exactly once, and the bytes are decoded
with ``_input_charset`` (taken from the query string or the body). A client that URL-encodes its
values before signing, encodes twice, or declares one charset and sends another, therefore ends
up with values that differ from what it signed, and gets ``ILLEGAL_SIGN`` as from the gateway.
Bytes that are not valid in the declared charset are replaced (U+FFFD) rather than refused, for
the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from unsign_worker.emulator.charsets import codec_for

CHARSET_PARAM = b"_input_charset"


@dataclass(frozen=True)
class Decoded:
    """The parameters of one request, in the order they first appeared."""

    params: dict[str, str]
    #: the Python codec of ``_input_charset`` (``utf-8``, ``gbk``, ``gb2312``, ``gb18030``), or
    #: "" if the parameter is missing or names a charset the gateway does not know
    charset: str


def split_pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    """``a=1&b=%E4%B8%AD`` -> ``[(b"a", b"1"), (b"b", b"\\xe4\\xb8\\xad")]`` (bytes, undecoded)."""
    pairs: list[tuple[bytes, bytes]] = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        name, _, value = chunk.partition(b"=")
        if b"%" in chunk or b"+" in chunk:  # most values need neither: skip the work
            name = unquote_to_bytes(name.replace(b"+", b" "))
            value = unquote_to_bytes(value.replace(b"+", b" "))
        pairs.append((name, value))
    return pairs


def decode_request(query: bytes, body: bytes = b"") -> Decoded:
    """Decode the raw query string and form body (the body wins on a repeated name)."""
    pairs = split_pairs(query)
    if body:
        pairs.extend(split_pairs(body))
    declared = ""
    for name, value in pairs:
        if name == CHARSET_PARAM:
            declared = value.decode("latin-1")
    codec = codec_for(declared)
    text_codec = codec or "utf-8"  # unknown charset: decoded only to be echoed and refused
    params: dict[str, str] = {}
    for name, value in pairs:
        params[name.decode(text_codec, errors="replace")] = value.decode(text_codec,
                                                                         errors="replace")
    return Decoded(params=params, charset=codec)
