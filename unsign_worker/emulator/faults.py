"""Faults on demand: the settings, the per-agreement script steps, and the pure draws.

A request meets faults at three stages, in this order (each rate is a probability per request,
drawn independently; the first that fires wins within a stage):

1. before anything is read (the front end fails; the request is never processed):
   ``reset_rate`` (connection reset), ``http_error_rate`` (HTTP 500/502/503), ``hang_rate``
   (no answer for ``hang_seconds``, then the connection is dropped);
2. after the checks, instead of processing: ``error_rate`` (answer ``F`` with one of
   ``error_codes``, nothing changes), except that of the ``SYSTEM_ERROR`` and ``ILLEGAL_SYSTEM``
   answers (drawn here or scripted) to ``customer_unsign``, the share
   ``system_error_applied_share`` unsigns the agreement first: the usage rules ask to retry
   them because "支付宝系统未来得及响应，用户可能未解约成功", the unsign may or may not have
   happened;
3. after processing (the unsign IS applied): ``lost_answer_rate`` (the connection drops without
   an answer), ``malformed_rate`` (truncated XML), ``oversized_rate`` (an answer of
   ``oversized_bytes``), ``wrong_sign_rate`` (the answer carries a signature that does not
   verify, even an answer that would otherwise be unsigned).

``latency_ms`` + uniform ``[0, jitter_ms)`` delays every request before stage 1. ``global_code``
answers every request with that code (signed only if ``sign_errors``, see :mod:`.options`),
whatever it asks: the stop-the-line switch.

A script step (per agreement, consumed one per request that reaches the agreement) replaces the
random draws for that request: ``OK``, an error code, or one of :data:`TRANSPORT_STEPS` /
:data:`BODY_STEPS`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

from unsign_worker.emulator.errors import EmulatorConfigError

OK = "OK"
#: Steps that fail before the request is processed.
TRANSPORT_STEPS = ("RESET", "HANG", "HTTP_500", "HTTP_502", "HTTP_503")
#: Steps that spoil the answer of a request that IS processed.
BODY_STEPS = ("LOST_ANSWER", "MALFORMED", "OVERSIZED", "WRONG_SIGN")
#: The codes the rules say to retry with the original request (usage rules, 错误码处理): the
#: unsign may have been applied all the same (``system_error_applied_share``).
MAYBE_APPLIED_CODES = frozenset({"SYSTEM_ERROR", "ILLEGAL_SYSTEM"})
_CODE_RE = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
_RATES = ("reset_rate", "http_error_rate", "hang_rate", "error_rate", "lost_answer_rate",
          "malformed_rate", "oversized_rate", "wrong_sign_rate", "system_error_applied_share")


def check_step(step: object, where: str) -> str:
    """Return ``step`` if it is a valid script step.

    Raises:
        EmulatorConfigError: naming ``where``.
    """
    if step != OK and (not isinstance(step, str) or not _CODE_RE.fullmatch(step)):
        raise EmulatorConfigError(f"{where}: {step!r} is not a step: use OK, an error code in "
                                  "upper case, or one of "
                                  f"{', '.join(TRANSPORT_STEPS + BODY_STEPS)}")
    return step


@dataclass(frozen=True, kw_only=True)
class FaultSettings:
    """Every fault knob; the defaults are a healthy gateway."""

    #: fixed delay before every answer, milliseconds
    latency_ms: float = 0.0
    #: extra uniform random delay in [0, jitter_ms), milliseconds
    jitter_ms: float = 0.0
    reset_rate: float = 0.0
    http_error_rate: float = 0.0
    #: statuses drawn from (uniformly) when ``http_error_rate`` fires
    http_statuses: tuple[int, ...] = (500, 502, 503)
    hang_rate: float = 0.0
    #: how long a hanging request is held before its connection is dropped, seconds
    hang_seconds: float = 30.0
    error_rate: float = 0.0
    #: codes drawn from (uniformly) when ``error_rate`` fires
    error_codes: tuple[str, ...] = ("SYSTEM_ERROR",)
    #: share of the SYSTEM_ERROR / ILLEGAL_SYSTEM answers (drawn or scripted) to an unsign of a
    #: signed agreement that unsign it before answering the error (0: never, 1: always)
    system_error_applied_share: float = 0.0
    lost_answer_rate: float = 0.0
    malformed_rate: float = 0.0
    oversized_rate: float = 0.0
    #: size of an oversized answer, bytes
    oversized_bytes: int = 256 * 1024
    wrong_sign_rate: float = 0.0
    #: when set, every request is answered ``F`` with this code
    global_code: str = ""
    #: names of the knobs that are not at their default (kept for fast checks)
    _active: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        defaults = FaultSettings.__dataclass_fields__
        active = frozenset(f.name for f in fields(self) if f.name != "_active"
                           and getattr(self, f.name) != defaults[f.name].default)
        object.__setattr__(self, "_active", active)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, where: str = "faults",
                     base: FaultSettings | None = None) -> FaultSettings:
        """``base`` (default: no faults) with the knobs in ``data`` changed, every value checked.

        Raises:
            EmulatorConfigError: an unknown knob or a bad value, named as ``where.knob``.
        """
        base = base or cls()
        known = {f.name for f in fields(cls) if f.name != "_active"}
        changes: dict[str, object] = {}
        for name, value in data.items():
            if name not in known:
                raise EmulatorConfigError(f"{where}.{name}: unknown fault setting "
                                          f"(known: {', '.join(sorted(known))})")
            changes[name] = _checked(name, value, f"{where}.{name}")
        return replace(base, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("_active")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def delay_seconds(self, rand: random.Random) -> float:
        """The delay before answering this request, seconds."""
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        return (self.latency_ms + rand.random() * self.jitter_ms) / 1000.0

    def draw_transport(self, rand: random.Random) -> str | None:
        """Stage 1: ``RESET``, ``HTTP_5xx``, ``HANG`` or None."""
        if not self._active:
            return None
        if self.reset_rate and rand.random() < self.reset_rate:
            return "RESET"
        if self.http_error_rate and rand.random() < self.http_error_rate:
            return f"HTTP_{rand.choice(self.http_statuses)}"
        if self.hang_rate and rand.random() < self.hang_rate:
            return "HANG"
        return None

    def draw_error(self, rand: random.Random) -> str | None:
        """Stage 2: an error code to answer instead of processing, or None."""
        if self.error_rate and rand.random() < self.error_rate:
            return rand.choice(self.error_codes)
        return None

    def draw_applied(self, rand: random.Random) -> bool:
        """Whether this system error unsigns the agreement all the same (no draw at 0 or 1)."""
        share = self.system_error_applied_share
        return share >= 1.0 or (share > 0.0 and rand.random() < share)

    def draw_body(self, rand: random.Random) -> str | None:
        """Stage 3: one of :data:`BODY_STEPS`, or None."""
        if not self._active:
            return None
        for name, rate in (("LOST_ANSWER", self.lost_answer_rate),
                           ("MALFORMED", self.malformed_rate),
                           ("OVERSIZED", self.oversized_rate),
                           ("WRONG_SIGN", self.wrong_sign_rate)):
            if rate and rand.random() < rate:
                return name
        return None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EmulatorConfigError(f"{where}: must be a number")
    if value < 0:
        raise EmulatorConfigError(f"{where}: must not be negative")
    return float(value)


def _checked(name: str, value: object, where: str) -> object:
    if name in _RATES:
        rate = _number(value, where)
        if rate > 1:
            raise EmulatorConfigError(f"{where}: a rate is a probability between 0 and 1")
        return rate
    if name in ("latency_ms", "jitter_ms", "hang_seconds"):
        return _number(value, where)
    if name == "oversized_bytes":
        size = int(_number(value, where))
        if size < 1024:
            raise EmulatorConfigError(f"{where}: must be at least 1024 bytes")
        return size
    if name == "http_statuses":
        if not isinstance(value, list | tuple) or not value or not all(
                isinstance(s, int) and 500 <= s <= 599 for s in value):
            raise EmulatorConfigError(f"{where}: must be a non-empty list of 5xx statuses")
        return tuple(value)
    if name == "error_codes":
        if not isinstance(value, list | tuple) or not value:
            raise EmulatorConfigError(f"{where}: must be a non-empty list of error codes")
        for code in value:
            if not isinstance(code, str) or not _CODE_RE.fullmatch(code) or code == OK:
                raise EmulatorConfigError(f"{where}: {code!r} is not an error code in upper case")
        return tuple(value)
    # global_code
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _CODE_RE.fullmatch(value) or value == OK:
        raise EmulatorConfigError(f"{where}: must be an error code in upper case, or empty to "
                                  "switch off")
    return value
