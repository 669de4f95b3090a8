"""Queries behind the embed script's widgets (hit counter, kudos buttons, countries). All-time
figures, read from the rollups and the kudos table, never from raw hits."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from tinytrack.engine import pyramid, queries, rollups
from tinytrack.engine.ingest import SiteInfo

# A page asks for every counter / kudos button it shows in one request; more would only serve
# someone enumerating a site.
MAX_PATHS = 50

SITE_TOTALS = (
    "SELECT COALESCE(SUM(hits), 0), COALESCE(SUM(uniques), 0) FROM hit_rollups "
    "WHERE site_id = ? AND dim = ?"
)
FIRST_DAY = "SELECT MIN(utc_day) FROM hit_rollups WHERE site_id = ? AND dim = ?"
KUDOS_BY_PATH = (
    "SELECT path, COUNT(*) FROM kudos WHERE site_id = ? AND path IN ({marks}) GROUP BY path"
)


async def site_totals(conn: aiosqlite.Connection, site_id: int) -> tuple[int, int]:
    async with conn.execute(SITE_TOTALS, (site_id, rollups.TOTAL)) as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def _all_time(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str,
    today: int,
    complete_until: int,
    *,
    values: Sequence[str] | None,
    limit: int,
) -> list[queries.GroupRow]:
    async with conn.execute(FIRST_DAY, (site.id, rollups.TOTAL)) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return []
    first = int(row[0])
    segments = pyramid.plan(first, max(today, first), complete_until, local=False)
    groups, _count = await queries.grouped_from_rollups(
        conn, site, group_by, segments, False, 1, limit, values=values
    )
    return groups


async def path_counts(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    paths: Sequence[str],
    today: int,
    complete_until: int,
) -> dict[str, tuple[int, int]]:
    """All-time (hits, unique hits) of each path; paths never hit are absent."""
    groups = await _all_time(
        conn, site, "path", today, complete_until, values=paths, limit=len(paths)
    )
    return {value: (hits, uniques) for value, hits, uniques in groups}


async def countries(
    conn: aiosqlite.Connection, site: SiteInfo, today: int, complete_until: int
) -> list[str]:
    groups = await _all_time(conn, site, "country", today, complete_until, values=None, limit=300)
    return sorted(value for value, hits, _u in groups if hits > 0 and value not in ("", "XX"))


async def kudos_counts(
    conn: aiosqlite.Connection, site_id: int, paths: Sequence[str]
) -> dict[str, int]:
    sql = KUDOS_BY_PATH.format(marks=", ".join("?" * len(paths)))
    async with conn.execute(sql, (site_id, *paths)) as cur:
        rows = await cur.fetchall()
    return {str(path): int(count) for path, count in rows}
