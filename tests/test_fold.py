"""Hits are folded into the rollups after their commit (writer.py): no answer may miss an
acknowledged hit, and no hit may be counted twice, whoever folds and whenever."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tinytrack
from tests.conftest import FakeClock
from tinytrack.engine import fold

PATHS = ["/", "/a", "/b", "/c"]


@contextlib.asynccontextmanager
async def opened(db: Path, clock: FakeClock) -> AsyncIterator[tinytrack.Engine]:
    """An engine without its background maintenance, whose write jobs would fold at random."""
    engine = await tinytrack.Engine.open(db, clock=clock, maintenance=False)
    try:
        yield engine
    finally:
        await engine.close()


def hold_folds(engine: tinytrack.Engine) -> None:
    """Make the writer fold only when it must (a read, a write job, closing), never on its own
    timers, so the tests see hits that are committed but not folded."""
    engine._writer._fold_seconds = 3600
    engine._writer._fold_idle = 3600
    engine._writer._fold_rows = 10**9


def raw_paths(db: Path, site_id: int) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT path FROM hits WHERE site_id = ?", (site_id,)).fetchall()
    return dict(Counter(path for (path,) in rows))


def rolled_paths(db: Path, site_id: int) -> dict[str, int]:
    """What the rollup table itself holds, read without the engine."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT value, SUM(hits) FROM hit_rollups WHERE site_id = ? AND dim = 1 GROUP BY 1",
            (site_id,),
        ).fetchall()
    return {value: total for value, total in rows}


async def grouped_paths(engine: tinytrack.Engine, site_id: int) -> dict[str, int]:
    page = await engine.hits(site_id, grouped=True, group_by="path", per_page=1000)
    assert isinstance(page, tinytrack.GroupedHitsPage)
    return {row["path"]: row["views"] for row in page.grouped_hits}


async def record(engine: tinytrack.Engine, site_id: int, paths: list[str]) -> None:
    for path in paths:
        result = await engine.record_hit(site_id, tinytrack.HitIn(path=path))
        assert isinstance(result, tinytrack.HitCreated)


async def test_a_read_counts_every_acknowledged_hit_not_folded_yet(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as engine:
        hold_folds(engine)
        site = await engine.create_site("https://example.com")
        await record(engine, site.id, PATHS * 3)
        assert engine._writer.unfolded
        assert rolled_paths(db_path, site.id) == {}  # committed, not folded: the test's premise
        assert await grouped_paths(engine, site.id) == raw_paths(db_path, site.id)
        assert not engine._writer.unfolded
        assert (await engine.get_site(site.id)).lifetime_hits == 12
        await record(engine, site.id, ["/a"])
        assert (await grouped_paths(engine, site.id))["/a"] == 4
    assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)  # closing folds


async def test_what_a_crash_left_unfolded_is_folded_on_open(
    db_path: Path, clock: FakeClock
) -> None:
    engine = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    hold_folds(engine)
    site = await engine.create_site("https://example.com")
    await record(engine, site.id, PATHS * 2)
    # A crash: the writer's task and connections go away without closing the engine.
    assert engine._writer._task is not None
    engine._writer._task.cancel()
    with contextlib.suppress(BaseException):
        await engine._writer._task
    await engine._readers.close()
    await engine._conn.close()
    assert rolled_paths(db_path, site.id) == {}
    assert sum(raw_paths(db_path, site.id).values()) == 8

    async with opened(db_path, clock) as engine:
        assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)  # before any read
        await record(engine, site.id, ["/b"])
        assert await grouped_paths(engine, site.id) == raw_paths(db_path, site.id)
    assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)


async def test_two_engines_on_one_file_never_count_a_hit_twice_or_miss_one(
    db_path: Path, clock: FakeClock
) -> None:
    """Another process (the CLI importing, a second server) writes the same file: each writer's
    unfolded hits are no longer the only ones above the fold mark."""
    async with (
        opened(db_path, clock) as first,
        opened(db_path, clock) as second,
    ):
        hold_folds(first)
        hold_folds(second)
        site = await first.create_site("https://example.com")
        await record(first, site.id, ["/", "/a"])
        await record(second, site.id, ["/b", "/b", "/c"])
        await record(first, site.id, ["/a"])  # first's unfolded ids now have second's between
        expected = {"/": 1, "/a": 2, "/b": 2, "/c": 1}
        assert await grouped_paths(first, site.id) == expected  # folds second's hits too
        assert second._writer.unfolded  # second still holds its (already folded) hits
        await record(second, site.id, ["/c"])
        expected["/c"] += 1
        assert await grouped_paths(second, site.id) == expected
        assert await grouped_paths(first, site.id) == expected
    assert rolled_paths(db_path, site.id) == expected


async def test_hit_ids_are_never_reused_below_the_fold_mark(
    db_path: Path, clock: FakeClock
) -> None:
    """The newest hits can be deleted with their site; a new hit taking one of their ids
    (MAX(id) + 1) would sit below the fold mark and never be counted."""
    async with opened(db_path, clock) as engine:
        hold_folds(engine)
        kept = await engine.create_site("https://kept.example")
        gone = await engine.create_site("https://gone.example")
        await record(engine, kept.id, ["/"])
        await record(engine, gone.id, ["/x", "/y"])
        await engine.delete_site(gone.id)  # folds first, then deletes the newest hits
        await record(engine, kept.id, ["/a"])
        assert await grouped_paths(engine, kept.id) == {"/": 1, "/a": 1}
    assert rolled_paths(db_path, kept.id) == {"/": 1, "/a": 1}


async def test_a_file_from_before_folding_keeps_its_counts(db_path: Path, clock: FakeClock) -> None:
    """Schema 7 starts the fold mark at the newest hit: every older hit was counted in its own
    transaction and must not be folded again."""
    async with opened(db_path, clock) as engine:
        site = await engine.create_site("https://example.com")
        await record(engine, site.id, PATHS)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("DELETE FROM meta WHERE key = 'rollups_folded_until'")
        conn.execute("PRAGMA user_version = 6")
    async with opened(db_path, clock) as engine:
        await record(engine, site.id, ["/a"])
        assert await grouped_paths(engine, site.id) == {"/": 1, "/a": 2, "/b": 1, "/c": 1}
    assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)


async def test_a_failed_fold_loses_nothing_and_the_next_one_counts_it(
    db_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with opened(db_path, clock) as engine:
        hold_folds(engine)
        site = await engine.create_site("https://example.com")
        await record(engine, site.id, ["/", "/a"])
        real = fold.fold_all

        def broken(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(fold, "fold_all", broken)
        # The read is answered from the last fold (nothing here) instead of failing.
        assert await grouped_paths(engine, site.id) == {}
        assert "folding hits into the rollups failed" in caplog.text
        monkeypatch.setattr(fold, "fold_all", real)
        assert await grouped_paths(engine, site.id) == {"/": 1, "/a": 1}
    assert rolled_paths(db_path, site.id) == {"/": 1, "/a": 1}


async def test_left_alone_the_writer_folds_beside_its_commits(
    db_path: Path, clock: FakeClock
) -> None:
    """No read asks: the writer's own trigger computes the fold on its second connection."""
    async with opened(db_path, clock) as engine:
        engine._writer._fold_idle = 0.01
        assert engine._writer._fold_conn is not None
        site = await engine.create_site("https://example.com")
        await record(engine, site.id, PATHS * 5)
        for _ in range(500):
            if not engine._writer.unfolded:
                break
            await asyncio.sleep(0.01)
        assert not engine._writer.unfolded
        assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)


def computed_aside(db: Path) -> fold.Fold:
    """A fold computed on a connection of its own, as the writer's second connection does."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        computed = fold.compute(conn)
        conn.execute("COMMIT")
    return computed


def apply_aside(db: Path, computed: fold.Fold) -> bool:
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        applied = fold.apply(conn, computed)
        conn.execute("COMMIT")
    return applied


async def test_a_fold_computed_before_another_fold_is_dropped(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as engine:
        hold_folds(engine)
        site = await engine.create_site("https://example.com")
        await record(engine, site.id, PATHS)
        stale = computed_aside(db_path)
        assert stale.top > stale.after and stale.day_rows
        await engine._writer.fold()
        assert not apply_aside(db_path, stale)  # the mark moved: it would count them twice
        assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)
        await record(engine, site.id, ["/a"])
        fresh = computed_aside(db_path)
        assert apply_aside(db_path, fresh)
        assert rolled_paths(db_path, site.id) == raw_paths(db_path, site.id)


async def test_a_fold_computed_before_a_site_is_deleted_never_counts_its_hits(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as engine:
        hold_folds(engine)
        kept = await engine.create_site("https://kept.example")
        gone = await engine.create_site("https://gone.example")
        await record(engine, kept.id, ["/"])
        await engine._writer.fold()
        await record(engine, gone.id, ["/x", "/y"])  # unfolded when the site goes
        stale = computed_aside(db_path)
        assert stale.top > stale.after
        await engine.delete_site(gone.id)
        assert not apply_aside(db_path, stale)
        assert rolled_paths(db_path, gone.id) == {}
        assert rolled_paths(db_path, kept.id) == {"/": 1}


async def test_a_late_hit_another_process_folds_after_a_read_is_not_missed(
    db_path: Path, clock: FakeClock
) -> None:
    """Kept settled totals (settled.py) built from the rollups between a late hit's commit and
    its fold must not outlive the fold: the fold bumps the settled version too."""
    day, first_day = 86_400, 20_400
    clock.now = first_day * day + 3600
    async with opened(db_path, clock) as engine:
        site = await engine.create_site("https://example.com")
        for n in range(10):
            clock.now = (first_day + n) * day + 3600
            hits = [tinytrack.HitIn(path="/", referrer=f"https://r{n % 3}.example/")]
            await engine.record_hits(site.id, hits * (n + 1))
        await engine.compact_rollups()
        today = first_day + 9
        # From a day inside the first 4-day block, which the range cannot use whole: that day
        # is read from its daily rows, which only the fold brings the late hits to.
        start = dt.date(1970, 1, 1) + dt.timedelta(days=first_day + 3)
        end = dt.date(1970, 1, 1) + dt.timedelta(days=today)

        async def grouped() -> dict[str, int]:
            page = await engine.hits(
                site.id, start_date=start, end_date=end, grouped=True, group_by="referrer"
            )
            assert isinstance(page, tinytrack.GroupedHitsPage)
            return {row["referrer"]: row["hit_count"] for row in page.grouped_hits}

        before = await grouped()
        clock.now = (first_day + 3) * day  # a settled day, read from its daily rows
        other = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
        try:
            hold_folds(other)
            late = [tinytrack.HitIn(path="/", referrer="https://late.example/")] * 5
            await other.record_hits(site.id, late)
            clock.now = today * day + 7200
            # This engine cannot know another process's unfolded hits: the lag the README
            # states. It keeps the totals it grouped, at the version the late hits set.
            assert await grouped() == before
        finally:
            await other.close()  # folds
        assert await grouped() == {**before, "https://late.example/": 5}
