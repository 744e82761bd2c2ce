"""Is an address loopback? (the bind check and the admin API's client check). Does the name
``localhost`` reach it? (the host an HTTPS URL names).

Written here rather than shared with the worker: the emulator depends on nothing of it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(host: str) -> Address | str | None:
    """``"localhost"``, the IP address ``host`` names (brackets and a zone dropped), or None."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return name
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without brackets), and for an
    IPv4 loopback address mapped into IPv6 (``::ffff:127.0.0.1``)."""
    address = _parse(host)
    if address is None or address == "localhost":
        return address is not None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def reached_by_localhost(host: str) -> bool:
    """True for ``localhost`` and for an address the name ``localhost`` resolves to here (so a
    server bound there is reached as ``localhost``)."""
    address = _parse(host)
    if address is None or address == "localhost":
        return address is not None
    return address in _localhost_addresses()


@functools.cache
def _localhost_addresses() -> frozenset[Address]:
    """What ``localhost`` resolves to (``/etc/hosts``; resolved once); empty if it does not."""
    try:
        found = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset()
    return frozenset(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found)
