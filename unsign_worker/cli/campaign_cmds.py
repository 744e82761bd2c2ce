"""``unsign-worker campaign``: run a file of unsigns, follow it, report on it, steer it.

(Exit codes are imported from :mod:`unsign_worker.cli.main` inside the commands: main imports
this module while it loads.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from unsign_worker.cli._ops import console, echo_json
from unsign_worker.cli.common import fail, load_settings, redis_for
from unsign_worker.producers.campaign.enqueue import BATCH_SIZE, MESSAGES_AT_LEAST, batch_size_for
from unsign_worker.producers.campaign.report import RejectsFile
from unsign_worker.store.keys import Keys
from unsign_worker.store.outage import Outage, ride_out
from unsign_worker.store.states import CampaignState

#: Bad rows printed on the terminal; the rejects file has them all.
SHOWN_REJECTS = 20
_RATE_RE = re.compile(r"(\d+)(/s)?")


def _rate(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    match = _RATE_RE.fullmatch(value.strip())
    if not match:
        raise click.BadParameter("give whole jobs per second, e.g. 20 or 20/s (0: unlimited)")
    return int(match.group(1))


def _store() -> Any:
    from unsign_worker.store.campaigns import CampaignStore

    settings = load_settings()
    return settings, CampaignStore(redis_for(settings), Keys(settings.key_prefix))


@click.group("campaign")
def campaign_group() -> None:
    """Bulk campaigns: a CSV or JSON-lines file of unsigns."""


@campaign_group.command("run", epilog="""Examples:

\b
  unsign-worker campaign run unsign.csv --name "spring clean-up" --rate 20/s
  unsign-worker campaign run unsign.csv --dry-run
  unsign-worker campaign run rows.jsonl --encoding gbk --detach --json
""")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default="", help="A name to recognise the campaign by.")
@click.option("--id", "campaign_id", default=None,
              help="Campaign id [default: derived from the file's content, so running the "
              "same file again resumes it].")
@click.option("--encoding", type=click.Choice(["utf-8", "gbk"]), default="utf-8",
              show_default=True)
@click.option("--rate", callback=_rate, default=None, metavar="N[/s]",
              help="Global limit for this campaign across all workers, jobs per second "
              "(0: unlimited) [default: unlimited, or as set before].")
@click.option("--dry-run", is_flag=True, help="Only validate the file.")
@click.option("--detach", is_flag=True, help="Return once enqueued; do not follow progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as one JSON "
              "object instead of the progress bar and tables.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the refused rows [default: FILE.rejects.csv].")
@click.option("--show-personal-data", is_flag=True,
              help="Write the refused rows' values unmasked (your own data only).")
@click.option("--batch-size", default=None, type=click.IntRange(1, 1000),
              help="Jobs per broker message, run one after another by one worker slot "
              f"[default: the campaign's jobs / {MESSAGES_AT_LEAST}, at most {BATCH_SIZE}].")
@click.option("--chunk-size", default=2000, type=click.IntRange(1, 100_000), hidden=True)
def campaign_run(file: str, name: str, campaign_id: str | None, encoding: str,
                 rate: int | None, dry_run: bool, detach: bool, as_json: bool,
                 rejects_path: str | None, show_personal_data: bool, batch_size: int | None,
                 chunk_size: int) -> None:
    """Validate FILE, enqueue a job per valid row, and follow the campaign to its end.

    FILE is CSV with a header row (customer_code, type_code, trans_account_out, biz_type,
    user_email, and optionally reference) or JSON lines (.jsonl) with the same keys. Refused
    rows are listed with line, field and rule, and written to a rejects file; the good rows
    still go. Running the same file again enqueues nothing that is done or in flight.

    Exit codes: 0 all well, 1 error or interrupted, 3 finished with refused rows, rejected or
    dead-lettered jobs.
    """
    from unsign_worker.cli._campaign_view import enqueue_with_progress, follow, summary_table
    from unsign_worker.cli._ops import producer_for
    from unsign_worker.cli.main import EXIT_FINISHED_WITH_FAILURES
    from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer
    from unsign_worker.producers.campaign.plan import scan_file
    from unsign_worker.producers.campaign.rows import FileFormatError
    from unsign_worker.producers.campaign.stream import start_file
    from unsign_worker.producers.reports import OutputFileError
    from unsign_worker.store.campaigns import CampaignError, CampaignStore

    settings = load_settings()
    rejects = RejectsFile(rejects_path or f"{file}.rejects.csv", show_personal_data,
                          keep=SHOWN_REJECTS)

    def on_reject(reject: Any) -> None:
        try:
            rejects.add(reject)
        except OutputFileError as exc:
            fail(f"--rejects: {exc}")

    try:  # streamed: counts and refused rows only, whatever the file's size
        scan = scan_file(file, encoding=encoding, charset=settings.input_charset,
                         campaign_id=campaign_id, on_reject=on_reject, keep=not dry_run)
    except FileFormatError as exc:
        rejects.discard()
        fail(f"{file}: {exc}")
    finally:
        rejects.close()
    if rejects.rows and not as_json:
        _print_rejects(rejects)
    failed = EXIT_FINISHED_WITH_FAILURES if rejects.rows else 0
    if dry_run:
        summary = {"campaign": scan.campaign_id, "rows": scan.rows, "valid": scan.valid,
                   "rejected_rows": scan.rejected, "dry_run": True}
        if as_json:
            echo_json(summary)
        else:
            click.echo(f"{scan.rows} rows: {scan.valid} valid, {scan.rejected} "
                       f"refused (dry run: nothing enqueued; campaign id {scan.campaign_id})")
        raise click.exceptions.Exit(failed)
    producer = producer_for(settings)
    store = CampaignStore(producer.redis, producer.keys)
    former = store.status(scan.campaign_id)
    limit = rate if rate is not None else (former.rate if former else 0)
    if batch_size is None:
        batch_size = batch_size_for(scan.valid)
    if limit:  # a rate-limited batch would hold its message while its jobs wait their turn
        batch_size = min(batch_size, limit)
    enqueuer = CampaignEnqueuer(producer, store, chunk_size=chunk_size, batch_size=batch_size)
    enqueuer.outage = Outage("Redis", lambda text: click.echo(text, err=True))
    try:  # the verdicts of the read, chunk by chunk, as their jobs are enqueued
        result = enqueue_with_progress(
            scan.valid, lambda on_chunk: start_file(
                scan, enqueuer, name=name, rate=rate, on_chunk=on_chunk), quiet=as_json)
    except CampaignError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted while enqueueing; run the same command again to resume "
             f"(campaign {scan.campaign_id})")
    finally:
        producer.app.close()
    if not as_json:
        skipped = sum(result.skipped.values())
        click.echo(f"campaign {scan.campaign_id}: {result.new} enqueued, {result.resent} "
                   f"re-sent, {skipped} skipped (done or in flight)"
                   + (" - stopped: campaign cancelled" if result.stopped else ""))
    status = ride_out(lambda: store.status(scan.campaign_id),
                      Outage("Redis", lambda text: click.echo(text, err=True)))
    assert status is not None  # start() has just recorded it
    if status.state == CampaignState.PAUSED and not as_json:
        click.echo(f"campaign {scan.campaign_id} is paused: its jobs wait for "
                   f"`unsign-worker campaign resume {scan.campaign_id}`", err=True)
    if not detach:
        try:
            status = follow(store, scan.campaign_id, quiet=as_json)
        except KeyboardInterrupt:
            fail(f"stopped watching; the campaign goes on: unsign-worker campaign status "
                 f"{scan.campaign_id}")
        if status.failures:
            failed = EXIT_FINISHED_WITH_FAILURES
    if as_json:
        echo_json({**status.as_dict(), "enqueue": result.as_dict()})
    elif not detach:
        console().print(summary_table(status))
    raise click.exceptions.Exit(failed)


def _print_rejects(rejects: RejectsFile) -> None:
    from rich.markup import escape

    err = console(err=True)
    for error in rejects.shown:
        err.print(f"[red]refused[/] {escape(str(error))}")
    more = rejects.problems - len(rejects.shown)
    tail = f" ({more} more problems not shown)" if more > 0 else ""
    err.print(f"{rejects.rows} row(s) refused{tail}; all written to {escape(rejects.path)}")


@campaign_group.command("status", epilog="Example: unsign-worker campaign status c-3f9a1b2c4d5e")
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def campaign_status(campaign_id: str, as_json: bool) -> None:
    """Progress and outcome counts of one campaign."""
    from unsign_worker.cli._campaign_view import outcome_text, summary_table

    _, store = _store()
    status = store.status(campaign_id)
    if status is None:
        fail(f"no campaign {campaign_id}")
    if as_json:
        echo_json(status.as_dict())
        return
    out = console()
    out.print(summary_table(status))
    if status.outcomes or status.parked:
        out.print(outcome_text(status))


@campaign_group.command("list", epilog="Example: unsign-worker campaign list --json")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def campaign_list(as_json: bool) -> None:
    """Every campaign, newest first."""
    from unsign_worker.cli._campaign_view import list_table

    _, store = _store()
    statuses = store.list()
    if as_json:
        echo_json([s.as_dict() for s in statuses])
    else:
        console(whole_rows=True).print(list_table(statuses))


@campaign_group.command("report", epilog="""Examples:

\b
  unsign-worker campaign report c-3f9a1b2c4d5e --out report.csv
  unsign-worker campaign report c-3f9a1b2c4d5e | grep dead_lettered
""")
@click.argument("campaign_id")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="The CSV file to write (default: standard output).")
@click.option("--show-personal-data", is_flag=True,
              help="Show identities unmasked (the merchant's own report).")
def campaign_report(campaign_id: str, out: str | None, show_personal_data: bool) -> None:
    """Write one CSV row per input row: line, reference, identity, outcome, code, attempts,
    finished at, to --out or standard output. Identities are masked unless
    --show-personal-data."""
    from unsign_worker.producers.campaign.report import (
        REPORT_COLUMNS,
        report_rows,
        write_csv,
        write_csv_to,
    )

    _, store = _store()
    if store.status(campaign_id) is None:
        fail(f"no campaign {campaign_id}")
    rows = report_rows(store, campaign_id, show_personal_data=show_personal_data)
    if out is None:  # the CSV alone on standard output, ready for a pipe
        write_csv_to(sys.stdout, REPORT_COLUMNS, rows)
        return
    from unsign_worker.producers.reports import OutputFileError

    try:
        count = write_csv(Path(out), REPORT_COLUMNS, rows)
    except OutputFileError as exc:
        fail(f"--out: {exc}")
    click.echo(f"wrote {count} rows to {out}")


def _control(action: str, campaign_id: str) -> None:
    from unsign_worker.cli._ops import operations, operator
    from unsign_worker.store.campaigns import CampaignError

    try:
        said = operations(load_settings()).steer_campaign(action, campaign_id, by=operator())
    except CampaignError as exc:
        fail(str(exc))
    click.echo(f"campaign {campaign_id} {said}")


@campaign_group.command("pause", epilog="Example: unsign-worker campaign pause c-3f9a1b2c4d5e")
@click.argument("campaign_id")
def campaign_pause(campaign_id: str) -> None:
    """Stop sending the campaign's jobs (requests in flight finish)."""
    _control("pause", campaign_id)


@campaign_group.command("resume", epilog="Example: unsign-worker campaign resume c-3f9a1b2c4d5e")
@click.argument("campaign_id")
def campaign_resume(campaign_id: str) -> None:
    """Send a paused campaign's jobs again."""
    _control("resume", campaign_id)


@campaign_group.command("cancel", epilog="Example: unsign-worker campaign cancel c-3f9a1b2c4d5e")
@click.argument("campaign_id")
def campaign_cancel(campaign_id: str) -> None:
    """Cancel what has not been sent; a request in flight is never interrupted."""
    _control("cancel", campaign_id)


def register(group: click.Group) -> None:
    group.add_command(campaign_group)
