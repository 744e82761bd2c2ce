"""CSRF protection for every state-changing request.

The browser holds a random nonce in a ``SameSite=Strict``, ``HttpOnly`` cookie; each form carries
``HMAC(secret, user + nonce)``. A POST is refused (403) unless its token matches the cookie and
the signed-in user, and unless its ``Origin`` (when sent) is this server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "uw_csrf"
FIELD = "csrf_token"


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def token_for(secret: bytes, user: str, nonce: str) -> str:
    return hmac.new(secret, f"{user}\x00{nonce}".encode(), hashlib.sha256).hexdigest()


def valid(secret: bytes, user: str, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token:
        return False
    return hmac.compare_digest(token_for(secret, user, nonce), token)
