"""Hosts and URLs, pure: loopback and IP-literal tests, and URL passwords hidden."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from unsign_worker.protocol.masking import MASK


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_ip_literal(host: str) -> bool:
    """True for any host the resolver reads as an address without asking DNS: IPv4 and IPv6
    literals, and the numeric forms ``inet_aton`` accepts (``2130706433``, ``0x7f000001``,
    ``127.1``), with or without a trailing dot. Pure: nothing is looked up."""
    bare = host.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(bare)
    except OSError:
        return False
    return True


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``MASK`` (Redis URLs may carry one)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
