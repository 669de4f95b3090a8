"""The rollup pyramid: day rollups summed over aligned blocks of 4, 16 and 64 days.

Why: a grouped query costs ~0.5 µs per rollup row it aggregates (SQLite's GROUP BY sorter;
measured on the 10M-hit benchmark database), and a year of daily rows for one dimension is
~900k rows. Aligned blocks cut a 365-day range to a few dozen blocks plus edge days.

How it stays exact and cheap:
- Blocks are built ("compacted") from the daily rollups only once they lie entirely before the
  watermark D (``blocks_complete_until`` in meta, a UTC day number), so live ingestion, which
  always writes today's day, pays nothing extra.
- A late hit (imported or back-dated) whose day falls in an already-built block updates that
  block too, in the hit's own transaction; its daily row comes with the next fold (fold.py),
  which every read and every block build waits for.
- Blocks carry both the UTC block and the site-local block of their hits, like the daily table.
"""

from __future__ import annotations

from typing import Final

LEVELS: Final = (3, 2, 1)  # largest first, for the greedy decomposition
# Not a block size: one row per (site, path) with its all-time totals (utc_block = local_block =
# 0), kept by the writer in every write transaction, so the all-time leaderboard reads one row per
# path (3,000 on the benchmark database) instead of every block and day since the first hit.
ALL_TIME: Final = 9
BLOCK_DAYS: Final = {level: 4**level for level in LEVELS}

Segment = tuple[int, int, int]  # (level, first, last): level 0 = days, else block numbers


def block_end(level: int, block: int) -> int:
    """Last UTC day of a block."""
    return (block + 1) * BLOCK_DAYS[level] - 1


def built(level: int, block: int, complete_until: int, *, local: bool) -> bool:
    """May a query use this block? In UTC mode the block must end before the watermark. A
    site-local block also collects hits from the first UTC day after it, which lives in the
    next UTC block, so that block must be built too."""
    if local:
        return block_end(level, block + 1) < complete_until
    return block_end(level, block) < complete_until


def plan(first_day: int, last_day: int, complete_until: int, *, local: bool) -> list[Segment]:
    """Cover [first_day, last_day] with the fewest usable blocks and days, as merged ranges."""
    pieces: list[tuple[int, int]] = []
    day = first_day
    while day <= last_day:
        for level in LEVELS:
            size = BLOCK_DAYS[level]
            if (
                day % size == 0
                and day + size - 1 <= last_day
                and built(level, day // size, complete_until, local=local)
            ):
                pieces.append((level, day // size))
                day += size
                break
        else:
            pieces.append((0, day))
            day += 1
    segments: list[Segment] = []
    for level, number in pieces:
        if segments and segments[-1][0] == level and segments[-1][2] == number - 1:
            segments[-1] = (level, segments[-1][1], number)
        else:
            segments.append((level, number, number))
    return segments


def blocks_ending_between(start: int, stop: int) -> dict[int, list[tuple[int, int]]]:
    """Blocks whose last day d satisfies start <= d < stop, grouped by that day, in order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for level in LEVELS:
        size = BLOCK_DAYS[level]
        block = max(start // size - 1, 0)
        while (end := block_end(level, block)) < stop:
            if end >= start:
                out.setdefault(end, []).append((level, block))
            block += 1
    return dict(sorted(out.items()))


READ_WATERMARK: Final = (
    "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'blocks_complete_until'"
)
DELETE_BLOCK = """
DELETE FROM hit_rollup_blocks WHERE site_id = ? AND dim = ? AND level = ? AND utc_block = ?
"""
BUILD_BLOCK = """
INSERT INTO hit_rollup_blocks (site_id, dim, level, utc_block, local_block, value, hits, uniques)
SELECT site_id, dim, ?, utc_day / ?, local_day / ?, value, SUM(hits), SUM(uniques)
FROM hit_rollups
WHERE site_id = ? AND dim = ? AND utc_day BETWEEN ? AND ?
GROUP BY local_day / ?, value
"""
UPSERT_BLOCK = """
INSERT INTO hit_rollup_blocks (site_id, dim, level, utc_block, local_block, value, hits, uniques)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site_id, dim, level, utc_block, local_block, value)
DO UPDATE SET hits = hits + excluded.hits, uniques = uniques + excluded.uniques
"""
