"""``python -m rehearsal``: run rounds, show a seed's schedule, remove leftovers.

    python -m rehearsal run [--rounds N] [--seed S] [--jobs 600] [--lease 10] [--faults 3]
    python -m rehearsal plan [--seed S] [--faults 3] [--lease 10]
    python -m rehearsal cleanup

``run`` needs root (network namespaces); it exits 1 when any round found a violation, 2 when a
round could not run. Round ``r`` (from 0) of seed ``S`` uses seed ``S + r``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from rehearsal.nemesis import IMPLEMENTED, KINDS, Timing, draw
from rehearsal.round import Interrupted, RoundConfig, run_round
from rehearsal.topology import PREFIX, cleanup

DEFAULT_OUT = Path(".rehearsal")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run seeded rounds and report")
    plan = sub.add_parser("plan", help="print the fault schedule of a seed (no hosts needed)")
    for p in (run, plan):
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--faults", type=int, default=3, help="faults per round")
        p.add_argument("--lease", type=float, default=10.0, help="the workers' UNSIGN_LEASE")
        p.add_argument("--kinds", default=",".join(IMPLEMENTED),
                       help=f"faults to draw from (implemented: {', '.join(IMPLEMENTED)})")
    run.add_argument("--rounds", type=int, default=1)
    run.add_argument("--jobs", type=int, default=600, help="campaign jobs per round")
    run.add_argument("--app-jobs", type=int, default=60,
                     help="single jobs the application enqueues per round")
    run.add_argument("--min-replicas", type=int, default=1,
                     help="Redis's min-replicas-to-write (1, as docs/deployment.md recommends)")
    run.add_argument("--min-replicas-max-lag", type=int, default=2,
                     help="Redis's min-replicas-max-lag, seconds (2, as recommended)")
    run.add_argument("--replica-acks", type=int, default=1,
                     help="the workers' UNSIGN_REPLICA_ACKS (1, as recommended)")
    run.add_argument("--unsafe", action="store_true",
                     help="the unprotected configuration: --min-replicas 0 --replica-acks 0")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT,
                     help="where rounds keep their files and reports")
    clean = sub.add_parser("cleanup", help="remove every leftover namespace, link, /etc/netns "
                           "folder and process of earlier rounds")
    clean.add_argument("--prefix", default=PREFIX)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.command == "plan":
        kinds = tuple(k for k in args.kinds.split(",") if k)
        for fault in draw(args.seed, args.faults, Timing(lease=args.lease), kinds=kinds):
            console.print(json.dumps(fault.as_dict()))
        console.print(f"not implemented: {', '.join(k for k in KINDS if k not in IMPLEMENTED)}")
        return 0
    if os.geteuid() != 0:
        console.print("the rehearsal needs root (ip netns)")
        return 2
    if args.command == "cleanup":
        found = cleanup(args.prefix)
        console.print(f"removed: {json.dumps(found)}")
        return 0
    return _run(argv, console)


def round_configs(argv: list[str]) -> list[RoundConfig]:
    """The rounds ``python -m rehearsal run ARGS`` runs, in a folder named by the time."""
    args = parser().parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    out = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    return [RoundConfig(seed=args.seed + number, number=number, root=out / f"round-{number}",
                        jobs=args.jobs, app_jobs=args.app_jobs, lease=args.lease,
                        faults=args.faults, kinds=kinds,
                        min_replicas=0 if args.unsafe else args.min_replicas,
                        min_replicas_max_lag=args.min_replicas_max_lag,
                        replica_acks=0 if args.unsafe else args.replica_acks)
            for number in range(args.rounds)]


def _run(argv: list[str] | None, console: Console) -> int:
    configs = round_configs(sys.argv[1:] if argv is None else argv)
    out = configs[0].root.parent
    failed = 0
    summary = []
    for config in configs:
        number = config.number
        try:
            report = run_round(config, console)
        except (KeyboardInterrupt, Interrupted):
            console.print("interrupted: everything the round made was removed")
            return 130
        except Exception as exc:  # a round that could not run is reported, not hidden
            console.print(f"round {number} could not run: {type(exc).__name__}: {exc}")
            return 2
        summary.append({"round": number, "seed": config.seed, "passed": report.passed,
                        "totals": report.totals, "jobs": report.jobs})
        failed += not report.passed
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"{len(configs) - failed} of {len(configs)} rounds without violations; "
                  f"reports in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
