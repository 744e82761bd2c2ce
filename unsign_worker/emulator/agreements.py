"""The emulator's customer agreements: what the agreements file holds, and how a request finds one.

File format (JSON)::

    {
      "partner": "2088101568338364",          # optional here: CLI option or ALIPAY_PARTNER
      "agreements": [
        {"id": "ag-1", "customer_code": "C00000000001", "type_code": "BUSI003100021000301",
         "trans_account_out": "20880020070189160156", "status": "signed"},
        {"id": "ag-2", "biz_type": "10004", "user_email": "buyer@example.com",
         "user_id": "2088002007018916", "customer_code": "C00000000002",
         "status": "unsigned", "script": ["SYSTEM_ERROR", "OK"]}
      ]
    }

An agreement is a CAE agreement (``customer_code``, and/or ``type_code`` + ``trans_account_out``)
or a partner-protocol agreement (``biz_type`` 10004 + ``user_email``, signed through
``sign_protocol_with_partner``). ``id`` defaults to ``customer_code`` (else ``biz_type:email``);
``status`` is ``signed`` (default) or ``unsigned``; ``script`` is an optional list of steps
(see :mod:`unsign_worker.emulator.faults`).

A request is matched through :func:`unsign_worker.emulator.rules.identity`, which names the one
form the request uses (``customer_code`` alone, ``type_code`` + ``trans_account_out`` (also when
both pairs are complete), or ``biz_type`` 10004 + ``user_email``; a request mixing forms is
``ILLEGAL_ARGUMENT`` before that), against every identity an agreement can be reached by.

Every agreement has a ``customer_code``: the answer table says it is never empty, so one given
without it (a partner-protocol agreement, say) gets a stable 13-digit code derived from its id,
like the document's sample ``1118400000013``, by which it can be unsigned as well.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.faults import check_step
from unsign_worker.emulator.rules import MAX_LENGTHS, PARTNER_BIZ_TYPE

SIGNED = "signed"
UNSIGNED = "unsigned"
_FIELDS = ("customer_code", "type_code", "trans_account_out", "biz_type", "user_email", "user_id")
_ALLOWED = frozenset((*_FIELDS, "id", "status", "script", "note"))
_USER_ID_RE = re.compile(r"2088\d{12}")
#: Index key: ("customer_code", code) or (kind, agreement value, account value).
IndexKey = tuple[str, ...]


@dataclass
class Agreement:
    """One customer agreement and its mutable status."""

    id: str
    customer_code: str = ""
    type_code: str = ""
    trans_account_out: str = ""
    biz_type: str = ""
    user_email: str = ""
    user_id: str = ""
    status: str = SIGNED
    script: tuple[str, ...] = ()
    #: True once a request to this emulator unsigned it (not when it was loaded unsigned)
    unsigned_here: bool = False

    def __post_init__(self) -> None:
        if not self.customer_code:
            digest = hashlib.sha256(self.id.encode("utf-8")).digest()
            self.customer_code = "1" + str(int.from_bytes(digest[:8], "big"))[-12:].zfill(12)

    @property
    def is_partner_protocol(self) -> bool:
        return self.biz_type == PARTNER_BIZ_TYPE and bool(self.user_email)

    def keys(self) -> list[IndexKey]:
        """Every identity this agreement can be reached by (see module docstring)."""
        keys: list[IndexKey] = []
        if self.customer_code:
            keys.append(("customer_code", self.customer_code))
        accounts = [a for a in (self.trans_account_out, self.user_email.lower()) if a]
        for kind in ("type_code", "biz_type"):
            value = getattr(self, kind)
            if value:
                keys.extend((kind, value, account) for account in accounts)
        return keys

    def customer_block(self) -> dict[str, str]:
        """The ``<customer>`` children of a success answer (5.3): both, always (an empty
        ``type_code`` is written empty and, being empty, not signed)."""
        return {"customer_code": self.customer_code, "type_code": self.type_code}

    def public(self) -> dict[str, object]:
        """A JSON-able view for the admin API."""
        return {"id": self.id, "status": self.status, "unsigned_here": self.unsigned_here,
                "kind": "partner_protocol" if self.is_partner_protocol else "cae"}


def _problems(entry: Mapping[str, object], where: str) -> list[str]:
    problems = [f"{where}.{name}: unknown field (allowed: {', '.join(sorted(_ALLOWED))})"
                for name in entry if name not in _ALLOWED]
    for name in (*_FIELDS, "id"):
        value = entry.get(name, "")
        if not isinstance(value, str):
            problems.append(f"{where}.{name}: must be a string")
        elif name in MAX_LENGTHS and len(value) > MAX_LENGTHS[name]:
            problems.append(f"{where}.{name}: longer than {MAX_LENGTHS[name]} characters")
    if entry.get("status", SIGNED) not in (SIGNED, UNSIGNED):
        problems.append(f"{where}.status: must be 'signed' or 'unsigned'")
    user_id = entry.get("user_id", "")
    if isinstance(user_id, str) and user_id and not _USER_ID_RE.fullmatch(user_id):
        problems.append(f"{where}.user_id: must be 16 digits starting with 2088")
    if problems:
        return problems
    has_cae = bool(entry.get("customer_code")) or bool(
        entry.get("type_code") and entry.get("trans_account_out"))
    has_partner = entry.get("biz_type") == PARTNER_BIZ_TYPE and bool(
        entry.get("user_email"))
    if not (has_cae or has_partner):
        problems.append(f"{where}: give customer_code, or type_code + trans_account_out, "
                        "or biz_type 10004 + user_email")
    return problems


def agreement_from_entry(entry: object, where: str) -> Agreement:
    """Build one agreement from a JSON object. Raises: EmulatorConfigError naming the field."""
    if not isinstance(entry, Mapping):
        raise EmulatorConfigError(f"{where}: must be an object")
    problems = _problems(entry, where)
    if problems:
        raise EmulatorConfigError("; ".join(problems))
    def text(name: str) -> str:
        return str(entry.get(name, ""))

    script = entry.get("script", [])
    if not isinstance(script, list):
        raise EmulatorConfigError(f"{where}.script: must be a list of steps")
    steps = tuple(check_step(step, f"{where}.script") for step in script)
    default_id = text("customer_code") or f"{text('biz_type')}:{text('user_email')}"
    return Agreement(id=text("id") or default_id, customer_code=text("customer_code"),
                     type_code=text("type_code"), trans_account_out=text("trans_account_out"),
                     biz_type=text("biz_type"), user_email=text("user_email"),
                     user_id=text("user_id"), status=text("status") or SIGNED, script=steps)


@dataclass
class AgreementBook:
    """Agreements by id and by every identity; :meth:`restore` returns to the loaded state."""

    agreements: dict[str, Agreement] = field(default_factory=dict)
    _index: dict[IndexKey, Agreement] = field(default_factory=dict)
    _by_user_id: dict[str, Agreement] = field(default_factory=dict)
    _initial: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, agreements: list[Agreement]) -> AgreementBook:
        """Index ``agreements``. Raises: EmulatorConfigError on a repeated id or identity."""
        book = cls()
        book.add(agreements)
        return book

    def add(self, agreements: list[Agreement]) -> None:
        """Index more agreements, all or none (a running emulator loads a second data set).

        Raises:
            EmulatorConfigError: an id or identity repeated among them or already in the book.
        """
        ids: set[str] = set()
        index: dict[IndexKey, Agreement] = {}
        for position, agreement in enumerate(agreements):
            where = f"agreements[{position}]"
            if agreement.id in ids or agreement.id in self.agreements:
                raise EmulatorConfigError(f"{where}.id: {agreement.id!r} is used twice")
            ids.add(agreement.id)
            for key in agreement.keys():
                other = index.get(key) or self._index.get(key)
                if other is not None:
                    raise EmulatorConfigError(f"{where}: identity {key[0]} also names agreement "
                                              f"{other.id!r}; each identity must name one "
                                              "agreement")
                index[key] = agreement
        self._index.update(index)
        for agreement in agreements:
            if agreement.is_partner_protocol and agreement.user_id:
                self._by_user_id.setdefault(agreement.user_id, agreement)
            self.agreements[agreement.id] = agreement
            self._initial[agreement.id] = agreement.status

    def __len__(self) -> int:
        return len(self.agreements)

    def find(self, identity: tuple[str, ...]) -> Agreement | None:
        """The agreement a :func:`~unsign_worker.emulator.rules.identity` names, or None."""
        return self._index.get(identity)

    def find_partner_protocol(self, *, user_email: str = "", user_id: str = "") -> Agreement | None:
        """A biz_type 10004 agreement by login (case-insensitive) or Alipay user id."""
        if user_id:
            return self._by_user_id.get(user_id)
        found = self._index.get(("biz_type", PARTNER_BIZ_TYPE, user_email.lower()))
        return found if found is not None and found.is_partner_protocol else None

    def restore(self) -> None:
        """Put every agreement back in the status it was loaded with."""
        for agreement_id, status in self._initial.items():
            agreement = self.agreements[agreement_id]
            agreement.status = status
            agreement.unsigned_here = False
