"""Visitor properties: what another tool's format says about a visitor (Woopra ``cv_*``, Clicky
``custom[...]``), one row per site, visitor hash and key. The visitor is only ever named by its
hash; a value is kept as JSON (string, number or boolean) and ``None`` removes the key."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite
import msgspec

from tinytrack.errors import ValidationFailed

MAX_KEYS = 100  # per visitor: a public endpoint must not let one visitor grow without bound
TOO_MANY = f"A visitor has at most {MAX_KEYS} properties"

UPSERT = """
INSERT INTO visitor_properties (site_id, visitor_hash, key, value, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (site_id, visitor_hash, key)
DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""
DELETE = "DELETE FROM visitor_properties WHERE site_id = ? AND visitor_hash = ? AND key = ?"
KEYS_OF = "SELECT key FROM visitor_properties WHERE site_id = ? AND visitor_hash = ?"
OF_VISITOR = """
SELECT key, value FROM visitor_properties WHERE site_id = ? AND visitor_hash = ? ORDER BY key
"""


def set_properties(
    conn: sqlite3.Connection,
    site_id: int,
    visitor_hash: str,
    properties: Mapping[str, Any],
    now: int | None = None,
) -> None:
    """Upsert (or, for ``None``, remove) each property inside the caller's write transaction;
    ``ValidationFailed`` (the caller's transaction then rolls back) past ``MAX_KEYS``."""
    stamp = int(time.time()) if now is None else now
    keys = {row[0] for row in conn.execute(KEYS_OF, (site_id, visitor_hash))}
    for key, value in properties.items():
        if value is None:
            conn.execute(DELETE, (site_id, visitor_hash, key))
            keys.discard(key)
            continue
        keys.add(key)
        if len(keys) > MAX_KEYS:
            raise ValidationFailed([TOO_MANY])
        conn.execute(UPSERT, (site_id, visitor_hash, key, _encode(value), stamp))


def _encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _decode(rows: Iterable[Any]) -> dict[str, Any]:
    return {key: msgspec.json.decode(value) for key, value in rows}


def properties_of(conn: sqlite3.Connection, site_id: int, visitor_hash: str) -> dict[str, Any]:
    return _decode(conn.execute(OF_VISITOR, (site_id, visitor_hash)).fetchall())


async def fetch_properties(
    conn: aiosqlite.Connection, site_id: int, visitor_hash: str
) -> dict[str, Any]:
    async with conn.execute(OF_VISITOR, (site_id, visitor_hash)) as cur:
        return _decode(await cur.fetchall())
