"""The instance owner's dashboard login: a password stored as a slow hash (scrypt), and the
secret that signs session cookies. Both live in the meta table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import aiosqlite

GET = "SELECT value FROM meta WHERE key = ?"
PUT = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
PASSWORD_KEY = "owner_password"  # noqa: S105 (a meta row name, not a password)
SECRET_KEY = "dashboard_secret"  # noqa: S105 (a meta row name)
MIN_LENGTH = 8
# scrypt with n=2**15, r=8, p=1: ~32 MiB and ~0.1 s per try here; what OWASP suggests.
N, R, P = 2**15, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 * 2**20)
    encode = base64.b64encode
    return f"scrypt${N}${R}${P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 2**20,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


async def get(conn: aiosqlite.Connection, key: str) -> str | None:
    async with conn.execute(GET, (key,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None
