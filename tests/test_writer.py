"""The single writer: group commit, draining on close, isolation of a failing job."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FakeClock
from tinytrack.engine import clock, fold
from tinytrack.engine.writer import HitRow


async def test_concurrent_hits_share_commits_and_all_land(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        await engine.record_hit(site.id, tinytrack.HitIn(path="/warm"))
        commits = 0
        original = engine._writer._write_hits

        async def counting(jobs: list) -> list:  # type: ignore[type-arg]
            nonlocal commits
            commits += 1
            return await original(jobs)

        engine._writer._write_hits = counting  # type: ignore[method-assign]
        results = await asyncio.gather(
            *(engine.record_hit(site.id, tinytrack.HitIn(path=f"/p{i}")) for i in range(300))
        )
        assert all(isinstance(r, tinytrack.HitCreated) for r in results)
        ids = [r.hit.id for r in results if isinstance(r, tinytrack.HitCreated)]
        assert len(set(ids)) == 300
        assert commits < 300 / 5  # group commit: many requests per transaction
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0] == 301
    conn.close()


async def test_close_commits_everything_already_queued(db_path: Path, clock: FakeClock) -> None:
    engine = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    site = await engine.create_site("https://example.com")
    await engine.record_hit(site.id, tinytrack.HitIn(path="/warm"))
    pending = [
        asyncio.create_task(engine.record_hit(site.id, tinytrack.HitIn(path=f"/p{i}")))
        for i in range(50)
    ]
    await asyncio.sleep(0)  # let them enqueue
    await engine.close()
    await engine.close()  # safe twice
    done = await asyncio.gather(*pending)
    assert all(isinstance(r, tinytrack.HitCreated) for r in done)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0] == 51
    conn.close()
    with pytest.raises(tinytrack.EngineClosed):
        await engine.record_hit(site.id, tinytrack.HitIn(path="/late"))


async def test_a_failing_job_does_not_take_others_down(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        good = HitRow(
            site.id,
            int(clock.now),
            "/ok",
            None,
            None,
            None,
            "XX",
            None,
            None,
            0,
            None,
            "u1",
            "v1",
            20000,
            20000,
        )
        bad = good._replace(site_id=9999, path="/orphan")  # violates the foreign key
        writer = engine._writer
        async with writer.lock:  # hold commits so both jobs land in one batch
            t_good = asyncio.create_task(writer.insert_hits([good]))
            t_bad = asyncio.create_task(writer.insert_hits([bad]))
            await asyncio.sleep(0.05)
        stored = await t_good
        with pytest.raises(sqlite3.IntegrityError):
            await t_bad
        assert stored[0].id > 0
        assert writer.pending_rows == 0
    conn = sqlite3.connect(db_path)
    assert [r[0] for r in conn.execute("SELECT path FROM hits")] == ["/ok"]
    conn.close()


async def test_memory_database_works_like_a_file() -> None:
    async with tinytrack.open(":memory:") as engine:
        site = await engine.create_site("https://example.com")
        results = await asyncio.gather(
            *(engine.record_hit(site.id, tinytrack.HitIn(path="/m")) for _ in range(20)),
            engine.hits(site.id, grouped=True),
        )
        assert len(results) == 21
        page = await engine.hits(site.id, grouped=True)
        assert isinstance(page, tinytrack.GroupedHitsPage)
        assert page.grouped_hits[0]["views"] == 20


@pytest.mark.parametrize(
    "item",
    [
        tinytrack.TrackIn(kind="pageview", path="/a", visitor_id="v", session_timeout=1800,
                          referrer="https://news.example/", referrer_once=True,
                          visitor_properties={"plan": "pro"}, session_properties={"ab": "b"}),
        tinytrack.TrackIn(kind="goal", goal="Signed up", revenue=9.5, visitor_id="v",
                          session_timeout=1800),
        tinytrack.TrackIn(kind="event", event="video.play", visitor_id="v", session_timeout=60),
    ],
)  # fmt: skip
async def test_a_tracked_action_that_fails_at_its_insert_leaves_nothing(
    engine: tinytrack.Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch, item: Any
) -> None:
    """Sessions, goals and properties are written in the transaction of the hit or event they
    come with: when its insert fails, none of them stays (a retry must not count twice)."""
    from tinytrack.engine import writer

    site = await engine.create_site("https://example.com")
    monkeypatch.setattr(writer, "INSERT_HIT", "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(writer, "INSERT_EVENT", "INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(sqlite3.OperationalError):
        await engine.track(site.id, item)
    tables = ("hits", "events", "sessions", "goals", "visitor_properties")
    with sqlite3.connect(db_path) as conn:
        assert {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables} == (
            dict.fromkeys(tables, 0)
        )
    monkeypatch.undo()
    done = await engine.track(site.id, item)  # the retry is the first and only record
    assert done.status == "created" and done.session_id == 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT id, actions FROM sessions").fetchall() == [
            (1, 0 if item.kind == "goal" else 1)
        ]


ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Warsaw",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
]


@given(
    st.sampled_from(ZONES),
    # around 2026's DST changes (March/April, October/November) and any day of the decade
    st.one_of(
        st.integers(20_520, 20_560), st.integers(20_720, 20_760), st.integers(18_000, 22_000)
    ),
    st.lists(st.integers(0, 86_399), min_size=1, max_size=20),
)
def test_the_fold_maps_every_instant_to_its_local_day(
    tz: str, utc_day: int, offsets: list[int]
) -> None:
    """The fold counts hits by (UTC day, local day) through fold.local_parts: its pieces
    tile the UTC day and give each instant the local day the raw-row queries give it."""
    parts = fold.local_parts(tz, utc_day)
    start = utc_day * 86_400
    assert parts[0][1] == start and parts[-1][2] == start + 86_400
    for (_, _, end, _), (_, nxt, _, _) in itertools.pairwise(parts):
        assert end == nxt
    assert all(p[0] == utc_day and p[1] < p[2] for p in parts)
    for offset in offsets:
        ts = start + offset
        (local,) = [p[3] for p in parts if p[1] <= ts < p[2]]
        assert local == clock.local_day(tz, ts)
