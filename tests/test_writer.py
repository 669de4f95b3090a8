"""The single writer: group commit, draining on close, isolation of a failing job."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FakeClock
from tinytrack.engine import pyramid, rollups
from tinytrack.engine import writer as writer_mod
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


@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2]),  # site
            st.sampled_from([(20_000, 20_000), (20_000, 19_999), (20_001, 20_001)]),
            st.sampled_from(["/", "/a", "/é"]),
            st.sampled_from([None, "", "https://t.co/"]),  # referrer: None and '' are one value
            st.sampled_from([None, "google"]),
            st.sampled_from(["US", "PL"]),
            st.sampled_from([None, "Safari"]),
            st.integers(0, 1),  # unique
        ),
        max_size=40,
    )
)
def test_bulk_rollup_counts_equal_counting_hit_by_hit(
    specs: list[tuple[int, tuple[int, int], str, str | None, str | None, str, str | None, int]],
) -> None:
    hits: list[HitRow] = []
    uniques: list[int] = []
    for site, (utc, local), path, referrer, source, country, browser, unique in specs:
        hits.append(
            HitRow(
                site,
                utc * 86400,
                path,
                None,
                referrer,
                source,
                country,
                browser,
                None,
                0,
                None,
                "u",
                "v",
                utc,
                local,
            )
        )
        uniques.append(unique)
    day_rows, all_time = writer_mod._hit_rollup_rows(hits, uniques)
    expected: dict[tuple[object, ...], list[int]] = {}
    expected_all: dict[tuple[object, ...], list[int]] = {}
    for hit, unique in zip(hits, uniques, strict=True):
        keys = [(hit.site_id, rollups.TOTAL, hit.utc_day, hit.local_day, "")]
        for code, column in rollups.DIMENSIONS.values():
            value = getattr(hit, column) or ""
            keys.append((hit.site_id, code, hit.utc_day, hit.local_day, value))
        for key in keys:
            slot = expected.setdefault(key, [0, 0])
            slot[0] += 1
            slot[1] += unique
        path_key = (hit.site_id, rollups.DIMENSIONS["path"][0], pyramid.ALL_TIME, 0, 0, hit.path)
        slot = expected_all.setdefault(path_key, [0, 0])
        slot[0] += 1
        slot[1] += unique
    got = {row[:5]: [row[5], row[6]] for row in day_rows}
    assert len(got) == len(day_rows)  # one row per key
    assert got == expected
    got_all = {row[:6]: [row[6], row[7]] for row in all_time}
    assert len(got_all) == len(all_time)
    assert got_all == expected_all
