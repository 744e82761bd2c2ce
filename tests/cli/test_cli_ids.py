"""Ids can be copied: ``dlq list`` shows every job and campaign id whole, on a terminal 80 or
100 columns wide and piped, and every id in a command's help is one the command takes."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click
import pytest

from tests.plugins.dead_letters import dead_letter
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.cli.main import cli
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.job import CAMPAIGN_ID_RE, JOB_ID_RE, new_job_id

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

#: A campaign id as long as CAMPAIGN_ID_RE allows.
LONG_CAMPAIGN = "spring-clean-up.2026-12_" + "x" * 24
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def dead_lettered(ops_env: Callable[..., OpsEnv], long_campaign: str = LONG_CAMPAIGN
                  ) -> tuple[OpsEnv, dict[str, str]]:
    """Three open entries, the way the worker leaves them: their job id -> campaign."""
    env = ops_env([])
    entries = {new_job_id(): "c-3f9a1b2c4d5e", new_job_id(): "",
               new_job_id(): long_campaign}
    for (job_id, campaign), code in zip(entries.items(), (
            "TOO_MUCH_TYPE_CODE", "FAIL_UNFREEZE_STANDARD_BAIL", "TOO_MUCH_TYPE_CODE"),
            strict=True):
        dead_letter(env.workers.redis, env.workers.keys, job_id, code=code, campaign=campaign)
    return env, entries


def on_a_terminal(env: OpsEnv, columns: int, *args: str) -> str:
    """``unsign-worker ARGS`` with its output on a terminal ``columns`` wide (escapes removed)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([str(BIN / "unsign-worker"), *args], stdin=subprocess.DEVNULL,
                            stdout=child, stderr=child, env={**env.env, "COLUMNS": str(columns)})
    os.close(child)
    chunks = []
    try:
        for chunk in iter(lambda: _read(main), b""):
            chunks.append(chunk)
    finally:
        os.close(main)
    assert wait_for(lambda: proc.poll() is not None, timeout=120, what="the command's end")
    assert proc.returncode == 0
    return ANSI_RE.sub("", b"".join(chunks).decode()).replace("\r", "")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as exc:  # the terminal's other side closed: all is read
        if exc.errno == errno.EIO:
            return b""
        raise


def piped(env: OpsEnv, *args: str) -> str:
    """``unsign-worker ARGS`` with its output to a pipe, COLUMNS=100 set."""
    done = subprocess.run([str(BIN / "unsign-worker"), *args], capture_output=True, text=True,
                          env={**env.env, "COLUMNS": "100"}, timeout=120, check=True)
    return done.stdout


def assert_whole(output: str, entries: dict[str, str]) -> None:
    """Each job id on one line, whole; each campaign id whole unless its column is left out."""
    lines = output.splitlines()
    campaigns_shown = not re.search(r"campaign[^\n]* left out to fit", output)
    for job_id, campaign in entries.items():
        row = [line for line in lines if re.search(rf"(?<![0-9a-f]){job_id}(?![0-9a-f])", line)]
        assert len(row) == 1, output
        if campaign and campaigns_shown:
            assert re.search(rf"(?<![\w.-]){re.escape(campaign)}(?![\w.-])", row[0]), output
    assert "…" not in output, output


@pytest.mark.parametrize("columns", [80, 100])
def test_dlq_list_on_a_terminal_shows_whole_ids_that_show_and_resolve_take(
        ops_env: Callable[..., OpsEnv], columns: int) -> None:
    # Given three dead-lettered jobs, one in a campaign with a 48-character id
    env, entries = dead_lettered(ops_env)
    # When the list is shown on a narrow terminal
    output = on_a_terminal(env, columns, "dlq", "list")
    # Then each id is whole on one line, the table fits, and the ids copied from it work
    assert_whole(output, entries)
    assert max(len(line.rstrip()) for line in output.splitlines()) <= columns, output
    copied = JOB_ID_RE.findall(output)
    assert sorted(copied) == sorted(entries)
    for job_id in copied:
        assert env.cli("dlq", "show", job_id).exit_code == 0
    resolved = env.cli("dlq", "resolve", copied[0], "--note", "copied from the list")
    assert resolved.exit_code == 0, resolved.output


def test_dlq_list_piped_shows_one_line_per_entry_with_its_whole_ids(
        ops_env: Callable[..., OpsEnv]) -> None:
    env, entries = dead_lettered(ops_env)
    for output in (piped(env, "dlq", "list"), env.cli("dlq", "list").stdout):
        assert_whole(output, entries)
        for job_id in entries:
            assert env.cli("dlq", "show", job_id).exit_code == 0
    row = next(line for line in piped(env, "dlq", "list").splitlines() if LONG_CAMPAIGN in line)
    assert "customer_code:C00000000001" in row and "ref-" in row


def test_dlq_list_on_a_terminal_keeps_the_campaigns_while_they_fit_and_names_what_it_left_out(
        ops_env: Callable[..., OpsEnv]) -> None:
    env, entries = dead_lettered(ops_env, long_campaign="demo")
    wide = on_a_terminal(env, 100, "dlq", "list")
    assert_whole(wide, entries)
    assert "c-3f9a1b2c4d5e" in wide and "campaign" in wide.split("left out")[0]
    assert "identity, reference, kind left out to fit: dlq show JOB_ID has them" in wide
    narrow = on_a_terminal(env, 80, "dlq", "list")
    assert "identity, reference, kind, campaign left out to fit" in narrow
    assert "left out" not in piped(env, "dlq", "list")


@pytest.mark.parametrize("columns", [80, 100])
def test_campaign_list_and_status_show_the_whole_campaign_id(
        ops_env: Callable[..., OpsEnv], columns: int) -> None:
    # Given campaigns, one with an id as long as allowed and a long name
    env = ops_env([])
    store = CampaignStore(env.workers.redis, env.workers.keys)
    for campaign, name in ((LONG_CAMPAIGN, "spring clean-up of the merchant agreements " * 2),
                           ("c-3f9a1b2c4d5e", "")):
        store.begin(campaign, name=name, source="unsign.csv", total=3000, rejected=1, rate=20)
    # When they are listed on a terminal and piped, and one is shown
    for output in (on_a_terminal(env, columns, "campaign", "list"),
                   piped(env, "campaign", "list"), env.cli("campaign", "list").stdout,
                   on_a_terminal(env, columns, "campaign", "status", LONG_CAMPAIGN)):
        # Then each id is whole on one line
        for campaign in (LONG_CAMPAIGN, "c-3f9a1b2c4d5e"):
            if "campaigns" in output:
                assert re.search(rf"(?<![\w.-]){re.escape(campaign)}(?![\w.-])", output), output
        assert LONG_CAMPAIGN in output and "…" not in output, output


def help_texts() -> Iterator[tuple[str, str]]:
    def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        ctx = click.Context(command, info_name=" ".join(path))
        yield " ".join(path), command.get_help(ctx)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, (*path, name))

    yield from walk(cli, ("unsign-worker",))


#: The examples' id arguments: ``unsign-worker <command> [<sub>] <id>`` and ``--campaign <id>``.
JOB_ID_COMMANDS = ("dlq show", "dlq requeue", "dlq resolve", "job show")
CAMPAIGN_ID_COMMANDS = ("campaign status", "campaign report", "campaign pause",
                        "campaign resume", "campaign cancel")


def example_ids() -> list[tuple[str, str, str]]:
    """(help of, the example's id, the rule it must meet) for every id in every help text."""
    found = []
    for name, text in help_texts():
        for line in text.splitlines():
            if line.startswith("Usage:"):
                continue
            for command in JOB_ID_COMMANDS + CAMPAIGN_ID_COMMANDS:
                match = re.search(rf"unsign-worker {command} ([^\s-][^\s]*)", line)
                if match:
                    rule = "job" if command in JOB_ID_COMMANDS else "campaign"
                    found.append((name, match.group(1), rule))
            for match in re.finditer(r"--campaign ([^\s]+)", line):
                if not match.group(1).isupper():  # ID, the metavar
                    found.append((name, match.group(1), "campaign"))
    return found


def test_every_example_id_in_the_help_is_one_its_command_accepts() -> None:
    examples = example_ids()
    # every command that takes an id has an example of one
    assert {(n.removeprefix("unsign-worker "), rule) for n, _, rule in examples} >= {
        *((c, "job") for c in JOB_ID_COMMANDS), *((c, "campaign") for c in CAMPAIGN_ID_COMMANDS)}
    rules = {"job": JOB_ID_RE, "campaign": CAMPAIGN_ID_RE}
    wrong = [(name, example) for name, example, rule in examples
             if not rules[rule].fullmatch(example)]
    assert wrong == []
