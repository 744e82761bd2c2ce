"""Real worker processes over TLS, as production runs: every pool the CLI offers reads its
answers over kept-alive TLS connections, the default worker starts without gevent's patch
warning, and each TLS fault (a cut answer, a certificate for another host, an expired one, an
untrusted CA, a server offering only TLS 1.0/1.1) ends as docs/worker.md says: never a success
without a verified answer, nothing lost, the audit naming the failure.

The gateway is the emulator in process, serving the tests' chain (tests/plugins/pki.py) or, for
the faults, certificates made here with trustme; workers run with production settings.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import trustme

from tests.plugins.emulator import KEY, PARTNER, Emulator, cae
from tests.plugins.pki import gateway_pki
from tests.plugins.worker_fixtures import BIN, wait_for

pytestmark = pytest.mark.slow
#: Jobs per batch in the pool tests.
BATCH = 24
#: Connections each worker process keeps towards the gateway in the pool tests.
POOL_SIZE = 4


def agreements(count: int, start: int = 1) -> list:
    return [cae(f"a{n}", n) for n in range(start, start + count)]


def params(count: int, start: int = 1) -> list[dict[str, str]]:
    return [{"customer_code": f"C{n:05d}"} for n in range(start, start + count)]


def connections(gw: Emulator) -> int:
    return int(gw.stats()["connections_opened"])


# --- every pool, over TLS ------------------------------------------------------------------

@pytest.mark.parametrize(("pool", "concurrency", "processes"), [
    ("gevent", 8, 1), ("threads", 8, 1), ("solo", 1, 1), ("prefork", 2, 2)])
def test_every_pool_reads_its_answers_over_kept_alive_tls_connections(
        emulator_factory, worker_env_factory, pool, concurrency, processes):
    # Given a TLS gateway and a worker of this pool with production settings
    gw = emulator_factory(agreements(2 * BATCH))
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_HTTP_POOL_SIZE=str(POOL_SIZE))
    env.start_worker("w1", pool=pool, concurrency=concurrency)

    # When a first batch runs, then a second one
    first = env.enqueue_many(params(BATCH))
    jobs = env.wait_terminal(first, timeout=180)
    opened = connections(gw)
    second = env.enqueue_many(params(BATCH, start=BATCH + 1))
    jobs.update(env.wait_terminal(second, timeout=180))

    # Then every job is unsigned by exactly one request, within the connection bound, and the
    # second batch reuses the first's connections: none reopened in steady state
    assert {j["state"] for j in jobs.values()} == {"unsigned"}, env.log_tail()
    stats = gw.stats()
    assert (stats["unsign_requests"], stats["unsigns"]) == (2 * BATCH, 2 * BATCH)
    assert 1 <= opened <= processes * POOL_SIZE
    assert connections(gw) == opened
    assert "MonkeyPatchWarning" not in env.log_tail(lines=100_000)


def test_the_default_worker_with_no_option_starts_without_a_patch_warning_and_unsigns_over_tls(
        emulator_factory, worker_env_factory):
    # Given a TLS gateway, and `unsign-worker worker` with no option at all (gevent, a process
    # per core, 100 slots each), as a new user starts it
    gw = emulator_factory(agreements(60))
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    log = env.tmp / "default-worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "unsign-worker"), "worker"], env=env.env,
                                cwd=env.tmp, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    env.procs.append(proc)
    cores = len(os.sched_getaffinity(0))
    names = {f"worker{i}@{socket.gethostname()}" for i in range(1, cores + 1)}
    wait_for(lambda: proc.poll() is not None or all(
        env.redis.zscore(env.keys.workers, name) is not None for name in names),
        timeout=120, what="the default workers to come up")
    assert proc.poll() is None, log.read_text(errors="replace")

    # When jobs arrive
    jobs = env.wait_terminal(env.enqueue_many(params(60)), timeout=180)

    # Then all are unsigned, one request each, within processes x 100 connections, and the
    # workers' output has no gevent patch warning
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert {j["state"] for j in jobs.values()} == {"unsigned"}, text[-3000:]
    assert gw.stats()["unsign_requests"] == 60
    assert connections(gw) <= len(names) * 100
    assert "MonkeyPatchWarning" not in text
    assert text.count("concurrency: 100 (gevent)") == len(names)


# --- TLS faults ----------------------------------------------------------------------------

def serving(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def legacy_only(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL 3 speak TLS 1.0/1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    cert.configure_cert(context)
    return context


#: fault -> (the server's TLS context, made with the CA that issues the tests' gateway
#: certificate, which the worker trusts; the words the audit must use)
FAULTS: dict[str, tuple[Callable[[trustme.CA], ssl.SSLContext], str]] = {
    "expired": (lambda ca: serving(ca.issue_cert("localhost", not_after=datetime(
        2020, 1, 1, tzinfo=UTC))), "the gateway's certificate has expired"),
    "other-host": (lambda ca: serving(ca.issue_cert("mapi.alipay.com")),
                   "the gateway's certificate is for another host name"),
    "untrusted-ca": (lambda ca: serving(trustme.CA().issue_cert("localhost")),
                     "the gateway's certificate is not signed by a trusted CA"),
    # (the emulator's asyncio server closes without an alert, as many outdated servers do)
    "tls-1.0-1.1-only": (lambda ca: legacy_only(ca.issue_cert("localhost")),
                         "only an outdated TLS version"),
}


def serve_with(gw: Emulator, context: ssl.SSLContext) -> None:
    """Restart the in-process emulator on its port with another TLS context."""
    gw.stop()
    from unsign_worker.emulator.runner import EmulatorThread

    assert gw.state is not None
    gw.thread = EmulatorThread(gw.state, port=gw.port, ssl_context=context).start()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_tls_fault_never_succeeds_loses_nothing_and_is_named_in_the_audit(
        emulator_factory, worker_env_factory, fault):
    make_context, words = FAULTS[fault]
    # Given a gateway whose TLS is broken in this way (the worker trusts the tests' CA)
    gw = emulator_factory(agreements(3))
    serve_with(gw, make_context(gateway_pki().issuer))
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1", pool="gevent")
    job_ids = env.enqueue_many(params(3))

    # When the worker tries: every attempt is refused before any byte of a request
    try:
        wait_for(lambda: len([a for a in env.audit() if words in a.get("reason", "")]) >= 3,
                 timeout=120, what=f"attempts audited with {words!r}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; reasons: {[a.get('reason') for a in env.audit()]}\n"
                             f"{env.log_tail()}") from None
    assert gw.stats()["requests"] == 0
    assert not {env.job(j).get("state") for j in job_ids} & {"unsigned", "already_unsigned"}

    # Then, once the gateway serves a good certificate again, every job ends unsigned, once
    serve_with(gw, gateway_pki().server_context())
    jobs = env.wait_terminal(job_ids, timeout=180)
    assert {j["state"] for j in jobs.values()} == {"unsigned"}, env.log_tail()
    assert [gw.unsigns(f"a{n}") for n in (1, 2, 3)] == [1, 1, 1]


def test_an_answer_cut_after_the_request_over_tls_is_settled_not_lost_nor_repeated(
        emulator_factory, worker_env_factory):
    # Given a TLS gateway that unsigns the agreement but cuts the connection before answering
    gw = emulator_factory([cae("a1", 1, script=("LOST_ANSWER",))])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1", pool="gevent")

    # When the default pool runs the job
    job_id = env.enqueue({"customer_code": "C00001"})
    job = env.wait_terminal([job_id], timeout=120)[job_id]

    # Then the same request is sent again, hears the agreement is unsigned, and the job ends
    # already_unsigned: one unsign, the cut audited as such
    assert job["state"] == "already_unsigned", job
    assert gw.unsigns("a1") == 1 and gw.requests("a1") == 2
    cut = [a for a in env.audit() if a["code"] == "NETWORK_ERROR"]
    assert cut and cut[0]["may_have_reached"] is True, env.audit()
    assert cut[0]["reason"].startswith(("connection broken while", "TLS failure: the connection "
                                        "was cut")), cut

