"""The HTTP ceiling: the campaign's unsign requests sent straight to the gateway, no queue.

Started by benchmarks/campaign.py as its own process, like a worker. ``--concurrency`` threads
(or greenlets with ``--pool gevent``, monkey-patched before anything else is imported) share one
:class:`unsign_worker.protocol.gateway.GatewayClient` (the worker's own ``requests`` client, so the
ceiling and the product send requests the same way and the ratio between them measures
everything else) whose connection pool is as large as the concurrency; each takes the next
job, signs it with MD5 exactly as the worker does
(:func:`unsign_worker.protocol.signing.sign_params` over
:func:`unsign_worker.protocol.params.build_params`), posts it, and checks that the answer is a
success. ``--client session`` posts with a plain ``requests.Session.post`` instead (a session
whose connection pool is as large as the concurrency): what an application written in an
afternoon would do, the ceiling of the defaults target. Either client keeps its connections
alive and reuses them; over HTTPS (an ``https://`` ``--url``) it trusts ``--ca-file`` (the
sandbox PKI's ``ca.pem``) and verifies the certificate and host name as the worker does.
Writes ``{"start", "end", "ok", "failed", "cpu_s", "latencies_ms"}`` as JSON to ``--out``
(``cpu_s``: CPU seconds of the whole process, set-up included).

The key comes from ``ALIPAY_KEY`` (never from the command line).

    python benchmarks/ceiling_client.py --url URL --partner P --jobs-file F --out O \
        [--concurrency 100] [--pool threads|gevent] [--client worker|session] [--timeout-s 600]
        [--ca-file CA.pem]
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "gevent" in sys.argv:  # before ssl, socket, threading
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
import requests.adapters  # noqa: E402

from unsign_worker.protocol.exceptions import UnsignError  # noqa: E402
from unsign_worker.protocol.gateway import GatewayClient  # noqa: E402
from unsign_worker.protocol.params import UnsignRequest, build_params  # noqa: E402
from unsign_worker.protocol.signing import make_signer, sign_params  # noqa: E402

CHARSET = "utf-8"
#: Connect and read timeouts of each request, seconds.
TIMEOUT_SECONDS = (5.0, 15.0)


def session_post(url: str, concurrency: int, ca_file: str | None = None
                 ) -> Callable[[dict[str, str]], bytes]:
    """A plain ``requests.Session.post`` of the signed form, pool as large as the concurrency,
    trusting ``ca_file`` over HTTPS (given on each call: a REQUESTS_CA_BUNDLE in the environment
    would otherwise win over ``session.verify``)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=concurrency)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    verify: str | bool = ca_file or True
    return lambda signed: session.post(url, data=signed, timeout=TIMEOUT_SECONDS,
                                       verify=verify).content


def run(url: str, partner: str, key: str, jobs: list[dict[str, str]], concurrency: int,
        deadline: float, kind: str = "worker", ca_file: str | None = None) -> dict[str, Any]:
    signer = make_signer("MD5", key=key)
    if kind == "session":
        post = session_post(url, concurrency, ca_file)
    else:
        client = GatewayClient(gateway_url=url, connect_timeout_seconds=TIMEOUT_SECONDS[0],
                               read_timeout_seconds=TIMEOUT_SECONDS[1], pool_size=concurrency,
                               max_response_bytes=64 * 1024, ca_bundle=ca_file)

        def post(signed: dict[str, str]) -> bytes:
            return client.post(signed, charset=CHARSET).body
    pending = iter(jobs)
    lock = threading.Lock()
    latencies: list[float] = []
    failed = [0]

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                params = next(pending, None)
            if params is None:
                return
            started = time.perf_counter()
            signed = sign_params(build_params(UnsignRequest.from_mapping(params),
                                              partner=partner, charset=CHARSET),
                                 signer, CHARSET)
            try:
                good = b"<is_success>T</is_success>" in post(signed)
            except (UnsignError, requests.RequestException):
                good = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(round(elapsed, 2))
                failed[0] += 0 if good else 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1)
    end = time.time()
    return {"start": start, "end": end, "ok": len(latencies) - failed[0], "failed": failed[0],
            "cpu_s": time.process_time(), "latencies_ms": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--partner", required=True)
    parser.add_argument("--jobs-file", required=True, help="JSON list of business parameters")
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--pool", choices=("threads", "gevent"), default="threads")
    parser.add_argument("--client", choices=("worker", "session"), default="worker",
                        help="the worker's GatewayClient, or a plain requests.Session.post")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--ca-file", default=None,
                        help="over HTTPS, the CA certificate to trust (the sandbox's ca.pem)")
    args = parser.parse_args()
    with open(args.jobs_file, encoding="utf-8") as handle:
        jobs = json.load(handle)
    result = run(args.url, args.partner, os.environ.get("ALIPAY_KEY", ""), jobs,
                 args.concurrency, time.monotonic() + args.timeout_s, args.client,
                 args.ca_file)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
