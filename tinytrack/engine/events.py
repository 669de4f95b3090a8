"""Read queries over events: raw listings and grouped counts (rollups when unfiltered, raw rows
when filtered), mirroring the hits queries. Column names come only from whitelists."""

from __future__ import annotations

from typing import Any

import aiosqlite
import msgspec

from tinytrack.engine import clock, pyramid, queries
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.rollups import event_dimension
from tinytrack.models import Event

EVENT_COLUMNS = (
    "id, name, value, url, path, referrer, country, browser_name, platform_name, is_mobile, "
    "source, properties, revenue_micros, currency, order_id, created_at"
)
_FILTERS = {
    "event": "AND name = ?",
    "value": "AND value = ?",
    "path": "AND path = ?",
}
WHERE = "WHERE site_id = ? AND created_at >= ? AND created_at < ? "
MICROS = 1_000_000


def _filters(filters: dict[str, str | None]) -> tuple[str, list[Any]]:
    sql, args = "", []
    for name, value in filters.items():
        if value is not None:
            sql += _FILTERS[name] + " "
            args.append(value)
    return sql, args


def event_url(site: SiteInfo, url: str | None, path: str | None) -> str | None:
    """The stored URL, or the site's URL + path when only a path was given (as the seed says)."""
    if url is not None:
        return url
    return site.base_url + path if path is not None else None


def _event(site: SiteInfo, r: Any) -> Event:
    return Event(
        id=r[0],
        event=r[1],
        value=r[2],
        url=event_url(site, r[3], r[4]),
        path=r[4],
        referrer=r[5],
        country=r[6],
        browser_name=r[7],
        platform_name=r[8],
        is_mobile=bool(r[9]),
        source=r[10],
        properties=msgspec.json.decode(r[11]) if r[11] else None,
        revenue=r[12] / MICROS if r[12] is not None else None,
        currency=r[13],
        order_id=r[14],
        created_at=clock.iso(r[15]),
    )


async def raw_events(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
) -> tuple[list[Event], int]:
    extra, extra_args = _filters(filters)
    where_args = [site.id, *bounds, *extra_args]
    async with conn.execute("SELECT COUNT(*) FROM events " + WHERE + extra, where_args) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events "
        + WHERE
        + extra
        + "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    async with conn.execute(sql, [*where_args, per_page, (page - 1) * per_page]) as cur:
        rows = await cur.fetchall()
    return [_event(site, r) for r in rows], total


async def grouped_from_raw(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
) -> tuple[list[queries.GroupRow], int]:
    _code, column = event_dimension(group_by)
    extra, extra_args = _filters(filters)
    where_args = [site.id, *bounds, *extra_args]
    sql = (
        f"SELECT COALESCE({column}, '') AS v, COUNT(*) AS n, SUM(is_unique), "
        "COUNT(*) OVER () FROM events "
        + WHERE
        + extra
        + "GROUP BY v ORDER BY n DESC, v LIMIT ? OFFSET ?"
    )
    async with conn.execute(sql, [*where_args, per_page, (page - 1) * per_page]) as cur:
        rows = list(await cur.fetchall())
    if rows:
        return [(r[0], r[1], r[2]) for r in rows], int(rows[0][3])
    count_sql = f"SELECT COUNT(DISTINCT COALESCE({column}, '')) FROM events " + WHERE + extra
    async with conn.execute(count_sql, where_args) as cur:
        row = await cur.fetchone()
    return [], int(row[0]) if row else 0


async def grouped_from_rollups(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str,
    segments: list[pyramid.Segment],
    local: bool,
    page: int,
    per_page: int,
) -> tuple[list[queries.GroupRow], int]:
    code, _column = event_dimension(group_by)
    return await queries.grouped_from_rollups(conn, site, code, segments, local, page, per_page)


def shape_group(group_by: str, row: queries.GroupRow, *, with_uniques: bool) -> dict[str, Any]:
    value, count, uniques = row
    out: dict[str, Any] = {group_by: value if value != "" else None, "event_count": count}
    if with_uniques:
        out["unique_count"] = uniques
    return out
