"""The command line finds each command in its own module and imports no other command's."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from unsign_worker.cli.main import COMMAND_MODULES, COMMANDS, cli


def test_every_command_is_listed_under_the_module_that_defines_it() -> None:
    for module in COMMAND_MODULES:
        group = click.Group()
        importlib.import_module(f"unsign_worker.cli.{module}").register(group)
        assert set(group.commands) == {n for n, m in COMMANDS.items() if m == module}
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)


def test_a_command_loads_only_its_own_module() -> None:
    code = ("import sys\n"
            "from unsign_worker.cli.main import main\n"
            "main(['campaign', 'run', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('unsign_worker.cli.')\n"
            "             and m.endswith('_cmds')), 'aiohttp' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "['unsign_worker.cli.campaign_cmds'] False"
