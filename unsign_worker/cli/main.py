"""Entry point of the ``unsign-worker`` command.

Each command family lives in its own module and registers itself here. Exit codes (documented in
docs/cli.md):
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

#: Modules under unsign_worker.cli that each define ``register(group)``.
COMMAND_MODULES = (
    "config_cmds",
    "emulator_cmds",
    "worker_cmds",
    "breaker_cmds",
    "jobs_cmds",
    "campaign_cmds",
    "dlq_cmds",
    "ops_cmds",
    "flower_cmds",
    "demo_cmds",
    "console_cmds",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="unsign-worker")
def cli() -> None:
    """Cancel Alipay customer agreements (customer_unsign) reliably, at campaign scale."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"unsign_worker.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"unsign_worker.cli.{name}":
                continue
            raise
        module.register(cli)


_register_all()


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
