"""How one request is answered: the encoding, the key that may sign, the spoiling faults.

A :class:`Reply` is made once the request is decoded; the checks and the services call
:meth:`Reply.error`, :meth:`Reply.unsigned` or :meth:`Reply.query` with what to say, and get
the :class:`Outcome` the server carries out. Which answers are signed follows
:class:`~unsign_worker.emulator.options.AnswerOptions`; a ``WRONG_SIGN`` fault always adds a
signature, one that does not verify.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from unsign_worker.emulator import answers
from unsign_worker.emulator.signatures import SignKey, sign_fields, sign_string
from unsign_worker.emulator.state import EmulatorState

UNSIGN_SERVICE = "customer_unsign"
QUERY_SERVICE = "query_customer_protocol"


@dataclass(frozen=True)
class Outcome:
    """What to do with the connection: write ``body``, or one of
    :data:`~unsign_worker.emulator.faults.TRANSPORT_STEPS` / ``LOST_ANSWER``."""

    body: bytes = b""
    action: str = "answer"
    status: int = 200
    #: what the answer says (``T`` or an error code), for the request log
    code: str = ""
    #: the request's ``service`` and the id of the agreement it reached ("" if none)
    service: str = ""
    agreement: str = ""


@dataclass
class Reply:
    state: EmulatorState
    service: str
    #: the request's charset codec: signatures are computed over these bytes (7.1.2)
    codec: str
    #: the answer's declared encoding
    encoding: str
    #: the key of the request's sign type, once partner and sign type are known good
    key: SignKey | None = None

    def _sign(self, wanted: bool, spoil: str | None) -> answers.Sign | None:
        key = self.key
        if key is None:
            return None
        if spoil == "WRONG_SIGN":
            def tampered(fields: Mapping[str, str]) -> tuple[str, str]:
                data = (sign_string(fields) + "&tampered=1").encode(self.codec, "replace")
                return key.sign(data), key.sign_type
            return tampered
        if not wanted:
            return None

        def sign(fields: Mapping[str, str]) -> tuple[str, str]:
            return sign_fields(fields, key, self.codec), key.sign_type
        return sign

    def error(self, code: str, *, spoil: str | None = None) -> Outcome:
        """``F`` with ``code``; signed as the options say for this service."""
        options = self.state.options
        if self.service == QUERY_SERVICE:
            return self._write(code, spoil, lambda: answers.query_answer(
                {"is_success": "F", "error": code}, self._sign(options.sign_query, spoil),
                self.encoding))
        return self._write(code, spoil, lambda: answers.unsign_error(
            code, self._sign(options.sign_errors, spoil), self.encoding))

    def unsigned(self, echo: Mapping[str, str], customer: Mapping[str, str], *,
                 spoil: str | None) -> Outcome:
        """The ``customer_unsign`` success, always signed (5.3)."""
        return self._write("T", spoil, lambda: answers.unsign_success(
            echo, customer, self._sign(True, spoil), self.encoding))

    def query(self, fields: Mapping[str, str], *, spoil: str | None) -> Outcome:
        """A ``query_customer_protocol`` success (``fields`` without ``is_success``)."""
        return self._write("T", spoil, lambda: answers.query_answer(
            {"is_success": "T", **fields}, self._sign(self.state.options.sign_query, spoil),
            self.encoding))

    def _write(self, code: str, spoil: str | None, render: Callable[[], bytes]) -> Outcome:
        stats = self.state.stats
        if spoil is not None:
            stats.faults[spoil] += 1
            if spoil == "LOST_ANSWER":
                return Outcome(action="LOST_ANSWER", code=code)
        body = render()
        if spoil == "MALFORMED":
            body = body[: len(body) // 2]
        elif spoil == "OVERSIZED":
            pad = max(0, self.state.faults.oversized_bytes - len(body) - len(b"<memo></memo>"))
            body = body.replace(b"</alipay>", b"<memo>" + b"x" * pad + b"</memo></alipay>")
        stats.answers[code] += 1
        return Outcome(body=body, code=code)
