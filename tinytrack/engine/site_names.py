"""How other tools' formats name a site, and the site's "secure tracking" switch.

A request names its site by whatever the old tool used: a number (Clicky ``site_id``, Web
Analyzer ``website_id``), a UUID (Tracify ``customer_site_id``) or a domain (Woopra
``project``/``host``). ``find`` tries, in order: an alias the owner gave the site (so existing
code keeps its old ids), the site's numeric id, its uid, and its domain (``www.`` or not).
"""

from __future__ import annotations

import aiosqlite

from tinytrack.engine import enrich
from tinytrack.errors import InvalidParameter

MAX_ALIAS = 200

INSERT_ALIAS = "INSERT INTO site_aliases (name, site_id, created_at) VALUES (?, ?, ?)"
DELETE_ALIAS = "DELETE FROM site_aliases WHERE name = ? AND site_id = ?"
ALIASES_OF = "SELECT name FROM site_aliases WHERE site_id = ? ORDER BY name"
SITE_OF_ALIAS = "SELECT site_id FROM site_aliases WHERE name = ?"
SITE_BY_ID = "SELECT id FROM sites WHERE id = ?"
SITE_BY_UID = "SELECT id FROM sites WHERE uid = ?"
SITE_URLS = "SELECT id, url FROM sites ORDER BY id"
SECURE_TRACKING = "SELECT secure_tracking FROM sites WHERE id = ?"
SET_SECURE_TRACKING = "UPDATE sites SET secure_tracking = ?, updated_at = ? WHERE id = ?"


def check_alias(name: str) -> str:
    text = name.strip()
    if not text:
        raise InvalidParameter("alias can't be blank")
    if len(text) > MAX_ALIAS or any(ord(c) < 32 for c in text):
        raise InvalidParameter(f"alias must be at most {MAX_ALIAS} printable characters")
    return text


async def find(conn: aiosqlite.Connection, name: str) -> int | None:
    """The id of the site ``name`` names, or None (see the module docstring for the order)."""
    text = name.strip()
    if not text or len(text) > 2048:
        return None
    for sql, arg in (
        (SITE_OF_ALIAS, text),
        (SITE_BY_ID, int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None),
        (SITE_BY_UID, text),
    ):
        if arg is None:
            continue
        async with conn.execute(sql, (arg,)) as cur:
            row = await cur.fetchone()
        if row is not None:
            return int(row[0])
    host = enrich.host_of(text if "://" in text else "//" + text).lower()
    if not host:
        return None
    async with conn.execute(SITE_URLS) as cur:
        for site_id, url in await cur.fetchall():
            if enrich.host_of(url).lower() == host:
                return int(site_id)
    return None
