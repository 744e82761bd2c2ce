"""The demo's data: the seeded campaign and emulator faults, and the dead-letter queue by code.

See :mod:`unsign_worker.cli.demo_cmds` for the demo itself.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsign_worker.store.keys import Keys

#: The emulator's faults: 20-50 ms per request and a sprinkle of transport and gateway errors,
#: on top of the scripted outcomes of the seeded data set.
DEMO_FAULTS = {"latency_ms": 20, "jitter_ms": 30, "error_rate": 0.01,
               "error_codes": ["SYSTEM_ERROR", "ILLEGAL_SYSTEM"], "http_error_rate": 0.005,
               "reset_rate": 0.002, "lost_answer_rate": 0.002}


@dataclass(frozen=True)
class SeededFiles:
    agreements: Path
    campaign: Path
    scenario: Path
    #: intended outcome -> rows
    mix: Counter[str]


def seed_files(workdir: Path, *, count: int, seed: int) -> SeededFiles:
    """Write the agreements file, the campaign CSV (the ``demo`` mix) and the faults scenario."""
    from unsign_worker.emulator.files import write_agreements, write_campaign
    from unsign_worker.emulator.seed import generate, resolve_mix

    data = generate(count, resolve_mix("demo"), seed=seed)
    files = SeededFiles(workdir / "agreements.json", workdir / "campaign.csv",
                        workdir / "scenario.json", Counter(data.outcomes.values()))
    write_agreements(str(files.agreements), data)
    write_campaign(str(files.campaign), data)
    files.scenario.write_text(json.dumps({"seed": seed, "faults": DEMO_FAULTS}, indent=2),
                              encoding="utf-8")
    return files


def describe_mix(mix: Counter[str], total: int) -> str:
    """``80% clean, 8% transient errors, …`` for the seeded outcomes, each named by how its rows
    end, in words no outcome uses for something else (``already_unsigned`` is an outcome of its
    own: an agreement our earlier request unsigned)."""
    escalations = sum(n for k, n in mix.items() if k.isupper())
    parts = [("clean", mix["success"]), ("transient errors", mix["transient"]),
             ("escalations", escalations),
             ("not found (rejected NOT_EXIST_CUST_SIGN)", mix["not_found"]),
             ("not signed (rejected STATUS_CUSTOMER_SIGN)", mix["not_signed"]),
             ("bad rows (refused)", mix["bad_row"])]
    return ", ".join(f"{n * 100 / max(total, 1):.0f}% {name}" for name, n in parts if n)


@dataclass(frozen=True)
class DlqGroup:
    code: str
    jobs: int
    meaning: str
    advice: str


def dlq_by_code(client: Any, keys: Keys) -> list[DlqGroup]:
    """The dead-letter queue grouped by code, largest group first."""
    ids = [i.decode() for i in client.zrange(keys.dlq, 0, -1)]
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.dlq_entry(job_id), "code", "en", "advice")
    groups: dict[str, DlqGroup] = {}
    for code, en, advice in pipe.execute() if ids else []:
        name = (code or b"UNKNOWN").decode()
        seen = groups.get(name)
        groups[name] = DlqGroup(name, (seen.jobs if seen else 0) + 1, (en or b"").decode(),
                                (advice or b"").decode())
    return sorted(groups.values(), key=lambda g: (-g.jobs, g.code))
