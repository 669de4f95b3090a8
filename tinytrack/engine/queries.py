"""Read queries over hits and rollups. SQL lives here as constants; filters are whitelisted
fragments and every value is a bound parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from tinytrack.engine import clock, pyramid, settled
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.rollups import dimension
from tinytrack.models import Hit, Pagination

HIT_COLUMNS = (
    "id, COALESCE(url, ? || path), path, referrer, country, browser_name, platform_name, "
    "is_mobile, source, created_at"
)
_FILTERS = {
    "country": "AND country = ?",
    "path": "AND path = ?",
    "referrer": "AND referrer LIKE ? ESCAPE '\\'",
    # Not an API filter (the seed has none); the dashboard filters by a clicked browser.
    "browser_name": "AND browser_name = ?",
}
RAW_WHERE = "WHERE site_id = ? AND created_at >= ? AND created_at < ? "
# Pieces of the grouped-rollup query, one per planned segment (see pyramid.plan). In local
# mode a local day (block) overlaps the UTC day (block) before and after it.
_DAYS_UTC = (
    "SELECT value, hits, uniques FROM hit_rollups WHERE site_id = ? AND dim = ? "
    "AND utc_day BETWEEN ? AND ?"
)
_DAYS_LOCAL = _DAYS_UTC + " AND local_day BETWEEN ? AND ?"
_BLOCKS_UTC = (
    "SELECT value, hits, uniques FROM hit_rollup_blocks WHERE site_id = ? "
    "AND dim = ? AND level = ? AND utc_block BETWEEN ? AND ?"
)
_BLOCKS_LOCAL = _BLOCKS_UTC + " AND local_block BETWEEN ? AND ?"
_GROUPED = (
    "SELECT value, SUM(hits) AS h, SUM(uniques) AS u, COUNT(*) OVER () FROM ({parts}) "
    "GROUP BY value ORDER BY h DESC, value LIMIT ? OFFSET ?"
)
_GROUP_COUNT = "SELECT COUNT(DISTINCT value) FROM ({parts})"
_GROUP_ALL = (
    "SELECT value, SUM(hits) AS h, SUM(uniques) FROM ({parts}) "
    "GROUP BY value ORDER BY h DESC, value"
)
_GROUP_LIVE = "SELECT value, SUM(hits), SUM(uniques) FROM ({parts}) GROUP BY value"


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def time_bounds(site: SiteInfo, start_day: int, end_day: int, mode: str) -> tuple[int, int]:
    """[start, end) in Unix seconds covering the inclusive day range in the chosen mode."""
    tz = site.timezone if mode == "user" else "UTC"
    return clock.local_midnight(tz, start_day), clock.local_midnight(tz, end_day + 1)


def filter_sql(filters: Mapping[str, str | None]) -> tuple[str, list[Any]]:
    sql, args = "", []
    for name, value in filters.items():
        if value is None:
            continue
        sql += _FILTERS[name] + " "
        args.append(like_pattern(value) if name == "referrer" else value)
    return sql, args


def pagination(page: int, per_page: int, total: int) -> Pagination:
    return Pagination(
        current_page=page,
        per_page=per_page,
        total_count=total,
        total_pages=math.ceil(total / per_page) if total else 0,
    )


async def raw_hits(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
) -> tuple[list[Hit], int]:
    extra, extra_args = filter_sql(filters)
    where_args = [site.id, *bounds, *extra_args]
    async with conn.execute("SELECT COUNT(*) FROM hits " + RAW_WHERE + extra, where_args) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    sql = (
        f"SELECT {HIT_COLUMNS} FROM hits "
        + RAW_WHERE
        + extra
        + "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    hits: list[Hit] = []
    async with conn.execute(
        sql, [site.base_url, *where_args, per_page, (page - 1) * per_page]
    ) as cur:
        async for r in cur:
            hits.append(
                Hit(
                    id=r[0],
                    url=r[1],
                    path=r[2],
                    referrer=r[3],
                    country=r[4],
                    browser_name=r[5],
                    platform_name=r[6],
                    is_mobile=bool(r[7]),
                    source=r[8],
                    created_at=clock.iso(r[9]),
                )
            )
    return hits, total


GroupRow = tuple[str, int, int]


async def grouped_from_raw(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
) -> tuple[list[GroupRow], int]:
    _code, column = dimension(group_by)
    extra, extra_args = filter_sql(filters)
    sql = (
        f"SELECT COALESCE({column}, '') AS value, COUNT(*) AS h, SUM(is_unique) AS u, "
        "COUNT(*) OVER () FROM hits "
        + RAW_WHERE
        + extra
        + "GROUP BY value ORDER BY h DESC, value LIMIT ? OFFSET ?"
    )
    args = [site.id, *bounds, *extra_args, per_page, (page - 1) * per_page]
    async with conn.execute(sql, args) as cur:
        rows = list(await cur.fetchall())
    if rows:
        return [(r[0], r[1], r[2]) for r in rows], int(rows[0][3])
    count_sql = f"SELECT COUNT(DISTINCT COALESCE({column}, '')) FROM hits " + RAW_WHERE + extra
    async with conn.execute(count_sql, [site.id, *bounds, *extra_args]) as cur:
        row = await cur.fetchone()
    return [], int(row[0]) if row else 0


async def grouped_from_raw_with_settled(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
    *,
    kept: settled.SettledTotals,
    complete_until: int,
) -> tuple[list[GroupRow], int]:
    """``grouped_from_raw`` with the hits before the watermark's UTC midnight grouped once and
    kept (see ``tinytrack.engine.settled``; a write to those hits bumps the same version):
    only the live hits are grouped per query. Same answer, same order."""
    lo, hi = bounds
    cut = complete_until * clock.SECONDS_PER_DAY
    if lo >= min(hi, cut):
        return await grouped_from_raw(conn, site, group_by, bounds, filters, page, per_page)
    _code, column = dimension(group_by)
    extra, extra_args = filter_sql(filters)
    shown = tuple(sorted((k, v) for k, v in filters.items() if v is not None))
    key: settled.Key = (site.id, f"raw:{column}", lo, min(hi, cut), shown)
    grouped = (
        f"SELECT COALESCE({column}, '') AS value, COUNT(*) AS h, SUM(is_unique) FROM hits "
        + RAW_WHERE
        + extra
        + "GROUP BY value"
    )
    settled_sql = (grouped + " ORDER BY h DESC, value", [site.id, lo, min(hi, cut), *extra_args])
    live_sql = (grouped, [site.id, max(lo, cut), hi, *extra_args]) if hi > cut else None
    return await _page_with_settled(conn, kept, key, settled_sql, live_sql, page, per_page)


async def _page_with_settled(
    conn: aiosqlite.Connection,
    kept: settled.SettledTotals,
    key: settled.Key,
    settled_sql: tuple[str, list[Any]],
    live_sql: tuple[str, list[Any]] | None,
    page: int,
    per_page: int,
) -> tuple[list[GroupRow], int]:
    """A page of the kept totals for ``key`` (grouped with ``settled_sql``, ordered, when not
    kept at the current version) merged with the live groups of ``live_sql``. One read
    transaction: the version, the settled rows (if built now) and the live rows come from the
    same snapshot, so a write committed between them cannot be half-seen."""
    live: dict[str, tuple[int, int]] = {}
    await conn.execute("BEGIN")
    try:
        async with conn.execute(settled.READ_VERSION) as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        totals = kept.get(key, version)
        if totals is None:
            async with conn.execute(*settled_sql) as cur:
                rows = await cur.fetchall()
            totals = settled.Totals.build(version, ((r[0], r[1], r[2]) for r in rows))
            kept.put(key, totals)
        if live_sql is not None:
            async with conn.execute(*live_sql) as cur:
                live = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    finally:
        await conn.execute("COMMIT")
    return totals.page(live, (page - 1) * per_page, per_page)


def _rollup_parts(
    site_id: int,
    code: int,
    segments: list[pyramid.Segment],
    local: bool,
    extra: tuple[str, list[Any]] | None = None,
) -> tuple[str, list[Any]]:
    """One SELECT per segment, joined by UNION ALL; ``extra`` = (condition, args) for each."""
    parts: list[str] = []
    args: list[Any] = []
    for level, first, last in segments:
        if level == 0:
            if local:
                parts.append(_DAYS_LOCAL)
                args += [site_id, code, first - 1, last + 1, first, last]
            else:
                parts.append(_DAYS_UTC)
                args += [site_id, code, first, last]
        elif local:
            parts.append(_BLOCKS_LOCAL)
            args += [site_id, code, level, first - 1, last + 1, first, last]
        else:
            parts.append(_BLOCKS_UTC)
            args += [site_id, code, level, first, last]
        if extra is not None:
            parts[-1] += extra[0]
            args += extra[1]
    return " UNION ALL ".join(parts), args


async def grouped_from_rollups(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str | int,
    segments: list[pyramid.Segment],
    local: bool,
    page: int,
    per_page: int,
    *,
    value_like: str | None = None,
    values: Sequence[str] | None = None,
) -> tuple[list[GroupRow], int]:
    """Grouped counts of one rollup dimension (a hits ``group_by`` name or a rollup code) over
    the planned segments; ``value_like`` keeps values containing that text (any case),
    ``values`` only those exact values."""
    code = dimension(group_by)[0] if isinstance(group_by, str) else group_by
    extra: tuple[str, list[Any]] | None = None
    if value_like is not None:
        extra = (" AND value LIKE ? ESCAPE '\\'", [like_pattern(value_like)])
    elif values is not None:
        # One placeholder per value: the count comes from the caller's list, never its text.
        extra = (f" AND value IN ({', '.join('?' * len(values))})", list(values))
    parts, args = _rollup_parts(site.id, code, segments, local, extra)
    sql = _GROUPED.format(parts=parts)
    async with conn.execute(sql, [*args, per_page, (page - 1) * per_page]) as cur:
        rows = list(await cur.fetchall())
    if rows:
        return [(r[0], r[1], r[2]) for r in rows], int(rows[0][3])
    async with conn.execute(_GROUP_COUNT.format(parts=parts), args) as cur:
        row = await cur.fetchone()
    return [], int(row[0]) if row else 0


async def grouped_with_settled(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    group_by: str | int,
    segments: list[pyramid.Segment],
    local: bool,
    page: int,
    per_page: int,
    *,
    kept: settled.SettledTotals,
    complete_until: int,
) -> tuple[list[GroupRow], int]:
    """``grouped_from_rollups`` without filters, with the settled part of the range grouped
    once and kept in ``kept`` (see ``tinytrack.engine.settled``): only the live days are
    grouped per query. Same answer, same order."""
    code = dimension(group_by)[0] if isinstance(group_by, str) else group_by
    old, new = settled.split(segments, complete_until, local=local)
    if not old:
        return await grouped_from_rollups(conn, site, code, segments, local, page, per_page)
    key: settled.Key = (site.id, code, local, tuple(old))
    parts, args = _rollup_parts(site.id, code, old, local)
    live_sql = None
    if new:
        live_parts, live_args = _rollup_parts(site.id, code, new, local)
        live_sql = (_GROUP_LIVE.format(parts=live_parts), live_args)
    return await _page_with_settled(
        conn, kept, key, (_GROUP_ALL.format(parts=parts), args), live_sql, page, per_page
    )


def shape_group(group_by: str, row: GroupRow, *, with_uniques: bool) -> dict[str, Any]:
    value, hits, uniques = row
    if group_by == "path":
        out: dict[str, Any] = {"path": value, "views": hits}
        if with_uniques:
            out["unique_views"] = uniques
        return out
    return {group_by: value if value != "" else None, "hit_count": hits}
