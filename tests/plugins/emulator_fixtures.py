"""Gateway emulator fixtures: in-process (a background thread on a free port) or as a process.

- ``emulator``: a fresh emulator with :data:`SAMPLE_AGREEMENTS`, stopped after the test.
- ``emulator_factory(agreements=..., scenario=..., key=..., ...)``: the same with options.
- ``emulator_process(agreements=..., scenario=...)``: ``unsign-worker emulator`` started as a
  subprocess on a free port, ready (health polled) before it is returned, terminated after.

Each handle exposes ``url`` (``http://127.0.0.1:PORT/gateway.do``), ``admin``
(:class:`~unsign_worker.emulator.admin.EmulatorAdmin`), ``partner`` and ``key``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import pytest
import requests

from tests.plugins.ports import free_port
from unsign_worker.emulator.admin import EmulatorAdmin, EmulatorAdminError
from unsign_worker.emulator.agreements import agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.scenario import parse_scenario
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.protocol.signing import Signer, make_signer, sign_params

TEST_PARTNER = "2088101568338364"
#: A few agreements of every kind; ids are what the admin API and stats use.
SAMPLE_AGREEMENTS: tuple[dict[str, Any], ...] = (
    {"id": "cae-1", "customer_code": "C00000000001", "type_code": "BUSI003100021000301",
     "trans_account_out": "20880020070189160156"},
    {"id": "cae-2", "customer_code": "C00000000002", "type_code": "BUSI003100021000301",
     "trans_account_out": "20880020070189170156"},
    {"id": "cae-3", "customer_code": "C00000000003", "type_code": "BUSI003100021000302",
     "trans_account_out": "20880020070189180156"},
    {"id": "cae-unsigned", "customer_code": "C00000000009", "type_code": "BUSI003100021000301",
     "trans_account_out": "20880020070189190156", "status": "unsigned"},
    {"id": "pp-1", "biz_type": "10004", "user_email": "li.wei@example.com",
     "user_id": "2088102002723983", "customer_code": "C00000000101"},
    {"id": "pp-zh", "biz_type": "10004", "user_email": "李雷@例子.公司",
     "user_id": "2088102002723984", "customer_code": "C00000000102"},
)
#: How long a subprocess emulator may take to answer its health check, seconds.
PROCESS_READY_SECONDS = 30.0
VENV_CLI = Path(sys.executable).with_name("unsign-worker")


def write_agreements_file(path: Path, agreements: Sequence[Mapping[str, Any]], *,
                          partner: str = TEST_PARTNER) -> Path:
    path.write_text(json.dumps({"partner": partner, "agreements": list(agreements)},
                               ensure_ascii=False), encoding="utf-8")
    return path


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never through a proxy: 127.0.0.1 only
    return session


@dataclass
class EmulatorHandle:
    """A running emulator and what a client needs to talk to it."""

    url: str
    admin: EmulatorAdmin
    partner: str
    key: str
    thread: EmulatorThread | None = None
    process: subprocess.Popen[bytes] | None = None
    signers: dict[str, Signer] = field(default_factory=dict)
    http: requests.Session = field(default_factory=_session)

    @property
    def base_url(self) -> str:
        return self.admin.base_url

    def signer(self, sign_type: str = "MD5") -> Signer:
        """The merchant's signer for requests (MD5: the shared key)."""
        if sign_type not in self.signers:
            self.signers[sign_type] = make_signer(sign_type, key=self.key)
        return self.signers[sign_type]

    def signed(self, *, service: str = "customer_unsign", charset: str = "utf-8",
               sign_type: str = "MD5", **business: str) -> dict[str, str]:
        """A signed parameter set for this emulator's partner."""
        params = {"service": service, "partner": self.partner, "_input_charset": charset,
                  **business}
        return sign_params(params, self.signer(sign_type), charset)

    def send(self, params: Mapping[str, str], *, method: str = "POST",
             charset: str | None = None, timeout_seconds: float = 10.0) -> requests.Response:
        """Send ``params`` the way the gateway expects: POST to ``?_input_charset=`` with a
        form body, or GET with everything in the query string, encoded in ``charset``
        (default: the ``_input_charset`` parameter, else utf-8)."""
        charset = charset or params.get("_input_charset") or "utf-8"
        encoded = urlencode(dict(params), encoding=charset)
        if method == "GET":
            return self.http.get(f"{self.url}?{encoded}", timeout=timeout_seconds)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.http.post(f"{self.url}?{urlencode({'_input_charset': charset})}",
                              data=encoded.encode("ascii"), headers=headers,
                              timeout=timeout_seconds)

    def stop(self) -> None:
        self.http.close()
        if self.thread is not None:
            self.thread.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.admin.close()


class EmulatorFactory(Protocol):
    def __call__(self, *, agreements: Sequence[Mapping[str, Any]] = ...,
                 scenario: Mapping[str, Any] | None = ..., partner: str = ...,
                 key: str | None = ..., merchant_public_key_pem: str | bytes = ...,
                 alipay_private_key_pem: str | bytes = ...) -> EmulatorHandle: ...


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start in-process emulators with options; all are stopped after the test."""
    started: list[EmulatorHandle] = []

    def start(*, agreements: Sequence[Mapping[str, Any]] = SAMPLE_AGREEMENTS,
              scenario: Mapping[str, Any] | None = None, partner: str = TEST_PARTNER,
              key: str | None = None, merchant_public_key_pem: str | bytes = "",
              alipay_private_key_pem: str | bytes = "") -> EmulatorHandle:
        key = secrets.token_hex(16) if key is None else key
        config = build_config(partner=partner, key=key,
                              merchant_public_key_pem=merchant_public_key_pem,
                              alipay_private_key_pem=alipay_private_key_pem)
        entries = [agreement_from_entry(dict(a), f"agreements[{i}]")
                   for i, a in enumerate(agreements)]
        state = EmulatorState(config, entries, parse_scenario(scenario or {}))
        thread = EmulatorThread(state).start()
        handle = EmulatorHandle(url=thread.url, admin=EmulatorAdmin(thread.base_url),
                                partner=partner, key=key, thread=thread)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> EmulatorHandle:
    """An in-process emulator with :data:`SAMPLE_AGREEMENTS` and a random MD5 key."""
    return emulator_factory()


class EmulatorProcessFactory(Protocol):
    def __call__(self, *, agreements: Sequence[Mapping[str, Any]] = ...,
                 scenario: Mapping[str, Any] | None = ...,
                 extra_args: Sequence[str] = ...) -> EmulatorHandle: ...


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[EmulatorProcessFactory]:
    """Start ``unsign-worker emulator`` subprocesses on free ports, ready before returned."""
    started: list[EmulatorHandle] = []

    def start(*, agreements: Sequence[Mapping[str, Any]] = SAMPLE_AGREEMENTS,
              scenario: Mapping[str, Any] | None = None,
              extra_args: Sequence[str] = ()) -> EmulatorHandle:
        n = len(started)
        key = secrets.token_hex(16)
        path = write_agreements_file(tmp_path / f"agreements-{n}.json", agreements)
        port = free_port()
        args = [str(VENV_CLI), "emulator", "--port", str(port), "--agreements", str(path)]
        if scenario is not None:
            scenario_path = tmp_path / f"scenario-{n}.json"
            scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
            args += ["--scenario", str(scenario_path)]
        env = dict(os.environ, ALIPAY_KEY=key, ALIPAY_PARTNER=TEST_PARTNER)
        log = tmp_path / f"emulator-{n}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([*args, *extra_args], env=env, cwd=tmp_path,
                                       stdout=out, stderr=subprocess.STDOUT)
        handle = EmulatorHandle(url=f"http://127.0.0.1:{port}/gateway.do",
                                admin=EmulatorAdmin(f"http://127.0.0.1:{port}",
                                                    timeout_seconds=2.0),
                                partner=TEST_PARTNER, key=key, process=process)
        started.append(handle)
        deadline = time.monotonic() + PROCESS_READY_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"emulator process exited with {process.returncode}: "
                            f"{log.read_text(errors='replace')}")
            try:
                handle.admin.health()
                return handle
            except EmulatorAdminError:
                if time.monotonic() > deadline:
                    pytest.fail(f"emulator process not ready after {PROCESS_READY_SECONDS}s")
            time.sleep(0.05)

    yield start
    for handle in started:
        handle.stop()
