"""A sandbox that behaves like Alipay's MAPI gateway for ``customer_unsign`` (and
``query_customer_protocol``): state, faults on demand, an admin API, a seed command.

Written from the documents alone: it imports no other ``unsign_worker`` module (the contract in
``.importlinter``), so it can disagree with the worker. Its defaults are the documents' samples
(unsigned errors and query answers); :class:`AnswerOptions` turns on the variants.

Entry points: :func:`build_config`, :class:`~unsign_worker.emulator.runner.EmulatorThread`,
:class:`~unsign_worker.emulator.admin.EmulatorAdmin`, and for HTTPS :func:`make_sandbox_pki`
with :func:`server_ssl_context`; the CLI is ``unsign-worker emulator``.
See docs/emulator.md.
"""

from __future__ import annotations

from unsign_worker.emulator.admin import EmulatorAdmin, EmulatorAdminError
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.emulator.config import EmulatorConfig, build_config
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.options import AnswerOptions
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.scenario import Scenario
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.tls import SandboxPki, make_sandbox_pki, server_ssl_context

__all__ = [
    "Agreement",
    "AnswerOptions",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorConfig",
    "EmulatorConfigError",
    "EmulatorState",
    "EmulatorThread",
    "SandboxPki",
    "Scenario",
    "build_config",
    "make_sandbox_pki",
    "server_ssl_context",
]
