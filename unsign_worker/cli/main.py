"""Entry point of the ``unsign-worker`` command.

Each command family lives in its own module and registers itself here when one of its commands
is looked up (:data:`COMMANDS`). Exit codes (documented in docs/cli.md):
"""

from __future__ import annotations

import importlib
import sys

import click

from unsign_worker import __version__

#: Everything went well.
EXIT_OK = 0
#: A command failed (bad input, unreachable service, bad configuration).
EXIT_ERROR = 1
#: Click's own usage errors.
EXIT_USAGE = 2
#: Finished, but some jobs were dead-lettered or rejected.
EXIT_FINISHED_WITH_FAILURES = 3

#: The top-level commands, by the module under unsign_worker.cli that defines them (with
#: ``register(group)``). Only the module of the command being run is imported: ``campaign run``
#: does not load the emulator's web server, nor ``worker`` the console's.
COMMANDS = {
    "check-config": "config_cmds", "sign": "config_cmds", "acl": "config_cmds",
    "emulator": "emulator_cmds",
    "worker": "worker_cmds", "breaker": "breaker_cmds", "audit": "breaker_cmds",
    "enqueue": "jobs_cmds", "job": "jobs_cmds", "producer": "producer_cmds",
    "campaign": "campaign_cmds",
    "dlq": "dlq_cmds",
    "status": "ops_cmds",
    "flower": "flower_cmds",
    "demo": "demo_cmds", "dev": "dev_cmds",
    "console": "console_cmds",
}
#: Modules under unsign_worker.cli that each define ``register(group)``.
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class _Commands(click.Group):
    """A group that imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in COMMAND_MODULES:
            _register(self, module)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            _register(self, COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)


_registered: set[str] = set()


def _register(group: click.Group, name: str) -> None:
    if name in _registered:
        return
    _registered.add(name)
    try:
        module = importlib.import_module(f"unsign_worker.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"unsign_worker.cli.{name}":
            return
        raise
    module.register(group)


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="unsign-worker")
def cli() -> None:
    """Cancel Alipay customer agreements (customer_unsign) reliably, at campaign scale."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting (for tests and embedding)."""
    try:
        code = cli.main(args=argv, prog_name="unsign-worker", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns Exit's code when not standalone
            return code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_ERROR
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
