"""Every grouped result served from rollups equals a plain SQL count over the raw hits, on
random data, for every group_by, both time-zone modes, and ranges crossing day boundaries."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_MAC, FakeClock
from tinytrack.models import GROUP_BY_VALUES

START = dt.datetime(2026, 3, 26, 0, 0, tzinfo=dt.UTC)  # spans the EU DST change (2026-03-29)
WINDOW_HOURS = 24 * 6

hit_strategy = st.fixed_dictionaries(
    {
        # A coarse grid so several hits share a timestamp and go in as one multi-row batch,
        # and a few busy instants so some batches hold many distinct visitors.
        "hour": st.one_of(
            st.integers(0, WINDOW_HOURS * 2 - 1).map(lambda half_hours: half_hours / 2),
            st.sampled_from([0.5, 23.5, 47.5, 70.0]),
        ),
        "path": st.sampled_from(["/", "/a", "/b/", "/c?utm_source=mail", "/é"]),
        "country": st.sampled_from([None, "US", "PL", "XX"]),
        "ip": st.sampled_from([None, "8.8.8.8", "81.2.69.142", "2a00:1450:4001::1"]),
        "ua": st.sampled_from([None, SAFARI_MAC, FIREFOX_LINUX, CHROME_ANDROID]),
        "referrer": st.sampled_from([None, "https://google.com/", "https://news.ycombinator.com/"]),
        "visitor": st.sampled_from([None, "u1", "u2"]),
        # Repeats of the same hit land in one batch: same rollup keys within one commit.
        "copies": st.integers(1, 3),
    }
)


def raw_groups(
    db: Path, site_id: int, column: str, lo: int, hi: int
) -> dict[str | None, tuple[int, int, int]]:
    """The reference: plain SQL over the raw rows (count, sum of unique flags, distinct hashes)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            f"SELECT {column}, COUNT(*), SUM(is_unique), COUNT(DISTINCT unique_hash) FROM hits "
            "WHERE site_id = ? AND created_at >= ? AND created_at < ? GROUP BY 1",
            (site_id, lo, hi),
        ).fetchall()
    finally:
        conn.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def local_bounds(tz: str, start: dt.date, end: dt.date) -> tuple[int, int]:
    """Independent of the engine: first instants of the start day and of the day after end."""
    zone = ZoneInfo(tz)

    def first_instant(day: dt.date) -> int:
        # Scan the day's first minutes for the first instant whose local date is `day`
        # (handles midnights skipped by DST without trusting the engine's arithmetic).
        guess = int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()) - 15 * 3600
        step = 900
        ts = guess
        while dt.datetime.fromtimestamp(ts, zone).date() < day:
            ts += step
        while dt.datetime.fromtimestamp(ts - 1, zone).date() >= day:
            ts -= 1
        return ts

    return first_instant(start), first_instant(end + dt.timedelta(days=1))


async def check(
    db: Path,
    tz: str,
    hits: list[dict[str, object]],
    ranges: list[tuple[int, int]],
    fold_eagerly: bool = False,
) -> None:
    clock = FakeClock(START.timestamp())
    async with tinytrack.open(db, clock=clock) as engine:
        if fold_eagerly:
            # A fold computed beside the writer after every commit (fold.py): many folds,
            # each racing the next commits and the folds the queries ask for.
            engine._writer._fold_seconds = engine._writer._fold_idle = 0
        site = await engine.create_site("https://example.com", timezone=tz)
        by_time: dict[float, list[tinytrack.HitIn]] = {}
        for h in hits:
            by_time.setdefault(float(h["hour"]), []).extend(  # type: ignore[arg-type]
                [
                    tinytrack.HitIn(
                        path=str(h["path"]),
                        country=h["country"],  # type: ignore[arg-type]
                        ip_address=h["ip"],  # type: ignore[arg-type]
                        user_agent=h["ua"],  # type: ignore[arg-type]
                        referrer=h["referrer"],  # type: ignore[arg-type]
                        visitor_id=h["visitor"],  # type: ignore[arg-type]
                    )
                ]
                * int(h["copies"])  # type: ignore[call-overload]
            )
        for hour in sorted(by_time):
            clock.now = START.timestamp() + hour * 3600
            batch = by_time[hour]
            if len(batch) == 1:
                await engine.record_hit(site.id, batch[0])
            else:
                result = await engine.record_hits(site.id, batch)
                assert result.created_count == len(batch)
        for first, last in ranges:
            start = START.date() + dt.timedelta(days=first - 1)
            end = START.date() + dt.timedelta(days=last - 1)
            await assert_grouped_equal_raw(engine, db, site, tz, start, end)


async def assert_grouped_equal_raw(
    engine: tinytrack.Engine,
    db: Path,
    site: tinytrack.Site,
    tz: str,
    start: dt.date,
    end: dt.date,
) -> None:
    """Every group_by in both time-zone modes for [start, end] equals plain SQL on raw rows."""
    for mode in ("utc", "user"):
        lo, hi = local_bounds("UTC" if mode == "utc" else tz, start, end)
        for group_by in GROUP_BY_VALUES:
            page = await engine.hits(
                site.id,
                start_date=start,
                end_date=end,
                time_zone=mode,  # type: ignore[arg-type]
                grouped=True,
                group_by=group_by,
                per_page=1000,  # type: ignore[arg-type]
            )
            assert isinstance(page, tinytrack.GroupedHitsPage)
            expected = raw_groups(db, site.id, group_by, lo, hi)
            if group_by == "path":
                got = {r["path"]: (r["views"], r["unique_views"]) for r in page.grouped_hits}
                assert got == {k: (v[0], v[1]) for k, v in expected.items()}
                if mode == "utc":
                    # Unique hashes are salted per UTC day, so on UTC day ranges the unique
                    # count is exactly the number of distinct hashes.
                    assert got == {k: (v[0], v[2]) for k, v in expected.items()}
            else:
                got = {r[group_by]: r["hit_count"] for r in page.grouped_hits}
                assert got == {k: v[0] for k, v in expected.items()}
            assert page.pagination.total_count == len(expected)
            # The API's order (hits descending, then value in SQLite's binary order) and its
            # pages: kept settled totals are merged with live rows, so both are checked here.
            order = [
                k or ""
                for k, v in sorted(
                    expected.items(), key=lambda kv: (-kv[1][0], (kv[0] or "").encode())
                )
            ]
            assert [r[group_by] or "" for r in page.grouped_hits] == order
            second = await engine.hits(
                site.id,
                start_date=start,
                end_date=end,
                time_zone=mode,  # type: ignore[arg-type]
                grouped=True,
                group_by=group_by,
                page=2,
                per_page=2,
            )
            assert isinstance(second, tinytrack.GroupedHitsPage)
            assert [r[group_by] or "" for r in second.grouped_hits] == order[2:4]
            assert second.pagination.total_count == len(expected)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    tz=st.sampled_from(
        [
            "UTC",
            "Europe/Warsaw",
            "America/New_York",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "Pacific/Kiritimati",
            "America/Santiago",
        ]
    ),
    hits=st.lists(hit_strategy, min_size=1, max_size=60),
    ranges=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 7)).map(lambda t: (min(t), max(t))),
        min_size=1,
        max_size=3,
    ),
    fold_eagerly=st.booleans(),
)
def test_grouped_rollups_equal_raw_sql(
    tz: str, hits: list[dict[str, object]], ranges: list[tuple[int, int]], fold_eagerly: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(check(Path(tmp) / "t.db", tz, hits, ranges, fold_eagerly))
