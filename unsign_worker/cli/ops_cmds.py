"""``unsign-worker status``: the whole system at a glance."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from unsign_worker.cli._ops import console, echo_json, when
from unsign_worker.cli.common import load_settings, redis_for
from unsign_worker.store.keys import Keys
from unsign_worker.store.states import BreakerStatus


@click.command("status", epilog="""Examples:

\b
  unsign-worker status
  unsign-worker status --json | jq .dlq
""")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status_cmd(as_json: bool) -> None:
    """Queue depths, jobs in flight, recent rate, outcome counts, dead letters by code, the
    circuit breaker, and the workers seen."""
    from unsign_worker.ops.status import collect

    settings = load_settings()
    data = collect(redis_for(settings), Keys(settings.key_prefix))
    if as_json:
        echo_json(data)
        return
    console().print(render(data))


def _kv(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", min_width=30)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows:
        table.add_row(escape(str(name)), escape(str(value)))
    return table


def render(data: dict[str, Any]) -> Group:
    """The status as rich tables."""
    breaker = data["breaker"]
    if breaker["state"] == BreakerStatus.OPEN:
        breaker_line = (f"[bold red]OPEN[/] since {when(breaker['opened_at'])}: "
                        f"{escape(breaker['code'])} ({escape(breaker['reason'])})")
    else:
        breaker_line = "[green]closed[/]"
    queues = _kv("queues", [
        *[(f"queue {name}", depth) for name, depth in data["queues"].items()],
        ("delivered, not acknowledged", data["unacked"]),
        ("in flight (sending or waiting to retry)", data["in_flight"]),
        ("parked (breaker open)", data["parked"]["breaker"]),
        ("parked (campaign paused)", data["parked"]["campaigns"]),
        ("inbox entries / pending", f"{data['inbox']['length']} / {data['inbox']['pending']}"),
    ])
    rate = data["rate"]
    outcomes = _kv("outcomes (all time)", [*data["outcomes"].items(),
                                            ("finished this minute", rate["this_minute"]),
                                            ("finished, last 5 minutes", rate["last_5_minutes"]),
                                            ("jobs/s, last 5 minutes", rate["per_second"])])
    dlq = _kv(f"dead-letter queue: {data['dlq']['size']} open",
              list(data["dlq"]["by_code"].items()) or [("(empty)", "")])
    workers = Table(title="workers", title_justify="left")
    for name in ("hostname", "last seen", "alive", "gateway"):
        workers.add_column(name)
    for w in data["workers"]:
        cut = w.get("gateway_unreachable")
        workers.add_row(escape(w["hostname"]), f"{w['age_seconds']:.0f}s ago",
                        "[green]yes[/]" if w["alive"] else "[red]no[/]",
                        "[green]reachable[/]" if not cut else
                        f"[red]unreachable[/] ({escape(str(cut.get('cause', '')))})")
    return Group(f"circuit breaker: {breaker_line}", queues, outcomes, dlq, workers)


def register(group: click.Group) -> None:
    group.add_command(status_cmd)
