"""The single writer: group commit, draining on close, isolation of a failing job."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import tinytrack
from tests.conftest import FakeClock
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
