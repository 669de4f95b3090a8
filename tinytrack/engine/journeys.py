"""User journeys (``GET /sites/{id}/user_journeys``): the pages each visitor viewed, in order.

Definition (also in the README):

- A journey is every hit of one site with the same ``visitor_hash`` within one UTC day. A visitor
  hash changes with the daily salt unless the caller gave a stable ``visitor_id``, so a returning
  visitor starts a new journey each UTC day: the same window as unique hits.
- A journey belongs to a date range when its FIRST hit (``start_at``) lies in the range's
  [lo, hi) (UTC days, or site-local days with ``time_zone=user``); it then includes every hit of
  its UTC day, even hits after hi.
- Hits are ordered by (created_at, id). ``pages`` lists their paths in that order, capped at
  ``MAX_JOURNEY_PAGES`` entries (``page_count`` is always the full count); entry and exit page
  are the first and last path; referrer, country and browser are those of the first hit;
  ``session_duration`` = last - first hit in seconds, ``duration_minutes`` = that // 60.
- Summary: ``total_visitors`` = journeys in range, ``multi_page_visitors`` = journeys with more
  than one page view, ``bounce_rate`` = single-page share in percent, one decimal.
- Insights: the 10 entry and exit paths with the most journeys (ties by path).
- Listing: newest start first, then visitor hash.

Storage: grouping the raw hits of 30 days (~1M rows on the benchmark database) takes seconds, so
each finished UTC day is built once (``build_day``) into ``journeys`` (one row per journey),
``journey_stats`` (per UTC day and site-local day of the journey's start: all journeys, per entry
path and per exit path, each with how many were multi-page) and a marker row in
``journey_days``. A query reads, in ONE read transaction so a build committing meanwhile cannot
be counted twice, the built days from those tables and the unbuilt days (today, maybe yesterday,
or a day a late hit invalidated: ``INVALIDATE_DAY``, run by the writer) from the raw hits, and
merges them. Both paths group hits with the same function (``group_hits``), so they agree.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from tinytrack.engine import clock, db, visitors
from tinytrack.models import (
    JourneyFilters,
    JourneyInsights,
    JourneyPage,
    JourneySummary,
    PathVisitors,
    UserJourney,
    UserJourneysPage,
)

WARM_SITES = 16  # sites whose today the server groups ahead of queries (hourly)
MAX_JOURNEY_PAGES = 500  # a journey row stays small even for a visitor who reloads all day
TOP_PATHS = 10
DAY = clock.SECONDS_PER_DAY

# journey_stats.kind
ALL, ENTRY, EXIT = 0, 1, 2

# Run by the writer, with (site_id, utc_day), in the transaction of a late hit for a built day:
# the day is then read raw until built again. "kind IN (...)" lets the primary key be used.
INVALIDATE_DAY: tuple[str, ...] = (
    "DELETE FROM journeys WHERE site_id = ? AND utc_day = ?",
    "DELETE FROM journey_stats WHERE site_id = ? AND kind IN (0, 1, 2) AND utc_day = ?",
    "DELETE FROM journey_days WHERE site_id = ? AND utc_day = ?",
)
BUILT_UNTIL = "SELECT COALESCE(MAX(utc_day) + 1, 0) FROM journey_days"
SITES = "SELECT id, timezone FROM sites ORDER BY id"
# dim 0 = the site's hit total (rollups.TOTAL): one row per day that has hits.
DAYS_TO_BUILD = """
SELECT DISTINCT utc_day FROM hit_rollups
WHERE site_id = ? AND dim = 0 AND utc_day < ?
  AND utc_day NOT IN (SELECT utc_day FROM journey_days WHERE site_id = ?)
ORDER BY utc_day
"""
# The (site_id, created_at) index is in (created_at, id) order: no sort. A query reads only what
# grouping needs (turning rows into Python objects is most of the cost: 4 columns of today's
# ~26k benchmark hits take ~28 ms, 7 take ~50 ms); the first hit's details are then read for
# the journeys it lists (FIRST_HIT).
HITS_BETWEEN = """
SELECT visitor_hash, created_at, id, path FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ?
ORDER BY created_at, id
"""
BUILD_HITS = """
SELECT visitor_hash, created_at, id, path, referrer, country, browser_name FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ?
ORDER BY created_at, id
"""
FIRST_HIT = "SELECT referrer, country, browser_name FROM hits WHERE id = ?"
INSERT_JOURNEY = """
INSERT INTO journeys (site_id, utc_day, visitor_hash, local_day, start_at, end_at, page_count,
                      pages, entry_path, exit_path, referrer, country, browser)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_STATS = """
INSERT INTO journey_stats (site_id, kind, utc_day, local_day, value, journeys, multi)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
INSERT_DAY = "INSERT INTO journey_days (site_id, utc_day) VALUES (?, ?)"
BUILT_DAYS = "SELECT utc_day FROM journey_days WHERE site_id = ? AND utc_day BETWEEN ? AND ?"
# Parameters: ?1 site, ?2..?3 UTC days, ?4..?5 local days. One GROUP BY per kind: ~45 ms over 30
# benchmark days (~110k rows: ~1,800 entry and exit paths a day) against ~80 ms for one
# GROUP BY kind, value.
_STATS_PART = """
SELECT {kind}, value, SUM(journeys), SUM(multi) FROM journey_stats
WHERE site_id = ?1 AND kind = {kind} AND utc_day BETWEEN ?2 AND ?3{local} GROUP BY value
"""
STATS_UTC = " UNION ALL ".join(_STATS_PART.format(kind=k, local="") for k in (ALL, ENTRY, EXIT))
# A local day overlaps at most the UTC day before and after it; the (widened) utc_day bound
# only lets the primary key narrow the scan.
STATS_LOCAL = " UNION ALL ".join(
    _STATS_PART.format(kind=k, local=" AND local_day BETWEEN ?4 AND ?5") for k in (ALL, ENTRY, EXIT)
)
# Covering: journeys_site_start holds (site_id, start_at) + the key (utc_day, visitor_hash).
BUILT_KEYS = """
SELECT start_at, visitor_hash, utc_day FROM journeys
WHERE site_id = ? AND start_at >= ? AND start_at < ?
ORDER BY start_at DESC, visitor_hash LIMIT ? OFFSET ?
"""
BUILT_JOURNEY = """
SELECT start_at, end_at, page_count, pages, exit_path, referrer, country, browser
FROM journeys WHERE site_id = ? AND utc_day = ? AND visitor_hash = ?
"""

SortKey = tuple[int, str, int]  # (-start_at, visitor_hash, utc_day): the listing order


@dataclass(slots=True)
class Journey:
    utc_day: int
    visitor_hash: str
    first_id: int  # the first hit's id (0 when loaded from the journeys table)
    start_at: int
    end_at: int
    page_count: int
    pages: list[str]  # at most MAX_JOURNEY_PAGES
    exit_path: str
    details: tuple[Any, ...]  # (referrer, country, browser) of the first hit; () if not read
    properties: dict[str, Any] | None = None  # the visitor's properties, read for listed ones

    @property
    def entry_path(self) -> str:
        return self.pages[0]

    @property
    def key(self) -> SortKey:
        return (-self.start_at, self.visitor_hash, self.utc_day)


def group_hits(rows: Iterable[Sequence[Any]]) -> list[Journey]:
    """Journeys from hit rows (visitor_hash, created_at, id, path, *details) in (created_at, id)
    order, returned in order of their first hit; a journey's details are its first hit's."""
    out: list[Journey] = []
    day = -1
    current: dict[str, Journey] = {}  # journeys of the current UTC day (rows come in time order)
    for row in rows:
        visitor, at, path = row[0], row[1], row[3]
        if at // DAY != day:
            day, current = at // DAY, {}
        journey = current.get(visitor)
        if journey is None:
            journey = Journey(day, visitor, row[2], at, at, 1, [path], path, tuple(row[4:]))
            current[visitor] = journey
            out.append(journey)
            continue
        _extend(journey, at, path)
    return out


def _extend(journey: Journey, at: int, path: str) -> None:
    journey.end_at = at
    journey.page_count += 1
    journey.exit_path = path
    if journey.page_count <= MAX_JOURNEY_PAGES:
        journey.pages.append(path)


def local_day_finder(tz: str, day: int) -> tuple[list[int], list[int]]:
    """(cuts, days) for UTC day ``day``: an instant ts of that day lies in the site-local day
    ``days[bisect_right(cuts, ts)]``. Same boundaries as ``clock.local_day`` and the queries."""
    start, end = day * DAY, (day + 1) * DAY
    first = clock.local_day(tz, start)
    cuts: list[int] = []
    days = [first]
    following = first + 1
    while (midnight := clock.local_midnight(tz, following)) < end:
        cuts.append(midnight)
        days.append(following)
        following += 1
    return cuts, days


# -- building ------------------------------------------------------------------------------------


async def built_until(conn: aiosqlite.Connection) -> int:
    """The writer's ``journeys_built_until``: one past the newest built day (0 if none)."""
    async with conn.execute(BUILT_UNTIL) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def days_to_build(conn: aiosqlite.Connection, today: int) -> list[tuple[int, str, int]]:
    """(site_id, site timezone, utc_day) of every finished day with hits that is not built."""
    async with conn.execute(SITES) as cur:
        sites = [(int(r[0]), str(r[1])) for r in await cur.fetchall()]
    todo: list[tuple[int, str, int]] = []
    for site_id, tz in sites:
        async with conn.execute(DAYS_TO_BUILD, (site_id, today, site_id)) as cur:
            todo += [(site_id, tz, int(r[0])) for r in await cur.fetchall()]
    return todo


async def build_day(conn: aiosqlite.Connection, site_id: int, tz: str, day: int) -> int:
    """(Re)build one site's UTC day inside the caller's write transaction; returns how many
    journeys it has. Idempotent: the day's old rows are deleted first."""
    return await db.on_connection_thread(conn, lambda raw: _build_day(raw, site_id, tz, day))


def _build_day(conn: sqlite3.Connection, site_id: int, tz: str, day: int) -> int:
    for statement in INVALIDATE_DAY:
        conn.execute(statement, (site_id, day))
    journeys = group_hits(
        conn.execute(BUILD_HITS, (site_id, day * DAY, (day + 1) * DAY)).fetchall()
    )
    cuts, local_days = local_day_finder(tz, day)
    rows: list[tuple[Any, ...]] = []
    stats: dict[tuple[int, int, str], list[int]] = {}
    for j in journeys:
        local = local_days[bisect.bisect_right(cuts, j.start_at)]
        multi = int(j.page_count > 1)
        pages = json.dumps(j.pages, ensure_ascii=False, separators=(",", ":"))
        row = (site_id, day, j.visitor_hash, local, j.start_at, j.end_at, j.page_count, pages)
        rows.append((*row, j.entry_path, j.exit_path, *j.details))
        for stat in ((ALL, local, ""), (ENTRY, local, j.entry_path), (EXIT, local, j.exit_path)):
            slot = stats.setdefault(stat, [0, 0])
            slot[0] += 1
            slot[1] += multi
    rows.sort(key=lambda r: r[2])  # primary-key order: sequential B-tree inserts
    conn.executemany(INSERT_JOURNEY, rows)
    conn.executemany(
        INSERT_STATS,
        [
            (site_id, kind, day, local, value, n, m)
            for (kind, local, value), (n, m) in stats.items()
        ],
    )
    conn.execute(INSERT_DAY, (site_id, day))
    return len(journeys)


# -- today's journeys, kept between queries ----------------------------------------------------


@dataclass(slots=True, frozen=True)
class _DayState:
    """The journeys of one unbuilt UTC day of a site grouped from its hits with id <= last_id
    (``rows`` of them; the newest is ``last_key`` = (created_at, id)). Never changed once made:
    a query that reads newer hits makes a new state, so a query still using the old one sees
    consistent journeys."""

    journeys: list[Journey]  # in order of their first hit
    index: dict[str, int]  # visitor hash -> position in ``journeys``
    last_id: int
    rows: int
    last_key: tuple[int, int]


# Hits of a day up to an id: the (site_id, created_at) index holds the rowid, so this counts
# index entries without reading the table.
COUNT_UP_TO = """
SELECT COUNT(*) FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND id <= ?
"""
HITS_AFTER = """
SELECT visitor_hash, created_at, id, path FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND id > ?
ORDER BY created_at, id
"""


class RawDays:
    """Journeys of unbuilt days (today above all), kept between queries so that a query reads
    and groups only the hits that arrived since the previous one: grouping a whole busy day
    again on every request was most of a 30-day query's time.

    A kept day is trusted only while it still matches the database: the query first counts the
    day's hits with id <= the kept ``last_id`` in its own snapshot (an index-only count). Hits are
    never changed, only added or deleted with their site, so an equal count means the same rows;
    a deletion, a reused id or a new hit older than the newest kept one (an import, a backdated
    event) make the query group the day from scratch. Used from the reader threads, so the map
    is guarded by a lock; states themselves are immutable (copy on write).
    """

    def __init__(self, max_days: int = 2 * WARM_SITES) -> None:
        self._max_days = max_days
        self._days: OrderedDict[tuple[int, int], _DayState] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, site_id: int, day: int) -> None:
        with self._lock:
            self._days.pop((site_id, day), None)

    def journeys(self, conn: sqlite3.Connection, site_id: int, day: int) -> list[Journey]:
        """The day's journeys in ``conn``'s snapshot (inside the caller's read transaction)."""
        bounds = (site_id, day * DAY, (day + 1) * DAY)
        with self._lock:
            state = self._days.get((site_id, day))
        if state is not None:
            (count,) = conn.execute(COUNT_UP_TO, (*bounds, state.last_id)).fetchone()
            if count == state.rows:
                new = conn.execute(HITS_AFTER, (*bounds, state.last_id)).fetchall()
                state = _advance(state, new) if new else state
            else:
                state = None
        if state is None:
            rows = conn.execute(HITS_BETWEEN, bounds).fetchall()
            state = _advance(_EMPTY, rows) if rows else _EMPTY
            assert state is not None  # nothing is older than the empty state's newest hit
        with self._lock:
            kept = self._days.get((site_id, day))
            if kept is None or kept.last_id <= state.last_id:  # keep the newest snapshot's
                self._days[(site_id, day)] = state
                self._days.move_to_end((site_id, day))
            while len(self._days) > self._max_days:
                self._days.popitem(last=False)
        return state.journeys


_EMPTY = _DayState([], {}, 0, 0, (-1, -1))

# Sites with hits on a UTC day, busiest first (dim 0 = the site total, rollups.TOTAL).
BUSY_SITES = """
SELECT site_id FROM hit_rollups WHERE dim = 0 AND utc_day = ?
GROUP BY site_id ORDER BY SUM(hits) DESC LIMIT ?
"""


def warm(conn: sqlite3.Connection, raw_days: RawDays, day: int) -> int:
    """Group ``day``'s journeys of the busiest sites into ``raw_days`` ahead of any query (the
    server does it hourly for today), so that a query reads at most the hits of the last hour
    instead of a whole day's; returns how many sites."""
    sites = [int(r[0]) for r in conn.execute(BUSY_SITES, (day, WARM_SITES))]
    for site_id in sites:
        conn.execute("BEGIN")
        try:
            raw_days.journeys(conn, site_id, day)
        finally:
            conn.execute("COMMIT")
    return len(sites)


def _advance(state: _DayState, rows: list[Any]) -> _DayState | None:
    """``state`` with hit rows (visitor_hash, created_at, id, path), newer than every hit in
    it and in (created_at, id) order, added; None when the first row is older than the newest
    hit of ``state`` (pages would be out of order: the day must be grouped again)."""
    first = rows[0]
    if (first[1], first[2]) < state.last_key:
        return None
    journeys = list(state.journeys)
    index = dict(state.index)
    fresh: set[int] = set()  # positions holding journeys made or copied in this step
    for visitor, at, hit_id, path in rows:
        pos = index.get(visitor)
        if pos is None:
            index[visitor] = len(journeys)
            fresh.add(len(journeys))
            journeys.append(Journey(at // DAY, visitor, hit_id, at, at, 1, [path], path, ()))
            continue
        journey = journeys[pos]
        if pos not in fresh:  # an older state may still be in use: change a copy
            journey = journeys[pos] = dataclasses.replace(journey, pages=list(journey.pages))
            fresh.add(pos)
        _extend(journey, at, path)
    last = rows[-1]
    return _DayState(journeys, index, max(state.last_id, max(r[2] for r in rows)),
                     state.rows + len(rows), (last[1], last[2]))  # fmt: skip


# -- reading ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Totals:
    journeys: int = 0
    multi: int = 0
    entries: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)


async def user_journeys_page(
    conn: aiosqlite.Connection,
    site_id: int,
    *,
    days: tuple[int, int],
    bounds: tuple[int, int],
    local: bool,
    page: int,
    per_page: int,
    filters: JourneyFilters,
    raw_days: RawDays | None = None,
) -> UserJourneysPage:
    """The answer for the inclusive days ``days`` (UTC, or site-local when ``local``) whose
    instants are ``bounds`` = [lo, hi). Runs on ``conn``'s thread in one read transaction."""
    # Imported here: queries -> ingest -> writer imports this module (for INVALIDATE_DAY).
    from tinytrack.engine.queries import pagination

    kept = raw_days if raw_days is not None else RawDays()
    offset = (page - 1) * per_page
    totals, listed = await db.on_connection_thread(
        conn, lambda raw: _read(raw, kept, site_id, days, bounds, local, offset, per_page)
    )
    single = totals.journeys - totals.multi
    return UserJourneysPage(
        user_journeys=[_shape(j) for j in listed],
        summary=JourneySummary(
            total_visitors=totals.journeys,
            multi_page_visitors=totals.multi,
            single_page_visitors=single,
            bounce_rate=round(single / totals.journeys * 100, 1) if totals.journeys else 0.0,
        ),
        insights=JourneyInsights(
            top_entry_pages=_top(totals.entries), top_exit_pages=_top(totals.exits)
        ),
        pagination=pagination(page, per_page, totals.journeys),
        filters=filters,
    )


def _read(
    conn: sqlite3.Connection,
    raw_days: RawDays,
    site_id: int,
    days: tuple[int, int],
    bounds: tuple[int, int],
    local: bool,
    offset: int,
    limit: int,
) -> tuple[_Totals, list[Journey]]:
    conn.execute("BEGIN")
    try:
        return _read_in_transaction(conn, raw_days, site_id, days, bounds, local, offset, limit)
    finally:
        conn.execute("COMMIT")


def _read_in_transaction(
    conn: sqlite3.Connection,
    raw_days: RawDays,
    site_id: int,
    days: tuple[int, int],
    bounds: tuple[int, int],
    local: bool,
    offset: int,
    limit: int,
) -> tuple[_Totals, list[Journey]]:
    lo, hi = bounds
    first_day, last_day = lo // DAY, (hi - 1) // DAY  # the UTC days a journey in range starts on
    built = {row[0] for row in conn.execute(BUILT_DAYS, (site_id, first_day, last_day))}

    # Built days: their stats rows (which exist for built days only).
    totals = _Totals()
    if local:
        stats = conn.execute(STATS_LOCAL, (site_id, days[0] - 2, days[1] + 2, *days))
    else:
        stats = conn.execute(STATS_UTC, (site_id, *days))
    for kind, value, journeys, multi in stats.fetchall():
        if kind == ALL:
            totals.journeys += journeys
            totals.multi += multi
        else:
            (totals.entries if kind == ENTRY else totals.exits)[value] = journeys

    # Unbuilt days: grouped from the raw hits here.
    raw = [
        j
        for day in range(first_day, last_day + 1)
        if day not in built
        for j in raw_days.journeys(conn, site_id, day)
        if lo <= j.start_at < hi
    ]
    for day in built & {last_day, last_day - 1}:  # built since it was kept
        raw_days.forget(site_id, day)
    entries, exits = totals.entries, totals.exits
    for j in raw:
        totals.multi += j.page_count > 1
        entries[j.pages[0]] = entries.get(j.pages[0], 0) + 1
        exits[j.exit_path] = exits.get(j.exit_path, 0) + 1
    totals.journeys += len(raw)
    raw.sort(key=lambda j: j.key)

    # Copies: raw journeys are shared with other queries through ``raw_days``.
    listed = [dataclasses.replace(j) for j in _page(conn, site_id, bounds, raw, offset, limit)]
    for j in listed:
        if not j.details:
            j.details = tuple(conn.execute(FIRST_HIT, (j.first_id,)).fetchone())
        j.properties = visitors.properties_of(conn, site_id, j.visitor_hash) or None
    return totals, listed


def _page(
    conn: sqlite3.Connection,
    site_id: int,
    bounds: tuple[int, int],
    raw: list[Journey],
    offset: int,
    limit: int,
) -> list[Journey]:
    """Rows [offset, offset + limit) of the merge of built and raw journeys (``raw`` sorted).

    At most len(raw) raw journeys precede the page, so it starts at built index >= offset -
    len(raw): only that window of built keys is fetched (from a covering index), however deep
    the page, and only the listed built journeys are read in full.
    """
    skip = max(0, offset - len(raw))
    keys: list[SortKey] = [
        (-start, visitor, day)
        for start, visitor, day in conn.execute(
            BUILT_KEYS, (site_id, *bounds, offset + limit - skip, skip)
        ).fetchall()
    ]
    if skip and not keys:
        return []  # at most skip built journeys: the page lies past the end
    # The first fetched built key sits at merged position skip + (raw journeys before it);
    # with skip = 0 only the first offset + limit raw journeys can reach the page.
    if skip:
        before = bisect.bisect_left(raw, keys[0], key=lambda j: j.key)
        window = raw[before:]
    else:
        before, window = 0, raw[: offset + limit]
    candidates: list[tuple[SortKey, Journey | None]] = [(j.key, j) for j in window]
    candidates += [(key, None) for key in keys]
    candidates.sort(key=lambda c: c[0])
    start = offset - (skip + before)
    return [
        journey if journey is not None else _load(conn, site_id, key)
        for key, journey in candidates[start : start + limit]
    ]


def _load(conn: sqlite3.Connection, site_id: int, key: SortKey) -> Journey:
    _, visitor, day = key
    row = conn.execute(BUILT_JOURNEY, (site_id, day, visitor)).fetchone()
    start_at, end_at, count, pages, exit_path, *details = row
    return Journey(
        day, visitor, 0, start_at, end_at, count, json.loads(pages), exit_path, (*details,)
    )


def _top(counts: dict[str, int]) -> list[PathVisitors]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_PATHS]
    return [PathVisitors(path=path, visitors=n) for path, n in ranked]


def _shape(j: Journey) -> UserJourney:
    duration = j.end_at - j.start_at
    referrer, country, browser = j.details
    journey = UserJourney(
        visitor_hash=j.visitor_hash,
        page_count=j.page_count,
        first_hit=clock.iso(j.start_at),
        last_hit=clock.iso(j.end_at),
        duration_minutes=duration // 60,
        pages=[JourneyPage(path=p) for p in j.pages],
        entry_page=j.entry_path,
        exit_page=j.exit_path,
        session_duration=duration,
        referrer=referrer,
        country=country,
        browser=browser,
    )
    if j.properties:
        journey.properties = j.properties
    return journey
