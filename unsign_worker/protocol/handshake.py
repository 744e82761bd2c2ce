"""A handshake with the gateway that sends nothing: is the gateway reachable from here?

:func:`handshake` opens a TCP connection to the gateway's host and port and, for ``https``,
completes a TLS handshake verified as the gateway client verifies it (the trust store of
:func:`unsign_worker.protocol.gateway.trust_store`, the host name), then closes it. No request
is written, so it can never cause an unsign; it costs one connection. ``check-config --probe``
and a worker that lost the gateway (:mod:`unsign_worker.worker.reachability`) both use it.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from unsign_worker.protocol.gateway import trust_store


def verifying_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A client context that checks the chain against the gateway client's trust store and the
    host name."""
    store = trust_store(ca_bundle)
    if Path(store).is_dir():
        return ssl.create_default_context(capath=store)
    return ssl.create_default_context(cafile=store)


def host_and_port(gateway_url: str) -> tuple[str, int]:
    """The host and port a connection to ``gateway_url`` goes to."""
    parts = urlsplit(gateway_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def handshake(gateway_url: str, *, timeout_seconds: float, ca_bundle: str | None
              ) -> tuple[str, dict[str, object]]:
    """Connect to the gateway of ``gateway_url`` (and, for https, complete a verified TLS
    handshake), send nothing, close.

    Returns:
        the TLS version ("" for plain http) and the peer's certificate ({} for plain http).

    Raises:
        OSError: refused, unreachable, timeout (``ssl.SSLError`` and
            ``ssl.SSLCertVerificationError`` included: a handshake or certificate failure).
    """
    host, port = host_and_port(gateway_url)
    with socket.create_connection((host, port), timeout=timeout_seconds) as raw:
        if urlsplit(gateway_url).scheme != "https":
            return "", {}
        with verifying_context(ca_bundle).wrap_socket(raw, server_hostname=host) as tls:
            return tls.version() or "", dict(tls.getpeercert() or {})
