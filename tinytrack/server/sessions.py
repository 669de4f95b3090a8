"""Dashboard sessions: a signed cookie, no server-side table.

The cookie holds an expiry and a random nonce, signed with HMAC-SHA256 under the secret the
engine keeps beside the owner's password hash (``Engine.session_secret``). Setting a new password
replaces that secret, which ends every session. Forms carry a CSRF token derived from the
session's nonce, so a page on another site cannot post on the owner's behalf (SameSite=Lax
already keeps the cookie off cross-site POSTs; the token is the second lock)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "tinytrack_session"
LIFETIME = 14 * 86400


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int

    def csrf(self, secret: bytes) -> str:
        return _sign(secret, "csrf." + self.nonce)


def _sign(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def new_cookie(secret: bytes, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + LIFETIME
    body = f"{expires}.{secrets.token_urlsafe(16)}"
    return f"{body}.{_sign(secret, body)}"


def read_cookie(
    secret: bytes | None, value: str | None, now: float | None = None
) -> Session | None:
    """The session in a cookie value, or None when absent, forged, tampered with or expired."""
    if not secret or not value or len(value) > 200:
        return None
    body, _, signature = value.rpartition(".")
    expires_text, _, nonce = body.partition(".")
    if not hmac.compare_digest(_sign(secret, body), signature) or not expires_text.isdigit():
        return None
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return None
    return Session(nonce=nonce, expires=expires)


def check_csrf(secret: bytes | None, session: Session | None, token: str | None) -> bool:
    if not secret or session is None or not token:
        return False
    return hmac.compare_digest(session.csrf(secret), token)
