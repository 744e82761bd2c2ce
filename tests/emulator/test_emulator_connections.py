"""``connections_opened``: the emulator counts the TCP connections it accepts, not the requests,
over plain HTTP and HTTPS alike, so a test can see whether a client keeps its connections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.plugins.emulator import KEY, PARTNER, SAMPLE_AGREEMENTS
from unsign_worker.emulator.agreements import agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.tls import make_sandbox_pki, server_ssl_context
from unsign_worker.protocol.signing import Md5Signer, sign_params

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Served:
    """An emulator in a thread and how a client reaches it (``verify``: the CA over HTTPS)."""

    def __init__(self, thread: EmulatorThread, verify: str | bool) -> None:
        self.thread = thread
        self.verify = verify

    def session(self) -> requests.Session:
        client = requests.Session()
        client.trust_env = False
        client.verify = self.verify
        return client

    def unsign(self, client: requests.Session) -> None:
        params = sign_params({"service": "customer_unsign", "partner": PARTNER,
                              "_input_charset": "utf-8", "customer_code": "C00000000001"},
                             Md5Signer(KEY), "utf-8")
        resp = client.post(f"{self.thread.url}?_input_charset=utf-8", data=urlencode(params),
                           headers=FORM, timeout=10)
        assert resp.status_code == 200

    def count(self, name: str) -> int:
        """A counter read on the server's loop (no connection of its own)."""
        state = self.thread.state
        return int(self.thread.call(lambda: getattr(state.stats, name)))


@pytest.fixture(params=["http", "https"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    agreements = [agreement_from_entry(dict(entry), f"agreements[{i}]")
                  for i, entry in enumerate(SAMPLE_AGREEMENTS)]
    state = EmulatorState(build_config(partner=PARTNER, key=KEY), agreements)
    verify: str | bool = True
    context = None
    if request.param == "https":
        pki = make_sandbox_pki(tmp_path / "tls")
        context = server_ssl_context(pki.cert_file, pki.key_file)
        verify = str(pki.ca_file)
    with EmulatorThread(state, ssl_context=context) as thread:
        yield Served(thread, verify)


def test_five_requests_over_one_kept_alive_session_open_one_connection(served):
    with served.session() as client:
        for _ in range(5):
            served.unsign(client)
    assert served.count("requests") == 5
    assert served.count("connections_opened") == 1


def test_five_sessions_open_five_connections(served):
    for _ in range(5):
        with served.session() as client:
            served.unsign(client)
    assert served.count("requests") == 5
    assert served.count("connections_opened") == 5


def test_a_dropped_connection_makes_the_client_open_another(served):
    served.thread.call(lambda: served.thread.state.set_script("cae-1", ["LOST_ANSWER"]))
    with served.session() as client:
        with pytest.raises(requests.ConnectionError):
            served.unsign(client)
        served.unsign(client)
    assert served.count("connections_opened") == 2


def test_admin_requests_count_too_and_the_counter_is_in_the_stats_and_zeroed_by_resets(served):
    with served.session() as client:
        stats_url = f"{served.thread.admin_url}/stats"
        # the admin API is served on the same connections as the gateway
        served.unsign(client)
        assert client.get(stats_url, timeout=10).json()["connections_opened"] == 1
        # zeroed by a reset of the counters, and by a reset of everything
        assert client.post(f"{served.thread.admin_url}/stats/reset", json={},
                           timeout=10).status_code == 200
        assert client.get(stats_url, timeout=10).json()["connections_opened"] == 0
    with served.session() as client:
        assert client.get(stats_url, timeout=10).json()["connections_opened"] == 1
        client.post(f"{served.thread.admin_url}/reset", json={}, timeout=10)
        assert client.get(stats_url, timeout=10).json()["connections_opened"] == 0


def test_a_connection_whose_handshake_fails_was_still_accepted(tmp_path):
    pki = make_sandbox_pki(tmp_path / "tls")
    agreements = [agreement_from_entry(dict(SAMPLE_AGREEMENTS[0]), "agreements[0]")]
    state = EmulatorState(build_config(partner=PARTNER, key=KEY), agreements)
    context = server_ssl_context(pki.cert_file, pki.key_file)
    with EmulatorThread(state, ssl_context=context) as thread:
        # a client that does not trust the sandbox root gives up during the handshake
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{thread.admin_url}/health", timeout=10)
        assert thread.call(lambda: state.stats.connections_opened) == 1
        assert thread.call(lambda: state.stats.requests) == 0
