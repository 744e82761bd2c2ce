"""A realistic data set for the emulator: an agreements file and a campaign CSV over it.

Each campaign row is built for one intended outcome:

- ``success``: a signed agreement, unsigned at the first request;
- ``transient``: scripted ``SYSTEM_ERROR`` / ``ILLEGAL_SYSTEM`` once or twice, then ``OK``;
- each escalation code (:data:`ESCALATION_CODES`): scripted once, then ``OK`` (a requeue after
  support has fixed the merchant agreement succeeds);
- ``not_found``: a valid row naming no agreement (``NOT_EXIST_CUST_SIGN``);
- ``not_signed``: an agreement loaded as no longer signed; the gateway answers
  ``STATUS_CUSTOMER_SIGN`` and the job ends ``rejected`` (not to be confused with the job outcome
  ``already_unsigned``: our own earlier request unsigned it);
- ``bad_row``: a row that breaks a parameter rule (the worker rejects it before any request).

Rows name their agreement in the three ways the interface allows: ``customer_code``;
``type_code`` + ``trans_account_out`` (both CAE agreements); ``biz_type`` 10004 + ``user_email``
(partner-protocol agreements). The ``reference`` column is the agreement's id in the
agreements file. The same ``seed`` gives the same files. Pure: returns data, writes nothing.

Identities come from the seed: an agreement's id ``ag-SSSSS-NNNNNN``, its ``customer_code``
``CSSSSSNNNNNN``, its user id ``2088SSSSSNNNNNNN`` (and so its account), its email
``<name>N.sS@<domain>``, with S the seed and N the row number. So two data sets of different
seeds never share an identity (they can be loaded into one emulator and run through one Redis
without a ``duplicate``), and the same seed gives the same set. Without a seed one is drawn at
random (:attr:`DataSet.seed` tells which).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unsign_worker.emulator.errors import EmulatorConfigError

ESCALATION_CODES = ("TOO_MUCH_TYPE_CODE", "FAIL_UNFREEZE_STANDARD_BAIL", "STATUS_TYPE_CODE",
                    "ILLEGAL_SERVICE_TIME_OUT", "NOT_EXIST_PARTNER_TYPE_CODE",
                    "FAIL_UNSIGN_BATCH_PAY_PRIVILEGE")
OUTCOMES = ("success", "transient", *ESCALATION_CODES, "not_found", "not_signed", "bad_row")
#: Names an outcome of the data set once had, and what they are called now.
RENAMED = {"already_unsigned": "not_signed"}
PRESETS: dict[str, dict[str, float]] = {
    "clean": {"success": 1.0},
    "demo": {"success": 0.80, "transient": 0.08, **{c: 0.01 for c in ESCALATION_CODES},
             "not_found": 0.02, "not_signed": 0.02, "bad_row": 0.02},
    "mixed": dict.fromkeys(OUTCOMES, 1.0),
}
CAMPAIGN_COLUMNS = ("reference", "customer_code", "type_code", "trans_account_out", "biz_type",
                    "user_email")
#: The sandbox partner used when none is given.
DEFAULT_PARTNER = "2088101568338364"
_TYPE_CODES = ("BUSI003100021000301", "BUSI003100021000302", "BUSI004200011000105",
               "KPLAN001900031000007")
_NAMES = ("li.wei", "wang.fang", "zhang.min", "liu.yang", "chen.jie", "yang.li", "zhao.lei",
          "huang.xin", "zhou.tao", "wu.hua", "xu.ning", "sun.yue")
_DOMAINS = ("example.com", "example.cn", "mail.example.net", "163.example.com")
_FORMS = ("customer_code", "type_code", "biz_type")
#: Seeds are 0 .. MAX_SEED: five digits of every identity.
MAX_SEED = 99_999
#: Rows of one data set at most: six digits of the customer code.
MAX_COUNT = 999_999


@dataclass(frozen=True)
class DataSet:
    partner: str
    #: entries of the agreements file
    agreements: list[dict[str, object]]
    #: campaign rows (every column present, "" when empty)
    rows: list[dict[str, str]]
    #: reference -> intended outcome
    outcomes: dict[str, str]
    #: the seed the identities derive from (drawn at random when none was given)
    seed: int = 0


def parse_mix(data: object, *, source: str = "mix") -> dict[str, float]:
    """Check a mix ``{outcome: weight}``. Raises: EmulatorConfigError naming the bad entry."""
    if not isinstance(data, Mapping) or not data:
        raise EmulatorConfigError(f"{source}: must be a non-empty JSON object of outcome -> weight")
    mix: dict[str, float] = {}
    for name, weight in data.items():
        if name in RENAMED:
            raise EmulatorConfigError(
                f"{source}.{name}: now called {RENAMED[name]!r} (an agreement loaded as not "
                f"signed, which ends rejected STATUS_CUSTOMER_SIGN; {name} is a job outcome)")
        if name not in OUTCOMES:
            raise EmulatorConfigError(f"{source}.{name}: unknown outcome "
                                      f"(known: {', '.join(OUTCOMES)})")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise EmulatorConfigError(f"{source}.{name}: the weight must be a number >= 0")
        mix[name] = float(weight)
    if not sum(mix.values()):
        raise EmulatorConfigError(f"{source}: the weights add up to 0")
    return mix


def resolve_mix(spec: str) -> dict[str, float]:
    """A preset name (``demo``, ``clean``, ``mixed``) or a JSON file.

    Raises:
        EmulatorConfigError: neither, or a bad file.
    """
    if spec in PRESETS:
        return dict(PRESETS[spec])
    path = Path(spec)
    if not path.is_file():
        raise EmulatorConfigError(f"--mix: {spec!r} is neither a preset ({', '.join(PRESETS)}) "
                                  "nor a readable JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EmulatorConfigError(f"--mix: cannot read {spec!r}: {exc}") from None
    return parse_mix(data, source=spec)


def allocate(count: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Exact counts per outcome for ``count`` rows (largest remainder; they add up to count)."""
    total = sum(mix.values())
    quotas = {name: count * weight / total for name, weight in mix.items()}
    counts = {name: int(q) for name, q in quotas.items()}
    rest = count - sum(counts.values())
    by_fraction = sorted(quotas, key=lambda n: (-(quotas[n] - counts[n]), OUTCOMES.index(n)))
    for name in by_fraction[:rest]:
        counts[name] += 1
    return counts


def _bad(row: dict[str, str], rand: random.Random) -> None:
    """Break one rule of the interface in ``row``."""
    kind = rand.randrange(5)
    if kind == 0:
        # 21 characters: over the String(20) the gateway accepts (and the request table's 12)
        row.update(customer_code=row["customer_code"] + "X" * 9, type_code="",
                   trans_account_out="", biz_type="", user_email="")
    elif kind == 1:
        row.update(customer_code="", biz_type="", user_email="",
                   trans_account_out=row["trans_account_out"][:-4] + "0157")  # not an RMB account
    elif kind == 2:
        row.update(customer_code="", type_code="", trans_account_out="", biz_type="10005")
    elif kind == 3:
        row.update(customer_code="", trans_account_out="", biz_type="", user_email="")
    else:
        row.update(customer_code="", type_code="", trans_account_out="", biz_type="10004",
                   user_email=row["user_email"].replace("@", " @"))


def generate(count: int, mix: Mapping[str, float], *, partner: str = DEFAULT_PARTNER,
             seed: int | None = None) -> DataSet:
    """Build ``count`` campaign rows with the given outcome mix, and their agreements."""
    if not 0 <= count <= MAX_COUNT:
        raise EmulatorConfigError(f"--count: must be 0 .. {MAX_COUNT}")
    if seed is None:
        seed = random.SystemRandom().randint(0, MAX_SEED)
    if not 0 <= seed <= MAX_SEED:
        raise EmulatorConfigError(f"--seed: must be 0 .. {MAX_SEED} (five digits of every "
                                  "identity)")
    rand = random.Random(seed)
    plan = [name for name, n in allocate(count, mix).items() for _ in range(n)]
    rand.shuffle(plan)
    agreements: list[dict[str, object]] = []
    rows: list[dict[str, str]] = []
    outcomes: dict[str, str] = {}
    for i, outcome in enumerate(plan, start=1):
        ref = f"ag-{seed:05d}-{i:06d}"
        user_id = f"2088{seed:05d}{i:07d}"
        form = rand.choices(_FORMS, weights=(4, 3, 3))[0]
        # names end in a letter, so "<name><i>.s<seed>" reads back one (i, seed) only
        email = f"{rand.choice(_NAMES)}{i}.s{seed}@{rand.choice(_DOMAINS)}"
        entry: dict[str, object] = {"id": ref, "customer_code": f"C{seed:05d}{i:06d}",
                                    "user_id": user_id}
        if form == "biz_type":
            entry.update(biz_type="10004", user_email=email)
        else:
            entry.update(type_code=rand.choice(_TYPE_CODES), trans_account_out=user_id + "0156")
        row = dict.fromkeys(CAMPAIGN_COLUMNS, "")
        row["reference"] = ref
        if form == "customer_code":
            row["customer_code"] = str(entry["customer_code"])
        else:
            for name in ("type_code", "trans_account_out", "biz_type", "user_email"):
                row[name] = str(entry.get(name, ""))
        if outcome == "bad_row":
            row.update(customer_code=str(entry["customer_code"]), user_email=email,
                       type_code=str(entry.get("type_code", _TYPE_CODES[0])),
                       trans_account_out=user_id + "0156")
            _bad(row, rand)
        elif outcome == "transient":
            errors = rand.choices(("SYSTEM_ERROR", "ILLEGAL_SYSTEM"), k=rand.randint(1, 2))
            entry["script"] = [*errors, "OK"]
        elif outcome in ESCALATION_CODES:
            entry["script"] = [outcome]
        elif outcome == "not_signed":
            entry["status"] = "unsigned"
        if outcome != "not_found":
            agreements.append(entry)
        rows.append(row)
        outcomes[ref] = outcome
    return DataSet(partner=partner, agreements=agreements, rows=rows, outcomes=outcomes,
                   seed=seed)
