"""Traffic over time (the dashboard's chart): hits and unique hits per hour, day or month of the
site's own calendar, from the daily rollups when the question allows and from the raw rows
otherwise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

import aiosqlite

from tinytrack.engine import clock, queries, rollups
from tinytrack.engine.ingest import SiteInfo

Bucket = Literal["hour", "day", "month"]
Point = tuple[str, int, int]  # (bucket label, hits, unique hits)

# Daily rows of one rollup dimension (0 = the site total), by the site-local day. The UTC-day
# range is one day wider on each side: a local day spans at most two UTC days.
DAILY = (
    "SELECT local_day, SUM(hits), SUM(uniques) FROM hit_rollups "
    "WHERE site_id = ? AND dim = ? AND value = ? AND utc_day BETWEEN ? AND ? "
    "AND local_day BETWEEN ? AND ? GROUP BY local_day"
)
# Raw rows in 15-minute UTC slices: every real time zone offset is a multiple of 15 minutes, so
# each slice falls in exactly one local hour/day/month, mapped in Python (a few thousand rows).
SLICE = 900
RAW = (
    "SELECT created_at / 900, COUNT(*), SUM(is_unique) FROM hits "
    + queries.RAW_WHERE
    + "{filters}GROUP BY created_at / 900"
)
LAST_HIT = "SELECT MAX(created_at) FROM hits WHERE site_id = ?"
KUDOS_BY_PATH = (
    "SELECT path, COUNT(*) FROM kudos WHERE site_id = ? AND created_at >= ? AND created_at < ? "
    "GROUP BY path ORDER BY COUNT(*) DESC, path LIMIT ?"
)
# Filters that one rollup dimension can answer (exact values only).
ROLLUP_FILTERS = {"path", "country", "browser_name"}


def label(moment: dt.datetime, bucket: Bucket) -> str:
    if bucket == "hour":
        return moment.strftime("%Y-%m-%dT%H:00")
    if bucket == "day":
        return moment.date().isoformat()
    return moment.strftime("%Y-%m")


def labels(site: SiteInfo, start: int, end: int, bucket: Bucket) -> list[str]:
    """Every bucket label in [start, end), in order (empty buckets included)."""
    tz = clock.zone(site.timezone)
    out: list[str] = []
    moment = dt.datetime.fromtimestamp(start, tz)
    stop = dt.datetime.fromtimestamp(end, tz)
    while moment < stop:
        text = label(moment, bucket)
        if not out or out[-1] != text:
            out.append(text)
        moment += dt.timedelta(hours=1) if bucket == "hour" else dt.timedelta(days=1)
    return out


async def series(
    conn: aiosqlite.Connection,
    site: SiteInfo,
    start: int,
    end: int,
    bucket: Bucket,
    filters: Mapping[str, str | None],
) -> list[Point]:
    """Hits and unique hits per bucket of [start, end) (Unix seconds; day and month buckets
    need local midnights as bounds)."""
    given = {k: v for k, v in filters.items() if v is not None}
    totals: dict[str, list[int]] = {name: [0, 0] for name in labels(site, start, end, bucket)}
    if bucket != "hour" and len(given) <= 1 and set(given) <= ROLLUP_FILTERS:
        name, value = next(iter(given.items()), ("", ""))
        code = rollups.dimension(name)[0] if name else rollups.TOTAL
        tz = clock.zone(site.timezone)
        first = dt.datetime.fromtimestamp(start, tz).date()
        last = dt.datetime.fromtimestamp(end - 1, tz).date()
        a, b = clock.day_number(first), clock.day_number(last)
        async with conn.execute(DAILY, (site.id, code, value, a - 1, b + 1, a, b)) as cur:
            for day, hits, uniques in await cur.fetchall():
                moment = dt.datetime.combine(clock.day_from_number(int(day)), dt.time(), tz)
                slot = totals.setdefault(label(moment, bucket), [0, 0])
                slot[0] += int(hits)
                slot[1] += int(uniques)
    else:
        where, args = queries.filter_sql(given)
        sql = RAW.format(filters=where)
        tz = clock.zone(site.timezone)
        async with conn.execute(sql, [site.id, start, end, *args]) as cur:
            for piece, hits, uniques in await cur.fetchall():
                moment = dt.datetime.fromtimestamp(int(piece) * SLICE, tz)
                slot = totals.setdefault(label(moment, bucket), [0, 0])
                slot[0] += int(hits)
                slot[1] += int(uniques or 0)
    return [(name, hits, uniques) for name, (hits, uniques) in totals.items()]


async def last_hit(conn: aiosqlite.Connection, site_id: int) -> int | None:
    async with conn.execute(LAST_HIT, (site_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None


async def kudos_by_path(
    conn: aiosqlite.Connection, site_id: int, start: int, end: int, limit: int
) -> list[tuple[str, int]]:
    async with conn.execute(KUDOS_BY_PATH, (site_id, start, end, limit)) as cur:
        return [(str(path), int(n)) for path, n in await cur.fetchall()]
