"""What the emulator counts, for tests and benchmarks to check the worker's behaviour.

- ``connections_opened``: TCP connections the emulator accepted (HTTP or HTTPS, gateway and
  admin API alike): a client that keeps its connections alive opens few, whatever the requests.
- ``requests``: every request to ``/gateway.do``, whatever happened to it; ``in_flight`` of
  them are being handled now, and at most ``max_in_flight`` were at the same time.
- ``answers``: answers written, by ``T`` or error code (spoiled bodies included, lost ones not).
- ``faults``: injected faults by name (``RESET``, ``HTTP_503``, ``HANG``, ``LOST_ANSWER``,
  ``MALFORMED``, ``OVERSIZED``, ``WRONG_SIGN``, ``ERROR_RATE``, ``SCRIPTED``, ``GLOBAL_CODE``,
  ``ERROR_APPLIED``: a system error answered for an unsign that was applied).
- ``bad_signatures``: requests refused with ``ILLEGAL_SIGN`` because their signature is wrong.
- ``unknown_parameters``: requests refused with ``ILLEGAL_SIGN`` because they carry a parameter
  outside their service's request table; ``empty_values``: correctly signed requests carrying
  a parameter with an empty value (refused in strict mode, let through in lenient mode).
- per agreement: ``requests`` that reached it (after the checks), ``unsigns`` applied, and
  ``after_success``: requests that arrived after an earlier request had unsigned it (answered
  ``STATUS_CUSTOMER_SIGN``). These are legitimate after a lost answer or a timeout (the rules
  ask to re-send the original request) and a sign of a missing dedup otherwise.
- ``duplicates``: unsigns beyond the first of the same agreement since the last reset. The
  agreement's own state answers ``STATUS_CUSTOMER_SIGN`` to a second unsign, so this can only
  grow if the agreement was re-signed through the admin API in between: a test re-signs an
  agreement its worker already unsigned, and any duplicate shows the worker called again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class AgreementCounts:
    requests: int = 0
    unsigns: int = 0
    after_success: int = 0


@dataclass
class Stats:
    """Counters since start or the last reset (all integers; ``since`` is epoch seconds)."""

    connections_opened: int = 0
    requests: int = 0
    unsign_requests: int = 0
    query_requests: int = 0
    bad_signatures: int = 0
    unknown_parameters: int = 0
    empty_values: int = 0
    unsigns: int = 0
    duplicates: int = 0
    after_success: int = 0
    max_in_flight: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    agreements: dict[str, AgreementCounts] = field(default_factory=dict)
    since: float = field(default_factory=time.time)

    def counts(self, agreement_id: str) -> AgreementCounts:
        found = self.agreements.get(agreement_id)
        if found is None:
            found = self.agreements[agreement_id] = AgreementCounts()
        return found

    def unsigned(self, agreement_id: str) -> None:
        counts = self.counts(agreement_id)
        counts.unsigns += 1
        self.unsigns += 1
        if counts.unsigns > 1:
            self.duplicates += 1

    def reached_after_success(self, agreement_id: str) -> None:
        self.counts(agreement_id).after_success += 1
        self.after_success += 1

    def snapshot(self, *, in_flight: int = 0, per_agreement: bool = True) -> dict[str, object]:
        """A JSON-able copy; ``per_agreement`` adds the agreements that saw requests."""
        data: dict[str, object] = {
            "since": self.since,
            "connections_opened": self.connections_opened,
            "requests": self.requests,
            "in_flight": in_flight,
            "max_in_flight": self.max_in_flight,
            "unsign_requests": self.unsign_requests,
            "query_requests": self.query_requests,
            "bad_signatures": self.bad_signatures,
            "unknown_parameters": self.unknown_parameters,
            "empty_values": self.empty_values,
            "unsigns": self.unsigns,
            "duplicates": self.duplicates,
            "after_success": self.after_success,
            "answers": dict(self.answers),
            "faults": dict(self.faults),
        }
        if per_agreement:
            data["agreements"] = {
                agreement_id: {"requests": c.requests, "unsigns": c.unsigns,
                               "after_success": c.after_success}
                for agreement_id, c in self.agreements.items()
            }
        return data
