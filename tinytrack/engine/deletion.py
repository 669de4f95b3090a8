"""Deleting a site and everything recorded for it.

Every table with a ``site_id`` column is found in the database's own schema, so tables added by
later migrations (sessions, goals, aliases, ...) are covered without a list to keep in step; the
names come from ``sqlite_master`` only and are quoted. All in the one write transaction of the
caller: a site is gone completely or not at all.

Site ids are never reused: the largest deleted id is kept in ``meta`` and a new site takes the
next id above both it and every live one (see ``sites.INSERT_SITE``). A cache somewhere (another
process's site cache, the writer's unique-visitor sets, a client) may still name a deleted site
for a moment; it can then only miss, never land in a new site's data.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from tinytrack.engine import fold

TABLES: Final = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
    "AND name != 'sites' ORDER BY name"
)
COLUMNS: Final = "SELECT name FROM pragma_table_info(?)"
DELETE_SITE: Final = "DELETE FROM sites WHERE id = ?"
REMEMBER_ID: Final = (
    "INSERT INTO meta (key, value) VALUES ('deleted_site_id', ?) ON CONFLICT (key) "
    "DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"
)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def site_tables(raw: sqlite3.Connection) -> list[str]:
    """Every table that holds rows of a site (a ``site_id`` column), by name."""
    names = [str(row[0]) for row in raw.execute(TABLES)]
    return [n for n in names if any(c[0] == "site_id" for c in raw.execute(COLUMNS, (n,)))]


def delete_site(raw: sqlite3.Connection, site_id: int) -> dict[str, int]:
    """Delete the site's rows from every table, then the site; returns rows deleted per table.
    Runs inside the caller's transaction, after folding every hit into the rollups: the fold
    mark moves, so no fold computed before this delete can count the site's hits after it."""
    fold.fold_all(raw)
    deleted: dict[str, int] = {}
    for table in site_tables(raw):
        cur = raw.execute(f"DELETE FROM {quote(table)} WHERE site_id = ?", (site_id,))
        deleted[table] = max(cur.rowcount, 0)
    raw.execute(DELETE_SITE, (site_id,))
    raw.execute(REMEMBER_ID, (str(site_id),))
    return deleted
