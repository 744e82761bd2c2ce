"""``unsign-worker dlq``: look at dead-lettered jobs, requeue them once fixed, or close them.

(Exit codes are imported from :mod:`unsign_worker.cli.main` inside the commands: main imports
this module while it loads.)
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table

from unsign_worker.cli._ops import console, echo_json, operator, when
from unsign_worker.cli.common import fail, load_settings, output_file, redis_for
from unsign_worker.store.keys import Keys

if TYPE_CHECKING:
    from unsign_worker.store.deadletter import Entry


def _dlq() -> Any:
    from unsign_worker.store.deadletter import DeadLetters

    settings = load_settings()
    return settings, DeadLetters(redis_for(settings), Keys(settings.key_prefix),
                                 audit_maxlen=settings.audit_maxlen)


def _note(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--note`` holds the one rule of :func:`~unsign_worker.store.deadletter.require_note`."""
    from unsign_worker.store.deadletter import NoteRequired, require_note

    try:
        return require_note(ctx.command.name or "", value)
    except NoteRequired as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.group("dlq")
def dlq_group() -> None:
    """The dead-letter queue: jobs that need a human."""


@dlq_group.command("list", epilog="""Examples:

\b
  unsign-worker dlq list
  unsign-worker dlq list --code TOO_MUCH_TYPE_CODE --json
""")
@click.option("--code", default="", help="Only entries with this code.")
@click.option("--campaign", default="", help="Only entries of this campaign.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=0),
              help="Rows shown in the table (0: all); --json lists all.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def dlq_list(code: str, campaign: str, limit: int, as_json: bool) -> None:
    """Open entries, oldest first (identities masked)."""
    _, dlq = _dlq()
    entries = list(dlq.entries(code=code, campaign=campaign))
    if as_json:
        echo_json([e.as_dict() for e in entries])
        return
    out = console(whole_rows=True)
    out.print(list_table(entries[:limit or None], total=len(entries), width=out.width))
    if limit and len(entries) > limit:
        click.echo(f"... {len(entries) - limit} more (use --limit 0 or --json)")


#: Columns of ``dlq list``; ids and times are never wrapped or cut, the others fold.
_COLUMNS = ("job", "code", "kind", "attempts", "identity", "campaign", "reference", "since")
_WHOLE_COLUMNS = ("job", "campaign", "since")
#: Left out, in this order, while the table is wider than the terminal (``dlq show`` has them).
_SPARE_COLUMNS = ("identity", "reference", "kind", "campaign")
#: Narrowest a folding column is made before a spare column is left out instead.
_FOLDED_WIDTH = 10


def list_table(entries: list[Entry], *, total: int, width: int) -> Table:
    """The ``dlq list`` table, fitted to ``width`` columns when the spare columns can go.

    Job and campaign ids are never wrapped or cut (they are to be copied); the other columns
    fold, and :data:`_SPARE_COLUMNS` are left out while they would fold too narrow."""
    rows = [_cells(entry.as_dict()) for entry in entries]
    left_out: list[str] = []
    spares = iter(_SPARE_COLUMNS)
    while (_least_width([c for c in _COLUMNS if c not in left_out], rows) > width
           and (spare := next(spares, None))):
        left_out.append(spare)
    columns = [c for c in _COLUMNS if c not in left_out]
    table = Table(title=f"dead-letter queue: {total} open")
    for name in columns:
        table.add_column(name, no_wrap=name in _WHOLE_COLUMNS, overflow="fold")
    for cells in rows:
        table.add_row(*(escape(cells[name]) for name in columns))
    if left_out:
        table.caption = f"{', '.join(left_out)} left out to fit: dlq show JOB_ID has them"
    return table


def _cells(d: dict[str, Any]) -> dict[str, str]:
    return {"job": d["job_id"], "code": d["code"], "kind": d["kind"],
            "attempts": str(d["attempts"]), "identity": d["identity"],
            "campaign": d["campaign"] or "-", "reference": d["reference"] or "-",
            "since": when(d["dead_lettered_at"])}


def _least_width(columns: list[str], rows: list[dict[str, str]]) -> int:
    """Width of the table with its folding columns folded to :data:`_FOLDED_WIDTH`."""
    total = 1
    for name in columns:
        natural = max([cell_len(name), *(cell_len(cells[name]) for cells in rows)])
        total += (natural if name in _WHOLE_COLUMNS else min(natural, _FOLDED_WIDTH)) + 3
    return total


@dlq_group.command("show", epilog="""Example:

\b
  unsign-worker dlq show 3f2a9c0d5e6b4a718293a4b5c6d7e8f9
""")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def dlq_show(job_id: str, as_json: bool) -> None:
    """One entry: the code, its meaning (Chinese, English), the advice, the attempts, the job
    (masked)."""
    _, dlq = _dlq()
    entry = dlq.get(job_id)
    if entry is None:
        fail(f"job {job_id} has no dead-letter entry")
    data = entry.as_dict()
    data["open"] = dlq.is_open(job_id)
    if as_json:
        echo_json(data)
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [("job", data["job_id"]), ("status", "open" if data["open"] else "resolved"),
            ("code", data["code"]), ("meaning", data["zh"]), ("", data["en"]),
            ("advice", data["advice"]), ("kind", data["kind"]), ("reason", data["reason"]),
            ("attempts", str(data["attempts"])), ("identity", data["identity"]),
            ("campaign", data["campaign"]), ("reference", data["reference"]),
            ("dead-lettered", when(data["dead_lettered_at"])),
            ("job (masked)", json.dumps(data["job"], ensure_ascii=False))]
    if not data["open"]:
        rows += [("resolved", when(data["resolved_at"])), ("by", data["resolved_by"]),
                 ("note", data["resolution_note"])]
    for name, value in rows:
        if value not in ("", None):
            table.add_row(name, escape(value))
    console().print(table)


@dlq_group.command("requeue", epilog="""Examples:

\b
  unsign-worker dlq requeue 3f2a9c0d5e6b4a718293a4b5c6d7e8f9 --note "agreement renewed"
  unsign-worker dlq requeue --code TOO_MUCH_TYPE_CODE --note "Alipay support ticket 4711"
  unsign-worker dlq requeue --all --campaign c-3f9a1b2c4d5e --note "partner key fixed"
""")
@click.argument("job_ids", nargs=-1)
@click.option("--code", default="", help="Requeue every open entry with this code.")
@click.option("--campaign", default="", help="With --code or --all: only this campaign.")
@click.option("--all", "all_", is_flag=True, help="Requeue every open entry.")
@click.option("--note", required=True, callback=_note,
              help="Why it is sent again (required, not blank; kept in the operators' journal).")
@click.option("--json", "as_json", is_flag=True, help="Print {requeued, failed} as JSON.")
def dlq_requeue(job_ids: tuple[str, ...], code: str, campaign: str, all_: bool, note: str,
                as_json: bool) -> None:
    """Send dead-lettered jobs again, once the cause is fixed. A job keeps its id, so dedup
    still holds; it leaves the queue."""
    from unsign_worker.cli._ops import operations

    if bool(job_ids) + bool(code) + all_ != 1:
        fail("give JOB_ID..., --code C or --all (one of them)", 2)
    ops = operations(load_settings())
    if not job_ids:
        job_ids = tuple(e.job_id for e in ops.dlq.entries(code=code, campaign=campaign))
    done = ops.requeue(job_ids, by=operator(), note=note)
    requeued, failed = done.requeued, done.failed
    if as_json:
        echo_json({"requeued": requeued, "failed": failed})
    else:
        for message in failed.values():
            click.echo(f"error: {message}", err=True)
        click.echo(f"requeued {len(requeued)} job(s)")
    if failed:
        raise click.exceptions.Exit(1)


@dlq_group.command("resolve", epilog="""Example:

\b
  unsign-worker dlq resolve 3f2a9c0d5e6b4a718293a4b5c6d7e8f9 --note "unsigned at the counter"
""")
@click.argument("job_id")
@click.option("--note", required=True, callback=_note,
              help="Why the entry is closed by hand (required, not blank; kept).")
@click.option("--by", default=None, help="Who closes it [default: user@host].")
def dlq_resolve(job_id: str, note: str, by: str | None) -> None:
    """Close an entry by hand; who, when and why are kept with it (30 days)."""
    from unsign_worker.cli._ops import operations
    from unsign_worker.store.deadletter import DeadLetterError

    try:
        operations(load_settings()).resolve(job_id, note=note, by=by or operator())
    except DeadLetterError as exc:
        fail(str(exc))
    click.echo(f"resolved {job_id}")


@dlq_group.command("export", epilog="""Examples:

\b
  unsign-worker dlq export --out dlq.jsonl
  unsign-worker dlq export --format csv --code TOO_MUCH_TYPE_CODE --out dlq.csv
""")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Output file (default: standard output).")
@click.option("--code", default="", help="Only entries with this code.")
@click.option("--campaign", default="", help="Only entries of this campaign.")
def dlq_export(fmt: str, out: str, code: str, campaign: str) -> None:
    """Write the open entries as JSON lines (the `dlq show --json` shape) or CSV, masked."""
    from unsign_worker.ops import dlq_export

    _, dlq = _dlq()
    handle = sys.stdout if out == "-" else output_file(out)
    try:
        dlq_export.write(dlq.entries(code=code, campaign=campaign), handle, fmt=fmt)
    finally:
        if handle is not sys.stdout:
            handle.close()


def register(group: click.Group) -> None:
    group.add_command(dlq_group)
