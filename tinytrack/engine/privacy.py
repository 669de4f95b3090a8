"""Privacy hashing. See README "What tinytrack stores".

- ``unique_hash`` = BLAKE2b keyed with the salt of the hit's UTC day over (site, path, visitor
  identity). Salts are random, kept in the database and deleted once older than yesterday, so a
  hash cannot be recomputed or linked to another day's: unique hits reset daily at 00:00 UTC.
- ``visitor_hash`` = the same without the path (groups a visitor's page views into a journey).
  When the caller supplies a stable ``visitor_id`` it is keyed with the site's own secret instead,
  so the caller's identifier is never stored in clear.
- The visitor identity is the IP address and user agent of the request; the IP is used here and
  then forgotten: no column of any table holds it.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import Any

DIGEST_BYTES = 8  # 16 hex chars: collisions need ~4 billion visitors of one site in one day


@functools.lru_cache(maxsize=64)
def _keyed(key: bytes) -> Any:
    """A BLAKE2b state that has already absorbed ``key``: copying it is ~2.5x cheaper than
    keying a new one, and this runs twice for every hit (a handful of keys are ever live)."""
    return hashlib.blake2b(key=key[:64], digest_size=DIGEST_BYTES)


def _hash(key: bytes, *parts: str) -> str:
    state = _keyed(key).copy()
    state.update("\x00".join(parts).encode("utf-8", "surrogatepass"))
    return str(state.hexdigest())


def identity(ip_address: str | None, user_agent: str | None) -> str:
    """Anonymous request identity fed to the hashes; random when nothing identifies the caller
    (a server-side hit with no IP, user agent or visitor id counts as its own visitor)."""
    if not ip_address and not user_agent:
        return "r:" + secrets.token_hex(16)
    return f"a:{(ip_address or '').strip()}|{user_agent or ''}"


def unique_hash(salt: bytes, site_id: int, path: str, who: str) -> str:
    return _hash(salt, str(site_id), path, who)


def event_unique_hash(salt: bytes, site_id: int, name: str, who: str) -> str:
    # "\x01" keeps event hashes apart from page hashes of a path spelled like the name.
    return _hash(salt, str(site_id), "\x01" + name, who)


def visitor_hash(salt: bytes, site_id: int, who: str) -> str:
    return _hash(salt, str(site_id), who)


def stable_visitor_hash(site_secret: bytes, site_id: int, visitor_id: str) -> str:
    return _hash(site_secret, str(site_id), "v:" + visitor_id)


def new_salt() -> bytes:
    return secrets.token_bytes(32)
