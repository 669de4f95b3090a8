"""Folding committed hits into the rollups, after their own transaction.

Why not in the hit's transaction: the rollup upserts made every group commit longer, and with
the event loop and the writer's thread sharing one GIL that capped single-hit ingest at ~0.6
of a bare Litestar app (benchmarks/bench_single_breakdown.py). So the writer commits raw rows
only, and a fold counts a second's hits at once, each repeated key once.

How it stays exact:

* meta ``rollups_folded_until`` (the *mark*) is the highest hit id counted in the rollups. A
  fold moves it in the same transaction as the counts it adds, so every hit is counted exactly
  once, and the writer never gives a new hit an id at or below it (``MAX_HIT_ID``).
* A fold reads nothing but committed rows above the mark, so it is the same whoever wrote
  them: this process, another one on the same file, or one that crashed.
* ``compute`` reads (it can run on a connection of its own, beside the writer); ``apply``
  stores what it read only if the mark has not moved since, else it is dropped and the next
  fold counts those hits. ``fold_all`` does both inside one write transaction.
* Deleting hits (a site) folds first in the same transaction, so a fold computed before the
  delete can never be applied after it (the mark moved).

Counting runs in SQL (GROUP BY per dimension): inside SQLite, with the GIL released, so a
fold computed on its own connection overlaps the event loop and the writer's commits.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final, NamedTuple

from tinytrack.engine import clock, pyramid, settled
from tinytrack.engine.rollups import DIMENSIONS, TOTAL, UPSERT_ROLLUP

FOLDED_KEY: Final = "rollups_folded_until"
_MARK = f"COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{FOLDED_KEY}'), 0)"
_TOP = "COALESCE((SELECT MAX(id) FROM hits), 0)"
# The id before the writer's next hit: never at or below the mark, or that hit (after the
# newest hits were deleted with their site) would never be counted.
MAX_HIT_ID: Final = f"SELECT MAX({_TOP}, {_MARK})"
BOUNDS: Final = f"SELECT {_MARK}, {_TOP}"
MARK: Final = f"SELECT {_MARK}"
SET_MARK: Final = (
    f"INSERT INTO meta (key, value) VALUES ('{FOLDED_KEY}', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
# Each (site, UTC day) of the range, mapped in temp.fold_days to the site-local day(s) it
# overlaps (a site's time zone is not computable in SQL).
UNFOLDED_DAYS: Final = """
SELECT DISTINCT h.site_id, h.created_at / 86400, s.timezone
FROM hits h JOIN sites s ON s.id = h.site_id
WHERE h.id > ? AND h.id <= ?
"""
DAYS_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS fold_days "
    "(site_id INTEGER, utc_day INTEGER, start_at INTEGER, end_at INTEGER, local_day INTEGER)"
)
CLEAR_DAYS: Final = "DELETE FROM temp.fold_days"
ADD_DAY: Final = "INSERT INTO temp.fold_days VALUES (?, ?, ?, ?, ?)"
# hits stays the outer loop, read by its id range: joined the other way round SQLite walked
# hits_site_time over each whole day (and without NOT INDEXED, all of it).
_FROM = """
FROM hits h NOT INDEXED CROSS JOIN temp.fold_days d
WHERE h.id > ?1 AND h.id <= ?2
  AND d.site_id = h.site_id AND h.created_at >= d.start_at AND h.created_at < d.end_at
"""
_DAY = """
SELECT h.site_id, {code}, d.utc_day, d.local_day, {value}, COUNT(*), SUM(h.is_unique)
{source} GROUP BY 1, 3, 4, 5
"""
# UPSERT_ROLLUP rows per dimension; codes and columns come from the rollups whitelist only.
DAY_SELECTS: Final = (
    _DAY.format(code=TOTAL, value="''", source=_FROM),
    *(
        _DAY.format(code=code, value=f"COALESCE(h.{column}, '')", source=_FROM)
        for code, column in sorted(DIMENSIONS.values())
    ),
)
# pyramid.UPSERT_BLOCK rows: all-time totals per path (the leaderboard's).
ALL_TIME_SELECT: Final = f"""
SELECT h.site_id, {DIMENSIONS["path"][0]}, {pyramid.ALL_TIME}, 0, 0, COALESCE(h.path, ''),
       COUNT(*), SUM(h.is_unique)
{_FROM} GROUP BY 1, 6
"""
LIMIT: Final = 500_000  # hit ids per fold: bounds one fold's memory and time after an outage


class Fold(NamedTuple):
    """The rollup rows of the hits with after < id <= top."""

    after: int
    top: int
    day_rows: list[Any]
    all_time_rows: list[Any]
    late: bool  # a hit on a day before the block watermark (settled totals go stale)


def compute(raw: sqlite3.Connection, complete_until: int = 0, limit: int = LIMIT) -> Fold:
    """Read (one snapshot: call inside a transaction) the rollup rows of the hits above the
    mark, at most ``limit`` ids of them. Writes only its connection's temp table."""
    after, top = raw.execute(BOUNDS).fetchone()
    top = min(top, after + limit)
    if top <= after:
        return Fold(after, after, [], [], False)
    found = raw.execute(pyramid.READ_WATERMARK).fetchone()
    complete_until = max(complete_until, int(found[0]) if found else 0)
    raw.execute(DAYS_TABLE)
    raw.execute(CLEAR_DAYS)
    days = raw.execute(UNFOLDED_DAYS, (after, top)).fetchall()
    raw.executemany(
        ADD_DAY, [(site, *part) for site, day, tz in days for part in local_parts(tz, day)]
    )
    day_rows = [row for sql in DAY_SELECTS for row in raw.execute(sql, (after, top))]
    all_time_rows = raw.execute(ALL_TIME_SELECT, (after, top)).fetchall()
    raw.execute(CLEAR_DAYS)
    late = any(day < complete_until for _, day, _ in days)
    return Fold(after, top, day_rows, all_time_rows, late)


def apply(raw: sqlite3.Connection, fold: Fold) -> bool:
    """Inside a write transaction: store a computed fold and move the mark, unless the mark
    moved since it was computed (then nothing is written and False is returned)."""
    if raw.execute(MARK).fetchone()[0] != fold.after:
        return False
    if fold.top == fold.after:
        return True
    raw.executemany(UPSERT_ROLLUP, fold.day_rows)
    if fold.all_time_rows:
        raw.executemany(pyramid.UPSERT_BLOCK, fold.all_time_rows)
    if fold.late:  # a day whose grouped totals may be kept (settled.py) changed
        raw.execute(settled.BUMP_VERSION)
    raw.execute(SET_MARK, (str(fold.top),))
    return True


def fold_all(raw: sqlite3.Connection, complete_until: int = 0) -> int:
    """Inside a write transaction: fold every committed hit; returns the new mark."""
    while True:
        fold = compute(raw, complete_until)
        apply(raw, fold)
        if fold.top == fold.after:
            return fold.top


def local_parts(tz: str, utc_day: int) -> list[tuple[int, int, int, int]]:
    """(UTC day, start, end, site-local day) for each piece of a UTC day that falls on one
    local day, with the same boundaries as ``clock.local_day``."""
    start, end = utc_day * clock.SECONDS_PER_DAY, (utc_day + 1) * clock.SECONDS_PER_DAY
    parts: list[tuple[int, int, int, int]] = []
    local = clock.local_day(tz, start)
    while start < end:
        stop = min(end, clock.local_midnight(tz, local + 1))
        if stop > start:
            parts.append((utc_day, start, stop, local))
            start = stop
        local += 1
    return parts
