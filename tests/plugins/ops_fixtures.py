"""End-to-end rig of the producer and operator tests: the gateway emulator in a thread, real
worker processes, and the ``unsign-worker`` CLI run in-process with the test's environment.

``ops_env(agreements)`` gives an :class:`OpsEnv`; agreements are emulator
:class:`~unsign_worker.emulator.agreements.Agreement` objects or agreements-file entries (for
instance from :func:`unsign_worker.emulator.seed.generate`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.plugins.emulator import Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from tests.plugins.worker_fixtures import BIN, WorkerEnv
from unsign_worker.cli.main import cli
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.emulator.seed import DEFAULT_PARTNER

pytest_plugins = ["tests.plugins.worker_fixtures"]

PARTNER = DEFAULT_PARTNER
#: The sandbox MD5 key shared by the emulator and the workers of a test.
KEY = "0123456789abcdef0123456789abcdef"
#: Room on top of the worker fixtures' short timeouts: these tests check outcomes, not fault
#: handling, so an answer slowed by a busy machine must not turn into a retry.
SLACK_ENV = {"UNSIGN_READ_TIMEOUT": "5", "UNSIGN_LEASE": "15", "UNSIGN_VISIBILITY_TIMEOUT": "30"}


@dataclass
class OpsEnv:
    workers: WorkerEnv
    emulator: Emulator
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        return self.workers.env

    def cli(self, *args: str) -> Result:
        """Run ``unsign-worker ARGS`` in this process with the test's environment."""
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)

    def cli_process(self, *args: str, log: str = "cli") -> subprocess.Popen[bytes]:
        """Start ``unsign-worker ARGS`` as a separate process (output in ``tmp/<log>.log``)."""
        out = open(self.tmp / f"{log}.log", "ab")
        return subprocess.Popen([str(BIN / "unsign-worker"), *args], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def python(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh Python interpreter with the test's environment."""
        return subprocess.run([sys.executable, "-c", code, *args], env=self.env, text=True,
                              capture_output=True, timeout=120, check=False)

    def stats(self) -> dict[str, Any]:
        return self.emulator.stats()

    def clear_faults(self) -> None:
        self.emulator.clear()


@pytest.fixture
def ops_env(worker_env_factory: Callable[..., WorkerEnv], emulator_factory: EmulatorFactory,
            tmp_path: Path) -> Callable[[Iterable[Agreement | dict[str, Any]]], OpsEnv]:
    def make(agreements: Iterable[Agreement | dict[str, Any]]) -> OpsEnv:
        emulator = emulator_factory(list(agreements), partner=PARTNER, key=KEY)
        workers = worker_env_factory(gateway_url=emulator.url, partner=PARTNER, key=KEY,
                                     **SLACK_ENV)
        return OpsEnv(workers=workers, emulator=emulator, tmp=tmp_path)

    return make
