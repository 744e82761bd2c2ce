"""The benchmarks' transports: HTTPS to the emulator by default (the real gateway is HTTPS
only), plain HTTP as the exception (``--transport http``), or both in the same rounds.

- :func:`transports`: the ``--transport`` choice as the transports to run, TLS first;
- :func:`start_emulators`: one emulator per transport (its own process, 127.0.0.1), the HTTPS
  one serving a sandbox PKI made once per benchmark run in its temporary directory;
- :func:`gateway_env`: how a worker reaches the gateway: over TLS with the production settings
  (no ``UNSIGN_SANDBOX``; an ``https://localhost`` URL named in
  ``ALIPAY_GATEWAY_ALLOWED_HOSTS``; the sandbox CA as ``ALIPAY_CA_BUNDLE``), over plain HTTP
  in sandbox mode (the only mode that allows it);
- :func:`gateway_counters`: the emulator's counters after a run, with the connections the
  workers (or clients) opened, the benchmark's own admin call left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_support import Processes, start_emulator

from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.tls import make_sandbox_pki

#: ``--transport`` choices; ``both`` runs TLS beside plain HTTP, interleaved in each round.
TRANSPORT_CHOICES = ("tls", "http", "both")
#: The emulator counters kept in a run's figures.
COUNTERS = ("requests", "unsigns", "duplicates", "after_success", "bad_signatures",
            "max_in_flight", "answers", "connections_opened")


def transports(choice: str) -> tuple[str, ...]:
    """``tls`` -> (tls,), ``http`` -> (http,), ``both`` -> (tls, http)."""
    if choice not in TRANSPORT_CHOICES:
        raise ValueError(f"--transport: {choice!r} is not one of {', '.join(TRANSPORT_CHOICES)}")
    return ("tls", "http") if choice == "both" else (choice,)


@dataclass(frozen=True)
class Gateway:
    """One emulator: its gateway URL, admin client, pid, and the CA file to trust ("" over
    plain HTTP)."""

    transport: str
    url: str
    admin: EmulatorAdmin
    pid: int
    ca_file: str = ""


def start_emulators(procs: Processes, wanted: tuple[str, ...], *, tmp: Path,
                    agreements: Path, scenario: Path, partner: str, key: str
                    ) -> dict[str, Gateway]:
    """An emulator per transport in ``wanted``; the sandbox PKI is made in ``tmp/pki``."""
    pki = make_sandbox_pki(tmp / "pki") if "tls" in wanted else None
    out = {}
    for transport in wanted:
        tls = pki if transport == "tls" else None
        url, admin, pid = start_emulator(procs, agreements=agreements, scenario=scenario,
                                         partner=partner, key=key, cwd=tmp, tls=tls,
                                         name=f"emulator-{transport}")
        out[transport] = Gateway(transport, url, admin, pid,
                                 str(tls.ca_file) if tls is not None else "")
    return out


def gateway_env(transport: str, url: str, ca_file: str) -> dict[str, str]:
    """The worker's gateway settings: production over TLS, sandbox mode over plain HTTP."""
    if transport == "tls":
        return {"ALIPAY_GATEWAY_URL": url, "ALIPAY_GATEWAY_ALLOWED_HOSTS": "localhost",
                "ALIPAY_CA_BUNDLE": ca_file}
    return {"ALIPAY_GATEWAY_URL": url, "UNSIGN_SANDBOX": "1"}


def gateway_counters(url: str, ca_file: str) -> dict[str, Any]:
    """The emulator's counters, read through a new admin connection (one connection, counted
    by the emulator before it answers, and taken off ``connections_opened`` here: what is left
    is what the run's processes opened since the last reset)."""
    admin = EmulatorAdmin(url, ca_bundle=ca_file or None)
    try:
        stats = admin.stats(per_agreement=False)
    finally:
        admin.close()
    counters = {k: stats.get(k) for k in COUNTERS}
    if counters["connections_opened"] is not None:
        counters["connections_opened"] = max(0, int(counters["connections_opened"]) - 1)
    return counters


def gateway_use(counters: dict[str, Any], jobs: int) -> dict[str, float | None]:
    """Connections opened per 1,000 jobs and gateway requests per job."""
    if jobs <= 0:
        return {"connections_per_1000_jobs": None, "requests_per_job": None}
    connections, requests = counters.get("connections_opened"), counters.get("requests")
    return {"connections_per_1000_jobs": None if connections is None
            else round(1000 * connections / jobs, 2),
            "requests_per_job": None if requests is None else round(requests / jobs, 4)}
