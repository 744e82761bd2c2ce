"""A small synchronous client of the emulator's admin API, for tests, the demo and benchmarks.

    admin = EmulatorAdmin("http://127.0.0.1:8010")
    admin.wait_ready()
    admin.script("ag-000001", ["SYSTEM_ERROR", "OK"])
    admin.set_faults(latency_ms=50, jitter_ms=10)
    assert admin.stats()["duplicates"] == 0
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

ADMIN_PREFIX = "/_emulator"
#: Default timeout of one admin call, seconds.
ADMIN_TIMEOUT_SECONDS = 10.0


class EmulatorAdminError(Exception):
    """The admin API refused a call (bad knob, unknown agreement) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EmulatorAdmin:
    """Talks to ``<base_url>/_emulator/``; ``base_url`` may also be the gateway URL. Over
    HTTPS, ``ca_bundle`` is the CA file to trust (a sandbox PKI's ``ca.pem``) instead of the
    default trust store."""

    def __init__(self, base_url: str, *, timeout_seconds: float = ADMIN_TIMEOUT_SECONDS,
                 ca_bundle: str | None = None) -> None:
        parts = urlsplit(base_url)
        self.base_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._timeout = timeout_seconds
        self._session = requests.Session()
        self._session.trust_env = False  # never through a proxy: the emulator is local
        if ca_bundle:
            self._session.verify = str(ca_bundle)

    def __repr__(self) -> str:
        return f"EmulatorAdmin({self.base_url!r})"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, str] | None = None) -> Any:
        url = f"{self.base_url}{ADMIN_PREFIX}{path}"
        try:
            # every POST carries a JSON body: the API refuses other content types (403/415)
            payload = body if body is not None or method != "POST" else {}
            resp = self._session.request(method, url, json=payload, params=params,
                                         timeout=self._timeout)
        except requests.RequestException as exc:
            raise EmulatorAdminError(f"{method} {url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            try:
                message = resp.json().get("error", resp.text)
            except ValueError:
                message = resp.text
            raise EmulatorAdminError(f"{method} {url}: {resp.status_code} {message}",
                                     status=resp.status_code)
        return resp.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def wait_ready(self, timeout_seconds: float = 15.0, *, interval_seconds: float = 0.05
                   ) -> dict[str, Any]:
        """Poll ``/health`` until it answers. Raises: TimeoutError after ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                return self.health()
            except EmulatorAdminError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"emulator at {self.base_url} not ready after "
                                       f"{timeout_seconds:g}s") from None
            time.sleep(interval_seconds)

    def stats(self, *, per_agreement: bool = True) -> dict[str, Any]:
        """Counters (see :mod:`unsign_worker.emulator.stats`)."""
        result: dict[str, Any] = self._call(
            "GET", "/stats", params={"agreements": "1" if per_agreement else "0"})
        return result

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset")

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Change some fault knobs (``latency_ms=100``, ``global_code="ILLEGAL_SIGN"``, ...);
        returns every knob in force."""
        result: dict[str, Any] = self._call("POST", "/faults", knobs)
        return result

    def options(self) -> dict[str, Any]:
        """The answer options in force (signed errors, signed queries, charset)."""
        result: dict[str, Any] = self._call("GET", "/options")
        return result

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Change answer options (``sign_errors=True``, ``charset="gbk"``, ...); returns all."""
        result: dict[str, Any] = self._call("POST", "/options", options)
        return result

    def script(self, agreement_id: str, steps: Iterable[str]) -> list[str]:
        """Replace one agreement's script (``[]`` removes it)."""
        result = self._call("POST", "/scripts", {"agreement": agreement_id,
                                                 "steps": list(steps)})
        return list(result["steps"])

    def scripts(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = self._call("GET", "/scripts")
        return result

    def agreement(self, agreement_id: str) -> dict[str, Any]:
        """Status and counters of one agreement."""
        result: dict[str, Any] = self._call("GET", f"/agreements/{quote(agreement_id, safe='')}")
        return result

    def set_status(self, agreement_id: str, status: str) -> dict[str, Any]:
        """Sign (``"signed"``) or unsign an agreement by hand; not counted as an unsign."""
        result: dict[str, Any] = self._call("POST", f"/agreements/{quote(agreement_id, safe='')}",
                                            {"status": status})
        return result

    def load_agreements(self, data: dict[str, Any]) -> dict[str, Any]:
        """Load more agreements into the running emulator: ``data`` is the content of an
        agreements file (``{"partner": ..., "agreements": [...]}``), added all or none.
        Returns ``{"added": n, "agreements": total}``."""
        result: dict[str, Any] = self._call("POST", "/agreements", data)
        return result

    def clear(self) -> None:
        """No faults and no scripts from now on (agreements and stats kept)."""
        self._call("POST", "/clear")

    def reset(self) -> None:
        """Everything back to start-up: statuses, scripts, faults, counters."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._session.close()
