"""``unsign-worker breaker status|reset`` and ``unsign-worker audit export``."""

from __future__ import annotations

import json
import sys

import click

from unsign_worker.cli.common import load_settings, output_file, redis_for
from unsign_worker.store.keys import Keys
from unsign_worker.store.states import BreakerStatus


@click.group("breaker")
def breaker_group() -> None:
    """The circuit breaker that stops the line on integration-wide errors."""


@breaker_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def breaker_status(as_json: bool) -> None:
    """Show whether the breaker is open, and why."""
    from unsign_worker.store.breaker import Breaker

    settings = load_settings()
    state = Breaker(redis_for(settings), Keys(settings.key_prefix), threshold=1,
                    window_seconds=1).state()
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    if state.state == BreakerStatus.OPEN:
        click.echo(f"breaker OPEN since {state.opened_at}: {state.code} ({state.reason})")
    else:
        click.echo("breaker closed")


@breaker_group.command("reset")
def breaker_reset() -> None:
    """Close the breaker by hand once the integration is fixed; parked jobs resume."""
    from unsign_worker.cli._ops import operations, operator

    operations(load_settings()).reset_breaker(by=operator())
    click.echo("breaker closed; parked jobs resume at their next look")


@click.group("audit")
def audit_group() -> None:
    """The audit log of every attempt."""


@audit_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Output file (default: standard output).")
@click.option("--campaign", default="", help="Only this campaign's attempts.")
def audit_export(fmt: str, out: str, campaign: str) -> None:
    """Write the audit log as JSON lines or CSV (personal data masked).

    Example: unsign-worker audit export --format csv --out audit.csv
    """
    from unsign_worker.ops import audit_export as export

    settings = load_settings()
    rows = export.audit_rows(redis_for(settings), Keys(settings.key_prefix), campaign=campaign)
    handle = sys.stdout if out == "-" else output_file(out)
    try:
        export.write(rows, handle, fmt=fmt)
    finally:
        if handle is not sys.stdout:
            handle.close()


def register(group: click.Group) -> None:
    group.add_command(breaker_group)
    group.add_command(audit_group)
