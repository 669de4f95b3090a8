"""User journeys when a whole day must be grouped from raw hits (issue 3, worst case).

``bench_reports.py`` measures the journeys of the 30 days ending on the data's last day; how many
of them are raw depends on the time of day it runs (today is never built). This script makes
the worst case on purpose: it removes the built journeys of the last FINISHED day (as a late hit
would, with ``journeys.INVALIDATE_DAY``), then times ``engine.user_journeys`` for the 30 days
ending that day, ``--calls`` times on one engine: the first call groups the whole day from its
raw hits (cold), the later ones reuse it (``journeys.RawDays``: only new hits are read, and none
arrive here). At the end it builds the day again, so the database is as it was.

    .venv/bin/python benchmarks/bench_journeys_cold.py --db benchmarks/data/bench10m.db
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import sys
import time
from pathlib import Path

import common

TARGET_MS = 200.0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--site", type=int, default=1)
    parser.add_argument("--calls", type=int, default=6)
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"error: {args.db} not found; see benchmarks/README.md (generate.py)")
    from tinytrack.engine import Engine, journeys

    print(f"journeys, one unbuilt day | {common.machine_line()}")
    conn = sqlite3.connect(args.db)
    (last,) = conn.execute(
        "SELECT MAX(created_at) / 86400 FROM hits WHERE site_id = ?", (args.site,)
    ).fetchone()
    day = int(last) - 1  # the last finished UTC day
    with conn:
        for sql in journeys.INVALIDATE_DAY:
            conn.execute(sql, (args.site, day))
    (hits,) = conn.execute(
        "SELECT COUNT(*) FROM hits WHERE site_id = ? AND created_at >= ? AND created_at < ?",
        (args.site, day * 86400, (day + 1) * 86400),
    ).fetchone()
    conn.close()
    end = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    start = end - dt.timedelta(days=29)
    print(f"{start} .. {end}: the journeys of {end} removed; that day has {hits:,} hits")

    engine = await Engine.open(args.db, maintenance=False)
    try:
        for call in range(1, args.calls + 1):
            t0 = time.perf_counter()
            page = await engine.user_journeys(args.site, start_date=start, end_date=end)
            ms = (time.perf_counter() - t0) * 1000
            kind = "cold: the whole day from raw hits" if call == 1 else "kept day"
            print(f"  call {call}: {ms:7.1f} ms  ({page.summary.total_visitors:,} journeys; "
                  f"{kind}) -> {common.verdict(ms <= TARGET_MS)}")  # fmt: skip
        print(f"rebuilt {await engine.build_journeys()} day(s)")
    finally:
        await engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
