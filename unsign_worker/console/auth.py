"""Who may use the console: ``UNSIGN_CONSOLE_AUTH`` (``user:password``, several separated by
commas), checked with HTTP basic authentication in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from unsign_worker.protocol.exceptions import ConfigError

#: Shortest password accepted.
MIN_PASSWORD = 8
REALM = "unsign-worker console"


def parse_users(spec: str, *, variable: str = "UNSIGN_CONSOLE_AUTH",
                min_password: int = MIN_PASSWORD) -> dict[str, str]:
    """``"ops:pw1,lead:pw2"`` -> ``{"ops": "pw1", "lead": "pw2"}`` (the console's users, and
    Flower's ``FLOWER_BASIC_AUTH``).

    Raises ConfigError naming ``variable`` and the entry's position (never its password).
    """
    users: dict[str, str] = {}
    items = [p.strip() for p in spec.split(",") if p.strip()]
    for number, item in enumerate(items, start=1):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise ConfigError(f"{variable}: entry {number} must be user:password")
        if len(password) < min_password:
            raise ConfigError(f"{variable}: the password of {user!r} must have at "
                              f"least {min_password} characters")
        users[user] = password
    return users


def claimed(header: str | None) -> tuple[str, str] | None:
    """The (user, password) a basic ``Authorization`` header claims; None when there is no
    header; ``("", "")`` for one that is not valid basic credentials."""
    if not header:
        return None
    if not header.startswith("Basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


def check(header: str | None, users: dict[str, str]) -> str | None:
    """The user an ``Authorization`` header proves, or None. Every password is compared (in
    constant time) so the time taken does not say which users exist."""
    credentials = claimed(header)
    if not credentials or not credentials[0]:
        return None
    user, password = credentials
    found = None
    for name, expected in users.items():
        same_user = hmac.compare_digest(name.encode(), user.encode())
        same_password = hmac.compare_digest(expected.encode(), password.encode())
        if same_user and same_password:
            found = name
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
