"""The all-time path leaderboard, answered from the rollups (see ``Engine.leaderboard``)."""

from __future__ import annotations

import aiosqlite

from tinytrack.engine.queries import GroupRow
from tinytrack.engine.rollups import TOTAL
from tinytrack.models import LeaderboardRow

# First UTC day with hits and the all-time hit total, from the site-total rollup rows.
SPAN_AND_TOTAL = f"""
SELECT MIN(utc_day), COALESCE(SUM(hits), 0) FROM hit_rollups WHERE site_id = ? AND dim = {TOTAL}
"""


async def span_and_total(conn: aiosqlite.Connection, site_id: int) -> tuple[int | None, int]:
    async with conn.execute(SPAN_AND_TOTAL, (site_id,)) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return None, 0
    return int(row[0]), int(row[1])


def row(group: GroupRow, total_hits: int) -> LeaderboardRow:
    path, hits, uniques = group
    share = round(hits * 100 / total_hits, 2) if total_hits else 0.0
    return LeaderboardRow(path=path, total_hits=hits, unique_hits=uniques, percentage=share)
