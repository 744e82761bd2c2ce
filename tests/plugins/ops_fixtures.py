"""End-to-end rig of the producer and operator tests: the gateway emulator in a thread, real
worker processes, and the ``unsign-worker`` CLI run in-process with the test's environment.

``ops_env(agreements)`` gives an :class:`OpsEnv`; agreements are emulator
:class:`~unsign_worker.emulator.agreements.Agreement` objects or agreements-file entries (for
instance from :func:`unsign_worker.emulator.seed.generate`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.plugins.worker_fixtures import BIN, WorkerEnv
from unsign_worker.cli.main import cli
from unsign_worker.emulator.agreements import Agreement, agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.seed import DEFAULT_PARTNER
from unsign_worker.emulator.state import EmulatorState

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
    emulator: EmulatorThread
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
        state = self.emulator.state
        return self.emulator.call(lambda: state.stats.snapshot(in_flight=state.in_flight))

    def clear_faults(self) -> None:
        self.emulator.call(self.emulator.state.clear)


def _agreement(item: Agreement | dict[str, Any], index: int) -> Agreement:
    if isinstance(item, Agreement):
        return item
    return agreement_from_entry(item, f"agreements[{index}]")


@pytest.fixture
def ops_env(worker_env_factory: Callable[..., WorkerEnv], tmp_path: Path
            ) -> Iterator[Callable[[Iterable[Agreement | dict[str, Any]]], OpsEnv]]:
    threads: list[EmulatorThread] = []

    def make(agreements: Iterable[Agreement | dict[str, Any]]) -> OpsEnv:
        book = [_agreement(a, i) for i, a in enumerate(agreements)]
        state = EmulatorState(build_config(partner=PARTNER, key=KEY), book)
        thread = EmulatorThread(state).start()
        threads.append(thread)
        workers = worker_env_factory(gateway_url=thread.url, partner=PARTNER, key=KEY,
                                     **SLACK_ENV)
        return OpsEnv(workers=workers, emulator=thread, tmp=tmp_path)

    yield make
    for thread in threads:
        thread.stop()
