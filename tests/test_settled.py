"""Kept grouped totals of the settled past (tinytrack.engine.settled): the merge with live rows
gives the plain GROUP BY's rows, order and count, and a late write, in this process or another,
is never answered from stale totals."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FakeClock
from tinytrack.engine import clock as clock_mod
from tinytrack.engine import settled

DAY = 86_400
VALUES = st.text(alphabet="abcé/\U0001f600", max_size=3)
COUNTS = st.tuples(st.integers(1, 6), st.integers(0, 6))


@given(
    old=st.dictionaries(VALUES, COUNTS, max_size=30),
    live=st.dictionaries(VALUES, COUNTS, max_size=10),
    offset=st.integers(0, 40),
    limit=st.integers(1, 12),
)
def test_a_page_equals_sorting_the_merged_totals(
    old: dict[str, tuple[int, int]],
    live: dict[str, tuple[int, int]],
    offset: int,
    limit: int,
) -> None:
    def order(item: tuple[str, tuple[int, int]]) -> tuple[int, bytes]:
        return -item[1][0], item[0].encode()  # SQLite: hits descending, then binary order

    totals = settled.Totals.build(0, [(v, h, u) for v, (h, u) in sorted(old.items(), key=order)])
    merged = dict(old)
    for value, (h, u) in live.items():
        was = merged.get(value, (0, 0))
        merged[value] = (was[0] + h, was[1] + u)
    expected = [(v, h, u) for v, (h, u) in sorted(merged.items(), key=order)]
    rows, count = totals.page(live, offset, limit)
    assert rows == expected[offset : offset + limit]
    assert count == len(merged)


def test_split_keeps_only_days_before_the_watermark_settled() -> None:
    segments = [(0, 10, 11), (1, 3, 4), (0, 20, 25)]
    assert settled.split(segments, 24, local=False) == (
        [(0, 10, 11), (1, 3, 4), (0, 20, 23)],
        [(0, 24, 25)],
    )
    # A local day also reads the UTC day after it.
    assert settled.split(segments, 24, local=True) == (
        [(0, 10, 11), (1, 3, 4), (0, 20, 22)],
        [(0, 23, 25)],
    )
    assert settled.split([(0, 30, 31)], 24, local=False) == ([], [(0, 30, 31)])


def test_the_budget_drops_the_least_recently_used_totals() -> None:
    kept = settled.SettledTotals(budget=5)
    a, b, c = ((1, 3, False, ((0, n, n),)) for n in range(3))
    kept.put(a, settled.Totals.build(0, [("x", 1, 1), ("y", 1, 1)]))
    kept.put(b, settled.Totals.build(0, [("x", 1, 1), ("y", 1, 1)]))
    assert kept.get(a, 0) is not None  # a is now the most recently used
    kept.put(c, settled.Totals.build(0, [("x", 1, 1), ("y", 1, 1)]))
    assert kept.get(b, 0) is None
    assert kept.get(a, 0) is not None and kept.get(c, 0) is not None
    assert kept.get(a, 1) is None  # built at another version
    kept.put(a, settled.Totals.build(0, [(str(n), 1, 1) for n in range(6)]))  # over budget
    assert kept.get(a, 0) is None


def raw_referrers(db: Path, site_id: int, lo: int, hi: int) -> list[tuple[str | None, int]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT referrer, COUNT(*) AS n FROM hits WHERE site_id = ? AND created_at >= ? "
            "AND created_at < ? GROUP BY referrer ORDER BY n DESC, COALESCE(referrer, '')",
            (site_id, lo, hi),
        ).fetchall()
    finally:
        conn.close()


async def test_live_and_late_hits_show_in_the_next_answer(db_path: Path) -> None:
    first_day = 20_400
    clock = FakeClock(first_day * DAY + 3600)
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        for day in range(20):
            clock.now = (first_day + day) * DAY + 3600
            hits = [
                tinytrack.HitIn(path="/", referrer=f"https://r{n}.example/")
                for n in range(day % 5 + 1)
            ]
            await engine.record_hits(site.id, hits)
        await engine.compact_rollups()
        today = first_day + 19
        assert engine._writer.blocks_complete_until == today
        start = dt.date(1970, 1, 1) + dt.timedelta(days=first_day)
        end = start + dt.timedelta(days=19)
        bounds = (first_day * DAY, (today + 1) * DAY)

        async def grouped() -> list[tuple[str | None, int]]:
            page = await engine.hits(
                site.id, start_date=start, end_date=end, grouped=True, group_by="referrer"
            )
            assert isinstance(page, tinytrack.GroupedHitsPage)
            assert page.pagination.total_count == len(page.grouped_hits)
            return [(r["referrer"], r["hit_count"]) for r in page.grouped_hits]

        assert await grouped() == raw_referrers(db_path, site.id, *bounds)
        builds = engine._settled.builds
        # Live: today's hits are grouped per query; the kept totals stay valid.
        await engine.record_hits(
            site.id, [tinytrack.HitIn(path="/", referrer="https://new.example/")] * 9
        )
        answer = await grouped()
        assert answer == raw_referrers(db_path, site.id, *bounds)
        assert ("https://new.example/", 9) in answer
        assert engine._settled.builds == builds
        # Late: a hit on a settled day makes the next query build the totals again.
        clock.now = (first_day + 3) * DAY
        await engine.record_hit(site.id, tinytrack.HitIn(path="/", referrer="https://r4.example/"))
        clock.now = today * DAY + 7200
        assert await grouped() == raw_referrers(db_path, site.id, *bounds)
        assert engine._settled.builds == builds + 1
        # Late, from another process (the CLI importing into the server's file): the version
        # lives in the database, so this engine notices too.
        clock.now = (first_day + 5) * DAY
        async with tinytrack.open(db_path, clock=clock) as other:
            await other.record_hits(
                site.id, [tinytrack.HitIn(path="/", referrer="https://r0.example/")] * 30
            )
        clock.now = today * DAY + 7200
        answer = await grouped()
        assert answer == raw_referrers(db_path, site.id, *bounds)
        assert answer[0][0] == "https://r0.example/"
        assert engine._settled.builds == builds + 2


async def test_the_hourly_warm_up_keeps_the_common_ranges(db_path: Path) -> None:
    first_day = 20_400
    clock = FakeClock(first_day * DAY + 3600)
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone="Europe/Warsaw")
        for day in range(40):
            clock.now = (first_day + day) * DAY + 3600
            await engine.record_hit(site.id, tinytrack.HitIn(path=f"/p{day % 3}"))
        await engine.compact_rollups()
        built = await engine.warm_grouped()
        assert built == 3 * len(tinytrack.models.GROUP_BY_VALUES)
        assert await engine.warm_grouped() == 0  # kept: nothing to build again
        builds = engine._settled.builds
        for period in ("30d", "12m"):
            today = dt.date(1970, 1, 1) + dt.timedelta(days=first_day + 39)
            page = await engine.hits(
                site.id,
                start_date=clock_mod.period_start(period, today),
                end_date=today,
                time_zone="user",
                grouped=True,
                group_by="referrer",
            )
            assert isinstance(page, tinytrack.GroupedHitsPage)
        await engine.hits(site.id, grouped=True, group_by="path")  # the API's default range
        assert engine._settled.builds == builds


def raw_filtered(
    db: Path, site_id: int, lo: int, hi: int, country: str, like: str
) -> list[tuple[str | None, int]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT path, COUNT(*) AS n FROM hits WHERE site_id = ? AND created_at >= ? "
            "AND created_at < ? AND country = ? AND referrer LIKE ? "
            "GROUP BY path ORDER BY n DESC, path",
            (site_id, lo, hi, country, f"%{like}%"),
        ).fetchall()
    finally:
        conn.close()


async def test_filtered_groupings_keep_their_settled_part_too(db_path: Path) -> None:
    """Filtered questions are grouped from raw hits; the hits before the watermark are
    grouped once per filter and kept, under the same version as the rollups."""
    first_day = 20_400
    clock = FakeClock(first_day * DAY + 3600)
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone="America/New_York")
        for day in range(10):
            clock.now = (first_day + day) * DAY + 3600 * (day % 24)
            hits = [
                tinytrack.HitIn(
                    path=f"/p{n % 3}",
                    country="US" if n % 2 else "PL",
                    referrer="https://A.example/",
                )
                for n in range(day + 1)
            ]
            await engine.record_hits(site.id, hits)
        await engine.compact_rollups()
        today = first_day + 9
        start = dt.date(1970, 1, 1) + dt.timedelta(days=first_day)
        end = start + dt.timedelta(days=9)
        lo, hi = (clock_mod.local_midnight("America/New_York", d) for d in (first_day, today + 1))

        async def grouped() -> list[tuple[str | None, int]]:
            page = await engine.hits(
                site.id, start_date=start, end_date=end, time_zone="user", grouped=True,
                group_by="path", country="US", referrer="a.EXAMPLE",
            )  # fmt: skip
            assert isinstance(page, tinytrack.GroupedHitsPage)
            return [(r["path"], r["views"]) for r in page.grouped_hits]

        assert await grouped() == raw_filtered(db_path, site.id, lo, hi, "US", "a.example")
        builds = engine._settled.builds
        clock.now = today * DAY + 7200
        await engine.record_hits(
            site.id, [tinytrack.HitIn(path="/new", country="US", referrer="https://a.example/")] * 7
        )
        answer = await grouped()
        assert answer == raw_filtered(db_path, site.id, lo, hi, "US", "a.example")
        assert ("/new", 7) in answer
        assert engine._settled.builds == builds  # live hits only: the kept part stays valid
        clock.now = (first_day + 2) * DAY + 7200  # late
        await engine.record_hits(
            site.id, [tinytrack.HitIn(path="/p0", country="US", referrer="https://a.example/")] * 30
        )
        clock.now = today * DAY + 7200
        answer = await grouped()
        assert answer == raw_filtered(db_path, site.id, lo, hi, "US", "a.example")
        assert answer[0][0] == "/p0"
        assert engine._settled.builds == builds + 1
