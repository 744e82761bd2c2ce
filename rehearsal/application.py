"""The application on the producer host: a registered producer that enqueues single jobs with
``UnsignClient``, one every ``--interval`` seconds, until its rows run out or ``--stop-file``
appears. Each request id it was given is written to ``--out`` (one JSON line: the entry id,
the reference, the time), so the checker knows every job a producer was told was taken.
Redis errors (a failover, a cut) are waited out: the application tries again.

    python -m rehearsal.application ROWS.csv --out FILE --interval 0.5 --stop-file FILE
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import redis

from unsign_worker.producers.client import UnsignClient

FIELDS = ("customer_code", "type_code", "trans_account_out", "biz_type", "user_email")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.application")
    parser.add_argument("rows", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--producer", default="app")
    args = parser.parse_args(argv)
    client = UnsignClient(os.environ["REHEARSAL_PRODUCER_URL"], producer=args.producer)
    with open(args.rows, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with open(args.out, "a", encoding="utf-8") as out:
        for row in rows:
            if args.stop_file.exists():
                break
            params = {k: row[k] for k in FIELDS if row.get(k)}
            while True:
                try:
                    entry = client.enqueue(reference=row["reference"], **params)
                    break
                except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError) as exc:
                    print(f"enqueue of {row['reference']}: {type(exc).__name__}, trying again",
                          flush=True)
                    time.sleep(1.0)
                except Exception as exc:  # a refused row: recorded, not retried
                    print(f"enqueue of {row['reference']} refused: {exc}", flush=True)
                    entry = ""
                    break
            if entry:
                out.write(json.dumps({"entry": entry, "reference": row["reference"],
                                      "at": time.time()}) + "\n")
                out.flush()
            time.sleep(args.interval)
    print("application: done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
