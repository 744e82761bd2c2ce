"""``unsign-worker producer add|list|remove``: the applications that enqueue through their own
stream (``P inbox:<name>``), and their limits (``store/producer_registry.py``)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from unsign_worker.cli._ops import console, echo_json
from unsign_worker.cli.common import fail, load_settings, redis_for
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import (
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_PENDING,
    MAX_ENTRY_BYTES_LIMIT,
    ProducerError,
    ProducerRegistry,
)


def register(group: click.Group) -> None:
    group.add_command(producer_group)


def _registry() -> tuple[ProducerRegistry, Keys]:
    settings = load_settings()
    keys = Keys(settings.key_prefix)
    return ProducerRegistry(redis_for(settings), keys), keys


@click.group("producer")
def producer_group() -> None:
    """The applications that enqueue jobs, each as its own producer."""


@producer_group.command("add", epilog="""Examples:

\b
  unsign-worker producer add crm
  unsign-worker producer add billing --max-pending 50000
""")
@click.argument("name")
@click.option("--max-pending", default=DEFAULT_MAX_PENDING, show_default=True,
              type=click.IntRange(min=1),
              help="Entries its stream may hold before the workers refuse the surplus.")
@click.option("--max-entry-bytes", default=DEFAULT_MAX_ENTRY_BYTES, show_default=True,
              type=click.IntRange(256, MAX_ENTRY_BYTES_LIMIT),
              help="Largest entry the workers read (it may only be lowered).")
def producer_add(name: str, max_pending: int, max_entry_bytes: int) -> None:
    """Let producer NAME enqueue (or change its limits): the workers read its stream within
    seconds. Its Redis user: `unsign-worker acl --producer NAME`."""
    registry, keys = _registry()
    try:
        settings = registry.add(name, max_pending=max_pending, max_entry_bytes=max_entry_bytes)
    except ProducerError as exc:
        fail(f"NAME: {exc}", 2)
    click.echo(f"producer {settings.name}: stream {keys.inbox(settings.name)}, at most "
               f"{settings.max_pending} entries waiting, {settings.max_entry_bytes} bytes each")


@producer_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def producer_list(as_json: bool) -> None:
    """The producers, their limits, entries waiting and entries refused by reason."""
    registry, _ = _registry()
    producers = registry.all()
    rejected = registry.rejected()
    waiting = registry.waiting(list(producers))
    rows = []
    for name, settings in producers.items():
        refused = {reason: n for (who, reason), n in rejected.items() if who == name}
        rows.append({**settings.as_dict(), "waiting": int(waiting[name]), "rejected": refused})
    if as_json:
        echo_json({"producers": rows})
        return
    if not rows:
        click.echo("no producer: add one with `unsign-worker producer add NAME`")
        return
    table = Table()
    for column in ("producer", "waiting", "max pending", "max entry bytes", "rejected"):
        table.add_column(column)
    for row in rows:
        refused = ", ".join(f"{r} {n}" for r, n in sorted(row["rejected"].items())) or "-"
        table.add_row(escape(row["name"]), str(row["waiting"]), str(row["max_pending"]),
                      str(row["max_entry_bytes"]), escape(refused))
    console().print(table)


@producer_group.command("adopt-legacy")
@click.argument("name")
def producer_adopt_legacy(name: str) -> None:
    """Move the entries waiting in the stream every producer shared in earlier versions
    (P inbox, which no worker reads any more) to producer NAME's stream."""
    registry, keys = _registry()
    try:
        moved = registry.adopt_legacy(name)
    except ProducerError as exc:
        fail(str(exc))
    click.echo(f"{moved} entries moved from {keys.legacy_inbox} to {keys.inbox(name)}")


@producer_group.command("remove")
@click.argument("name")
def producer_remove(name: str) -> None:
    """Stop reading producer NAME's stream (its jobs go on; entries still waiting stay in its
    stream until it is added again). Remove its Redis user too."""
    registry, _ = _registry()
    if not registry.remove(name):
        fail(f"no producer {name!r}")
    click.echo(f"producer {name} removed")
