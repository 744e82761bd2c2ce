"""``check-config --probe``: resolve the gateway through DNS and complete a TLS handshake.

Nothing is sent over the connection: the probe closes it right after the handshake, so it can
never cause an unsign. The certificate and host name are verified against the trust store the
gateway client uses: ``ALIPAY_CA_BUNDLE`` when set, else the public CAs of ``certifi`` (not the
operating system's store), so the probe passes exactly when the worker's handshake would.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from unsign_worker.ops.config_checks import Check, fail, ok
from unsign_worker.protocol.handshake import handshake, host_and_port
from unsign_worker.protocol.tls_errors import describe_tls_failure
from unsign_worker.settings import Settings


def probe_gateway(settings: Settings) -> list[Check]:
    """Resolve the gateway's host through DNS and complete a TLS handshake; send nothing."""
    host, port = host_and_port(settings.gateway_url)
    timeout = settings.connect_timeout_seconds
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return [fail("probe DNS", f"cannot resolve {host}: {exc}")]
    addresses = sorted({str(info[4][0]) for info in infos})
    checks = [ok("probe DNS", f"{host} resolves to {', '.join(addresses)}")]
    if urlsplit(settings.gateway_url).scheme != "https":
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            return checks + [fail("probe TCP", f"cannot connect to {host}:{port}: {exc}")]
        return checks + [ok("probe TCP", f"connected to {host}:{port} (plain http, sandbox); "
                                         "no request sent")]
    return checks + [_tls_handshake(settings.gateway_url, host, port, timeout,
                                     settings.ca_bundle)]


def _tls_handshake(url: str, host: str, port: int, timeout: float, ca_bundle: str | None
                   ) -> Check:
    name = "probe TLS"
    try:  # chain and host name, as the gateway client checks them
        version, cert = handshake(url, timeout_seconds=timeout, ca_bundle=ca_bundle)
    except ssl.SSLCertVerificationError as exc:
        return fail(name, f"the certificate of {host}:{port} does not verify: "
                          f"{describe_tls_failure(exc)} ({exc.verify_message or exc})"
                          + ("" if ca_bundle else " (set ALIPAY_CA_BUNDLE for a private CA)"))
    except ssl.SSLError as exc:
        return fail(name, f"no TLS handshake with {host}:{port}: "
                          f"{describe_tls_failure(exc, in_handshake=True)}")
    except OSError as exc:
        return fail(name, f"no TLS handshake with {host}:{port}: {exc}")
    trust = "ALIPAY_CA_BUNDLE" if ca_bundle else "the default trust store (certifi)"
    until = cert.get("notAfter", "?")
    return ok(name, f"handshake with {host}:{port} completed ({version}, certificate verified "
                    f"by {trust}, valid until {until}); no request sent")
