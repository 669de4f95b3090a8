"""The rollup pyramid: plans cover ranges exactly, and grouped results stay equal to raw SQL
while blocks are built at random moments and late hits land in already-built blocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FakeClock
from tests.test_rollups_equal_raw import assert_grouped_equal_raw
from tinytrack.engine import pyramid

START = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
WINDOW_DAYS = 200


@given(
    first=st.integers(20_000, 20_400),
    length=st.integers(0, 800),
    watermark=st.integers(19_900, 21_300),
    local=st.booleans(),
)
def test_plan_covers_the_range_exactly_with_built_blocks(
    first: int, length: int, watermark: int, local: bool
) -> None:
    last = first + length
    covered: list[int] = []
    for level, lo, hi in pyramid.plan(first, last, watermark, local=local):
        for number in range(lo, hi + 1):
            if level == 0:
                covered.append(number)
            else:
                assert pyramid.built(level, number, watermark, local=local)
                size = pyramid.BLOCK_DAYS[level]
                covered.extend(range(number * size, (number + 1) * size))
    assert covered == list(range(first, last + 1))


def test_plan_uses_few_segments_for_a_year() -> None:
    segments = pyramid.plan(20_415, 20_779, 20_780, local=False)
    assert len(segments) <= 7
    assert sum(hi - lo + 1 for level, lo, hi in segments if level == 0) <= 6


event = st.fixed_dictionaries(
    {
        "day": st.integers(0, WINDOW_DAYS - 1),
        "hour": st.integers(0, 23),
        "path": st.sampled_from(["/", "/a", "/b"]),
        "country": st.sampled_from(["US", "PL", None]),
        "referrer": st.sampled_from([None, "https://google.com/", "https://t.co/x"]),
        "copies": st.integers(1, 3),
        "compact": st.booleans(),
        # Query in between: grouped totals of the settled past are kept between queries, so
        # later (live or late) hits must show in the next answer.
        "query": st.integers(0, 3).map(lambda n: n == 0),
    }
)


async def check(
    db: Path, tz: str, events: list[dict[str, object]], ranges: list[tuple[int, int]]
) -> None:
    clock = FakeClock(START.timestamp())
    latest = START.timestamp()
    async with tinytrack.open(db, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone=tz)
        # Events arrive in the generated order: a later event on an earlier day is a late hit.
        for e in events:
            ts = START.timestamp() + int(e["day"]) * 86400 + int(e["hour"]) * 3600  # type: ignore[call-overload]
            if e["compact"]:
                clock.now = latest
                await engine.compact_rollups()
            clock.now = ts
            latest = max(latest, ts)
            hit = tinytrack.HitIn(
                path=str(e["path"]),
                country=e["country"],
                referrer=e["referrer"],  # type: ignore[arg-type]
            )
            await engine.record_hits(site.id, [hit] * int(e["copies"]))  # type: ignore[call-overload]
            if e["query"]:
                for a, b in ranges:
                    start = START.date() + dt.timedelta(days=a)
                    end = START.date() + dt.timedelta(days=b)
                    await assert_grouped_equal_raw(engine, db, site, tz, start, end)
        for final_compaction in (False, True):
            clock.now = START.timestamp() + (WINDOW_DAYS + 1) * 86400
            if final_compaction:
                assert engine._writer.blocks_complete_until <= clock.now // 86400
                await engine.compact_rollups()
                assert engine._writer.blocks_complete_until == clock.now // 86400
            for a, b in ranges:
                start = START.date() + dt.timedelta(days=a)
                end = START.date() + dt.timedelta(days=b)
                await assert_grouped_equal_raw(engine, db, site, tz, start, end)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tz=st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati"]),
    events=st.lists(event, min_size=1, max_size=40),
    ranges=st.lists(
        st.tuples(st.integers(-3, WINDOW_DAYS + 2), st.integers(-3, WINDOW_DAYS + 2)).map(
            lambda t: (min(t), max(t))
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_grouped_results_equal_raw_sql_with_blocks_and_late_hits(
    tz: str, events: list[dict[str, object]], ranges: list[tuple[int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(check(Path(tmp) / "t.db", tz, events, ranges))


async def test_blocks_are_used_once_built(db_path: Path, clock: FakeClock) -> None:
    clock.now = START.timestamp()
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        for day in range(0, 150, 3):
            clock.now = START.timestamp() + day * 86400
            await engine.record_hit(site.id, tinytrack.HitIn(path=f"/d{day % 7}"))
        assert await engine.compact_rollups() > 0
        first = clock.now // 86400 - 140
        plan = pyramid.plan(
            int(first),
            int(clock.now // 86400) - 1,
            engine._writer.blocks_complete_until,
            local=False,
        )
        assert any(level == 3 for level, _, _ in plan)
        assert await engine.compact_rollups() == 0  # nothing new to build


async def test_local_block_waits_for_the_next_utc_block(db_path: Path, clock: FakeClock) -> None:
    """Los Angeles: 03:00 UTC on the first day of UTC block k is still local block k-1. While
    block k is unbuilt, a user-mode query must not read local block k-1 from the pyramid."""
    day = 20_500  # first day of level-1 block 5125 (4-day blocks)
    clock.now = (day - 4) * 86400 + 12 * 3600
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone="America/Los_Angeles")
        await engine.record_hit(site.id, tinytrack.HitIn(path="/early"))
        clock.now = day * 86400 + 3 * 3600
        await engine.record_hit(site.id, tinytrack.HitIn(path="/late-evening"))
        clock.now = (day + 1) * 86400
        await engine.compact_rollups()
        assert engine._writer.blocks_complete_until == day + 1
        start, end = tinytrack_day(day - 4), tinytrack_day(day - 1)
        page = await engine.hits(
            site.id, start_date=start, end_date=end, time_zone="user", grouped=True
        )
        assert isinstance(page, tinytrack.GroupedHitsPage)
        assert {r["path"] for r in page.grouped_hits} == {"/early", "/late-evening"}


def tinytrack_day(number: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=number)
