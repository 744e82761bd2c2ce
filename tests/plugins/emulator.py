"""The one way a test runs the gateway emulator: :class:`Emulator`, over real HTTPS on 127.0.0.1
(``https://localhost:PORT``, the chain of :mod:`tests.plugins.pki`), as the real gateway only
speaks HTTPS; ``tls=False`` serves plain HTTP, the sandbox exception, for the tests of it.

In process (a background thread of the test, its :class:`EmulatorState` reachable as ``state``)
or as an ``unsign-worker emulator`` subprocess (``process=True``); stoppable and startable again
on the same port (a gateway outage); one API for both: ``admin``
(:class:`~unsign_worker.emulator.admin.EmulatorAdmin`), ``faults()``, ``script()``,
``unsigns()``/``requests()``, and ``signed()``/``send()`` to talk to it as a merchant would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from requests import Response, Session

from tests.plugins.pki import GATEWAY_HOST, gateway_pki, production_gateway_env
from tests.plugins.ports import free_port
from unsign_worker.emulator.admin import ADMIN_TIMEOUT_SECONDS, EmulatorAdmin, EmulatorAdminError
from unsign_worker.emulator.agreements import Agreement, agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.faults import FaultSettings
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.scenario import parse_scenario
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.protocol.signing import Signer, make_signer, sign_params

T = TypeVar("T")
PARTNER = "2088101568338364"
#: The tests' MD5 key: workers and clients of a test's emulator are configured with it.
KEY = "k3y0f32charsforthetestsuite00001"
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

AgreementLike = Agreement | Mapping[str, Any]


def cae(agreement_id: str, n: int, **extra: Any) -> Agreement:
    """A CAE agreement reachable by customer_code ``C<n>``."""
    return Agreement(id=agreement_id, customer_code=f"C{n:05d}", type_code="BUSI0031",
                     trans_account_out=f"2088{n:012d}0156", **extra)


def partner_protocol(agreement_id: str, n: int, **extra: Any) -> Agreement:
    """A sign_protocol_with_partner agreement (biz_type 10004 + user_email)."""
    return Agreement(id=agreement_id, biz_type="10004", user_email=f"user{n}@example.com",
                     user_id=f"2088{n:012d}", **extra)


def _entry(agreement: Agreement) -> dict[str, Any]:
    """An agreement as the agreements file writes it (non-empty fields only)."""
    entry = {k: v for k, v in dataclasses.asdict(agreement).items()
             if v and k != "unsigned_here"}
    if agreement.script:
        entry["script"] = list(agreement.script)
    return entry


def write_agreements_file(path: Path, agreements: Sequence[AgreementLike], *,
                          partner: str = PARTNER) -> Path:
    entries = [a if isinstance(a, Mapping) else _entry(a) for a in agreements]
    path.write_text(json.dumps({"partner": partner, "agreements": entries},
                               ensure_ascii=False), encoding="utf-8")
    return path


def _session() -> Session:
    session = Session()
    session.trust_env = False  # never through a proxy: 127.0.0.1 only
    return session


class Emulator:
    """A gateway emulator for one test: built stopped, :meth:`start` serves it."""

    def __init__(self, agreements: Sequence[AgreementLike] = SAMPLE_AGREEMENTS, *,
                 partner: str = PARTNER, key: str = KEY,
                 scenario: Mapping[str, Any] | None = None, port: int = 0,
                 merchant_public_key_pem: str | bytes = "",
                 alipay_private_key_pem: str | bytes = "",
                 state: EmulatorState | None = None, process: bool = False,
                 workdir: Path | None = None, extra_args: Sequence[str] = (),
                 tls: bool = True) -> None:
        self.partner = state.config.partner if state is not None else partner
        self.key = key  # with ``state``: the key its config was built with, if not KEY
        self.agreements = list(agreements)
        self.scenario = dict(scenario) if scenario is not None else None
        self.port = port or free_port()
        self.process_mode = process
        #: served over HTTPS with the tests' chain (True), or plain HTTP (the sandbox exception)
        self.tls = tls
        #: the CA file a client must trust to reach it (None over plain HTTP)
        self.ca_bundle = str(gateway_pki().ca_file) if tls else None
        self.workdir = workdir
        self.extra_args = list(extra_args)
        if state is None and not process:
            config = build_config(partner=partner, key=key,
                                  merchant_public_key_pem=merchant_public_key_pem,
                                  alipay_private_key_pem=alipay_private_key_pem)
            entries = [a if isinstance(a, Agreement) else
                       agreement_from_entry(dict(a), f"agreements[{i}]")
                       for i, a in enumerate(self.agreements)]
            state = EmulatorState(config, entries, parse_scenario(self.scenario or {}))
        #: The emulator's state (in process only): faults, scripts and stats to read directly.
        self.state = state
        self.thread: EmulatorThread | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.admin = EmulatorAdmin(self.base_url,
                                   timeout_seconds=2.0 if process else ADMIN_TIMEOUT_SECONDS,
                                   ca_bundle=self.ca_bundle)
        self.http = _session()
        if self.ca_bundle:
            self.http.verify = self.ca_bundle
        #: sign type -> the merchant's signer (a test may put another there)
        self.signers: dict[str, Signer] = {}

    def __repr__(self) -> str:
        return f"Emulator({self.url}, {'process' if self.process_mode else 'in process'})"

    def worker_env(self) -> dict[str, str]:
        """The environment a worker needs to reach this emulator: its URL and partner, and over
        TLS production settings (the allowed host, the CA); over plain HTTP sandbox mode."""
        env = {"ALIPAY_GATEWAY_URL": self.url, "ALIPAY_PARTNER": self.partner}
        env.update(production_gateway_env(self.url) or {"UNSIGN_SANDBOX": "1"})
        return env

    @property
    def base_url(self) -> str:
        if self.tls:
            return f"https://{GATEWAY_HOST}:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The gateway URL to configure a worker or client with."""
        return f"{self.base_url}/gateway.do"

    # -- running ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve on :attr:`port`; returns once it answers (again, after :meth:`stop`)."""
        if self.process_mode:
            self._spawn()
        else:
            assert self.state is not None
            context = gateway_pki().server_context() if self.tls else None
            self.thread = EmulatorThread(self.state, port=self.port, ssl_context=context).start()
        return self

    def _spawn(self) -> None:
        workdir = self.workdir or Path.cwd()
        stem = f"emulator-{self.port}"
        path = write_agreements_file(workdir / f"{stem}-agreements.json", self.agreements,
                                     partner=self.partner)
        args = [str(VENV_CLI), "emulator", "--port", str(self.port), "--agreements", str(path)]
        if self.tls:
            pki = gateway_pki()
            args += ["--tls-cert", str(pki.chain_file), "--tls-key", str(pki.key_file)]
        if self.scenario is not None:
            scenario_path = workdir / f"{stem}-scenario.json"
            scenario_path.write_text(json.dumps(self.scenario), encoding="utf-8")
            args += ["--scenario", str(scenario_path)]
        env = dict(os.environ, ALIPAY_KEY=self.key, ALIPAY_PARTNER=self.partner)
        log = workdir / f"{stem}.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen([*args, *self.extra_args], env=env, cwd=workdir,
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + PROCESS_READY_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"emulator process exited with {self.process.returncode}: "
                                   f"{log.read_text(errors='replace')}")
            try:
                self.admin.health()
                return
            except EmulatorAdminError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"emulator process not ready after {PROCESS_READY_SECONDS}s") from None
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving (idempotent); :meth:`start` serves again on the same port."""
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def close(self) -> None:
        """Stop and release the clients' connections."""
        self.stop()
        self.http.close()
        self.admin.close()

    # -- scenario, faults, stats: one API in process and as a process ----------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (safe access to :attr:`state`; in process only)."""
        assert self.state is not None, "an emulator process has no state here: use admin"
        return self.thread.call(fn) if self.thread is not None else fn()

    def stats(self) -> dict[str, Any]:
        """The counters, per agreement too (what ``GET /_emulator/stats`` answers)."""
        state = self.state
        if state is None:
            return self.admin.stats()
        return self.call(lambda: state.stats.snapshot(in_flight=state.in_flight))

    def clear(self) -> None:
        """Back to answering normally: no faults, no scripts left, options reset."""
        if self.state is not None:
            self.call(self.state.clear)
        else:
            self.admin.clear()

    def faults(self, **knobs: Any) -> None:
        """Replace the fault knobs (``latency_ms``, ``error_rate``, ...)."""
        if self.state is not None:
            self.state.faults = FaultSettings.from_mapping(knobs)
        else:
            self.admin.set_faults(**knobs)

    def script(self, agreement_id: str, steps: Sequence[str]) -> None:
        """The next answers for one agreement (``OK``, an error code, ``LOST_ANSWER``...)."""
        if self.state is not None:
            self.state.set_script(agreement_id, list(steps))
        else:
            self.admin.script(agreement_id, steps)

    def _counts(self, agreement_id: str) -> tuple[int, int]:
        if self.state is not None:
            counts = self.state.stats.counts(agreement_id)
            return counts.requests, counts.unsigns
        entry = self.admin.stats()["agreements"].get(agreement_id, {})
        return int(entry.get("requests", 0)), int(entry.get("unsigns", 0))

    def unsigns(self, agreement_id: str) -> int:
        """How many times the agreement was really unsigned."""
        return self._counts(agreement_id)[1]

    def requests(self, agreement_id: str) -> int:
        """How many requests named the agreement."""
        return self._counts(agreement_id)[0]

    # -- talking to it as a merchant -------------------------------------------------------

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
             charset: str | None = None, timeout_seconds: float = 10.0) -> Response:
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

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
