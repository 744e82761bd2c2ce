"""How answers are written, beyond what the documents' samples show, and how strictly requests
are read.

The defaults are the samples: errors and query answers unsigned, bodies in UTF-8; and requests
read as strictly as the usage rules ask. Each option turns on a variant a real gateway (or a
proxy in front of it) may produce, so a client can be tried against it:

- ``sign_errors``: ``customer_unsign`` error answers carry a signature over ``<error>``;
- ``sign_query``: ``query_customer_protocol`` answers (successes and errors) are signed;
- ``charset``: the answer is declared and encoded in ``utf-8``, ``gbk``, ``gb2312`` or
  ``gb18030``, or ``request`` (the request's ``_input_charset``). Signatures are computed over
  the ``_input_charset`` bytes whatever the answer's encoding (7.1.2), as in sample 5.3, which
  is declared utf-8 for a GBK request;
- ``lenient``: a parameter sent with an empty value is accepted (it counts as not sent) instead
  of being refused ``ILLEGAL_ARGUMENT`` (see :mod:`.strictness`): for experiments only, since
  the rules forbid it. A parameter outside the request table is refused in both modes.

An answer is signed only with the key of the request's own sign type, and only once the partner
and that sign type are known good: never with another type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from unsign_worker.emulator.charsets import CODECS
from unsign_worker.emulator.errors import EmulatorConfigError

FOLLOW_REQUEST = "request"
CHARSET_CHOICES = (*CODECS, FOLLOW_REQUEST)


@dataclass(frozen=True, kw_only=True)
class AnswerOptions:
    sign_errors: bool = False
    sign_query: bool = False
    charset: str = "utf-8"
    #: accept empty values (the rules forbid them; strict, the default, refuses them)
    lenient: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, where: str = "options",
                     base: AnswerOptions | None = None) -> AnswerOptions:
        """``base`` (default: the documents' defaults) with the options in ``data`` changed.

        Raises:
            EmulatorConfigError: an unknown option or a bad value, named ``where.option``.
        """
        changes: dict[str, object] = {}
        for name, value in data.items():
            if name in ("sign_errors", "sign_query", "lenient"):
                if not isinstance(value, bool):
                    raise EmulatorConfigError(f"{where}.{name}: must be true or false")
            elif name == "charset":
                if not isinstance(value, str) or value.lower() not in CHARSET_CHOICES:
                    raise EmulatorConfigError(f"{where}.charset: must be one of "
                                              f"{', '.join(CHARSET_CHOICES)}")
                value = value.lower()
            else:
                raise EmulatorConfigError(f"{where}.{name}: unknown option (known: charset, "
                                          "lenient, sign_errors, sign_query)")
            changes[name] = value
        return replace(base or cls(), **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def encoding_for(self, request_codec: str) -> str:
        """The encoding of an answer to a request in ``request_codec`` ("" if unknown)."""
        if self.charset == FOLLOW_REQUEST:
            return request_codec or "utf-8"
        return self.charset
