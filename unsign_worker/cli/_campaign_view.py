"""How a campaign is shown: the live progress bar and the summary tables."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from unsign_worker.cli._ops import console, when
from unsign_worker.store.campaigns import OUTCOMES, CampaignStatus
from unsign_worker.store.outage import Outage, ride_out
from unsign_worker.store.states import JobState

#: Seconds between two looks at a campaign's progress.
POLL_SECONDS = 0.5
#: Window of the rate shown on the progress bar, seconds.
RATE_WINDOW_SECONDS = 10.0
_STYLE = {"unsigned": "green", "already_unsigned": "green", "duplicate": "cyan",
          "cancelled": "yellow", "rejected": "red", "dead_lettered": "bold red"}


def outcome_text(status: CampaignStatus) -> str:
    parts = [f"[{_STYLE.get(o, '')}]{o} {n}[/]" for o in OUTCOMES
             if (n := status.outcomes.get(o, 0))]
    if status.parked:
        parts.append(f"[yellow]parked {status.parked}[/]")
    return "  ".join(parts)


class RateMeter:
    """Jobs per second over a sliding window, and the ETA it implies."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self._window = window
        self._points: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float:
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self._window:
            self._points.popleft()
        first_t, first_done = self._points[0]
        return (done - first_done) / (now - first_t) if now > first_t else 0.0


def eta_text(remaining: int, rate: float) -> str:
    if remaining <= 0:
        return "0:00:00"
    if rate <= 0:
        return "-:--:--"
    seconds = int(remaining / rate)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def watch(read: Callable[[], CampaignStatus], out: Console) -> CampaignStatus:
    """Show a live progress bar (done / total, rate, ETA, outcomes) until the campaign has
    finished; returns its final status. Ctrl-C stops watching (the campaign goes on).

    A Redis outage (restart, failover) is waited out: one line says since when Redis is
    unavailable, one that it is back, and the bar carries on."""
    outage = Outage("Redis", lambda text: out.print(f"[yellow]{escape(text)}[/]"))
    status = ride_out(read, outage)
    meter = RateMeter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]:>8} jobs/s"),
               TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(),
               TextColumn("{task.fields[outcomes]}"))
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task(status.campaign, total=max(status.total, 1), rate="0.0",
                                 eta="-:--:--", outcomes="")
        while True:
            rate = meter.add(time.monotonic(), status.done)
            progress.update(task, completed=status.done, total=max(status.total, 1),
                            rate=f"{rate:.1f}", eta=eta_text(status.total - status.done, rate),
                            outcomes=outcome_text(status),
                            description=f"{status.campaign} ({status.state})")
            if status.finished:
                return status
            time.sleep(POLL_SECONDS)
            status = ride_out(read, outage)


def summary_table(status: CampaignStatus) -> Table:
    title = f"campaign {status.campaign}"
    # as wide as its title, so that the campaign id in it is never folded
    table = Table(title=title, show_header=True, min_width=len(title) + 4)
    table.add_column("")
    table.add_column("jobs", justify="right")
    for outcome in OUTCOMES:
        count = status.outcomes.get(outcome, 0)
        if count or outcome in (JobState.UNSIGNED, JobState.DEAD_LETTERED, JobState.REJECTED):
            table.add_row(f"[{_STYLE.get(outcome, '')}]{outcome}[/]", str(count))
    table.add_row("rows refused by the validator", str(status.rejected_rows))
    if status.parked:
        table.add_row("parked (paused)", str(status.parked))
    table.add_row("[bold]done / total[/]", f"{status.done} / {status.total}")
    table.add_row("jobs/s over its run (start to done)", f"{status.run_rate():.2f}")
    if status.requeued_after_run:
        table.add_row("requeued after the run", str(status.requeued_after_run))
    table.caption = (f"state {status.state} · name {escape(status.name or '-')} · rate "
                     f"{status.rate or 'unlimited'}{'/s' if status.rate else ''} · created "
                     f"{when(status.created_at)} · finished {when(status.finished_at)}")
    return table


def list_table(statuses: list[CampaignStatus]) -> Table:
    table = Table(title="campaigns")
    for name in ("id", "name", "state", "done / total", "failures", "refused rows", "created"):
        # the id is to be copied: never wrapped or cut; the others fold rather than lose text
        table.add_column(name, justify="right" if name[0] in "dfr" else "left",
                         no_wrap=name == "id", overflow="fold")
    for s in statuses:
        table.add_row(s.campaign, escape(s.name or "-"), s.state, f"{s.done} / {s.total}",
                      str(s.failures), str(s.rejected_rows), when(s.created_at))
    return table


def enqueue_with_progress(total: int, run: Callable[[Callable[[Any, int], None] | None], Any],
                          *, quiet: bool) -> Any:
    """Call ``run(on_chunk)`` with a progress bar of the enqueue (``total`` jobs) on standard
    error, or ``run(None)`` when quiet; ``on_chunk(result, handled)`` moves the bar."""
    if quiet or not total:
        return run(None)
    with Progress(TextColumn("enqueue"), BarColumn(), MofNCompleteColumn(),
                  console=console(err=True), transient=True) as progress:
        task = progress.add_task("enqueue", total=total)
        return run(lambda _result, handled: progress.update(task, completed=handled))


def follow(store: Any, campaign_id: str, *, quiet: bool) -> CampaignStatus:
    """Wait until the campaign has finished: with the live bar, or silently when quiet."""
    if not quiet:
        return watch(lambda: store.status(campaign_id), console())
    err = console(err=True)
    outage = Outage("Redis", lambda text: err.print(escape(text)))
    while not (status := ride_out(lambda: store.status(campaign_id), outage)).finished:
        time.sleep(POLL_SECONDS)
    return status
