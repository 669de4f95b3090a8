"""Sites and API keys: SQL and row mapping."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import aiosqlite

from tinytrack.engine import clock, enrich
from tinytrack.engine.ingest import SiteInfo
from tinytrack.models import AccessType, ApiKey, Site

SITE_COLUMNS = (
    "s.id, s.uid, s.url, s.label, s.timezone, s.public, s.active, s.unique_hits, "
    "s.ignore_paths, s.secret, s.created_at, s.updated_at"
)
SELECT_SITES = f"""
SELECT {SITE_COLUMNS},
       COALESCE((SELECT SUM(hits) FROM hit_rollups r WHERE r.site_id = s.id AND r.dim = 0), 0),
       COALESCE((SELECT SUM(uniques) FROM hit_rollups r WHERE r.site_id = s.id AND r.dim = 0), 0),
       (SELECT COUNT(*) FROM kudos k WHERE k.site_id = s.id)
FROM sites s
"""
SELECT_SITE_INFO = f"SELECT {SITE_COLUMNS} FROM sites s WHERE s.id = ?"
SELECT_ID_BY_UID = "SELECT id FROM sites WHERE uid = ?"
# Columns a settings change may touch: identifiers in UPDATE come only from here.
UPDATABLE = ("label", "timezone", "public", "active", "unique_hits", "ignore_paths")


def update_site(site_id: int, changes: dict[str, object], now: int) -> tuple[str, list[object]]:
    """An UPDATE for whitelisted columns (ValueError on any other name)."""
    columns = [UPDATABLE[UPDATABLE.index(name)] for name in changes]
    assignments = ", ".join(f"{column} = ?" for column in columns)
    sql = f"UPDATE sites SET {assignments}, updated_at = ? WHERE id = ?"
    return sql, [*changes.values(), now, site_id]


# Ids are never reused: the next id is above every live one and every deleted one (deletion.py).
INSERT_SITE = """
INSERT INTO sites (id, uid, url, label, timezone, public, unique_hits, ignore_paths, secret,
                   created_at, updated_at)
VALUES (1 + MAX(COALESCE((SELECT MAX(id) FROM sites), 0),
                COALESCE((SELECT CAST(value AS INTEGER) FROM meta
                          WHERE key = 'deleted_site_id'), 0)),
        ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
KEY_COLUMNS = "id, name, access_type, prefix, created_at, last_used_at, revoked_at"
INSERT_KEY = """
INSERT INTO api_keys (name, access_type, prefix, token_hash, created_at) VALUES (?, ?, ?, ?, ?)
"""
SELECT_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"
SELECT_KEY_BY_HASH = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE token_hash = ?"
SELECT_KEY_BY_ID = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"
REVOKE_KEY = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
TOUCH_KEY = "UPDATE api_keys SET last_used_at = ? WHERE id = ?"

KEY_PREFIXES: dict[AccessType, str] = {"read_only": "tt-ro-", "full_access": "tt-fa-"}
PREFIX_LENGTH = 14  # "tt-fa-" + 8 random characters: enough to tell keys apart in a list


def new_uid() -> str:
    # Lowercase letters and digits only: the uid appears in embed URLs.
    return secrets.token_hex(5)


def new_token(access: AccessType) -> str:
    return KEY_PREFIXES[access] + secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    # The token has 192 random bits: a fast hash is enough (no password-style stretching).
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def site_info(row: Any) -> SiteInfo:
    return SiteInfo(
        id=row[0],
        uid=row[1],
        url=row[2],
        label=row[3],
        host=enrich.host_of(row[2]),
        timezone=row[4],
        active=bool(row[6]),
        unique_hits=bool(row[7]),
        ignore_paths=tuple(json.loads(row[8])),
        secret=bytes(row[9]),
    )


def site_record(row: Any) -> Site:
    return Site(
        id=row[0],
        uid=row[1],
        url=row[2],
        label=row[3],
        timezone=row[4],
        public=bool(row[5]),
        active=bool(row[6]),
        unique_hits=bool(row[7]),
        ignore_paths=list(json.loads(row[8])),
        lifetime_hits=int(row[12]),
        lifetime_unique_hits=int(row[13]),
        lifetime_kudos=int(row[14]),
        created_at=clock.iso(row[10]),
        updated_at=clock.iso(row[11]),
    )


def key_record(row: Any) -> ApiKey:
    return ApiKey(
        id=row[0],
        name=row[1],
        access_type=row[2],
        prefix=row[3],
        created_at=clock.iso(row[4]),
        last_used_at=clock.iso(row[5]) if row[5] is not None else None,
        revoked_at=clock.iso(row[6]) if row[6] is not None else None,
    )


async def fetch_sites(conn: aiosqlite.Connection, site_id: int | None = None) -> list[Site]:
    sql = SELECT_SITES
    args: tuple[int, ...] = ()
    if site_id is not None:
        sql, args = SELECT_SITES + " WHERE s.id = ?", (site_id,)
    async with conn.execute(sql + " ORDER BY s.id", args) as cur:
        return [site_record(row) for row in await cur.fetchall()]
