"""The single writer: one task owns the only write connection.

Requests put jobs on a queue and await a future. The writer drains whatever is queued (up to
``max_batch_rows`` hits) into ONE transaction: raw rows and their rollups together, then COMMIT,
then resolves every future. So a 2xx is only ever sent for a committed row, and concurrent
requests share one fsync-free WAL commit (group commit). When more than ``max_pending_rows``
hits wait, new work is refused with ``Overloaded`` (HTTP 503 + Retry-After) instead of growing
memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from tinytrack.engine import db, pyramid
from tinytrack.engine.rollups import DIMENSIONS, TOTAL
from tinytrack.errors import EngineClosed, Overloaded

log = logging.getLogger("tinytrack.writer")

T = TypeVar("T")


class HitRow(NamedTuple):
    """A fully enriched hit, ready to insert (field order = INSERT column order after id)."""

    site_id: int
    created_at: int
    path: str
    url: str | None
    referrer: str | None
    source: str | None
    country: str
    browser_name: str | None
    platform_name: str | None
    is_mobile: int
    user_agent: str | None
    unique_hash: str
    visitor_hash: str
    utc_day: int
    local_day: int


class Stored(NamedTuple):
    id: int
    is_unique: bool


INSERT_HIT = """
INSERT INTO hits (id, site_id, created_at, path, url, referrer, source, country, browser_name,
                  platform_name, is_mobile, user_agent, unique_hash, visitor_hash, is_unique)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Rollup value per dimension code, taken from a HitRow (None becomes '').
_DIM_FIELDS = sorted((code, column) for code, column in DIMENSIONS.values())

UPSERT_ROLLUP = """
INSERT INTO hit_rollups (site_id, dim, utc_day, local_day, value, hits, uniques)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site_id, dim, utc_day, local_day, value)
DO UPDATE SET hits = hits + excluded.hits, uniques = uniques + excluded.uniques
"""
MAX_HIT_ID = "SELECT COALESCE(MAX(id), 0) FROM hits"
RECENT_UNIQUE_HASHES = """
SELECT unique_hash, created_at / 86400 FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND is_unique = 1
"""
SITE_IDS = "SELECT id FROM sites"


@dataclass(eq=False)
class _HitJob:
    rows: list[HitRow]
    future: asyncio.Future[list[Stored]]


@dataclass(eq=False)
class _FnJob:
    fn: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any] | None
    rows: list[HitRow] = field(default_factory=list)
    after_commit: Callable[[], None] | None = None


_Job = _HitJob | _FnJob


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        lock: asyncio.Lock,
        max_batch_rows: int = 1000,
        max_pending_rows: int = 20_000,
    ) -> None:
        self._conn = conn
        self.lock = lock  # held around every transaction (readers of :memory: share it)
        self._max_batch = max_batch_rows
        self._max_pending = max_pending_rows
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._pending_rows = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Every rollup block ending before this UTC day is built (see pyramid.py); a hit on an
        # earlier day also updates its built blocks.
        self.blocks_complete_until = 0
        # UTC day -> unique hashes already counted that day. A hash embeds its day's salt, so
        # only today's and yesterday's can still recur; older days are dropped.
        self._seen: dict[int, set[str]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, today: int, *, blocks_complete_until: int) -> None:
        self.blocks_complete_until = blocks_complete_until
        await self._load_seen(today)
        self._task = asyncio.create_task(self._run(), name="tinytrack-writer")

    async def _load_seen(self, today: int) -> None:
        """Rebuild the set of unique hashes of today and yesterday after a restart."""
        start, end = (today - 1) * 86_400, (today + 2) * 86_400
        async with self._conn.execute(SITE_IDS) as cur:
            site_ids = [row[0] for row in await cur.fetchall()]
        for site_id in site_ids:
            async with self._conn.execute(RECENT_UNIQUE_HASHES, (site_id, start, end)) as cur:
                async for unique_hash, day in cur:
                    self._seen.setdefault(int(day), set()).add(unique_hash)

    async def close(self) -> None:
        """Stop taking work, commit everything already queued, stop. Safe to call twice."""
        if self._closing:
            if self._task is not None:
                await asyncio.shield(self._task)
            return
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # -- submitting work ------------------------------------------------------------------------

    def _check_open(self, rows: int) -> None:
        if self._closing or self._task is None:
            raise EngineClosed("tinytrack is shutting down")
        if self._pending_rows + rows > self._max_pending and self._pending_rows > 0:
            raise Overloaded("Too many writes queued; retry shortly", retry_after=1)

    async def insert_hits(self, rows: list[HitRow]) -> list[Stored]:
        """Queue rows and wait until they are committed; returns their ids and unique flags."""
        self._check_open(len(rows))
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._pending_rows += len(rows)
        self._queue.put_nowait(_HitJob(rows, future))
        return await future

    async def run(
        self,
        fn: Callable[[aiosqlite.Connection], Awaitable[T]],
        *,
        after_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run ``fn`` in its own write transaction, in queue order; returns its result.
        ``after_commit`` runs in the writer right after COMMIT, before any other job."""
        self._check_open(0)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_FnJob(fn, future, after_commit=after_commit))
        return await future

    def run_later(self, fn: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> None:
        """Fire-and-forget variant for bookkeeping (e.g. a key's last_used_at)."""
        if self._closing or self._task is None:
            return
        self._queue.put_nowait(_FnJob(fn, None))

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        stop = False
        while not stop:
            job = await self._queue.get()
            if job is None:
                break
            batch: list[_Job] = [job]
            rows = len(job.rows)
            while rows < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                rows += len(nxt.rows)
            await self._process(batch)
        # Drain whatever arrived between the stop marker and now (nothing new is accepted).
        leftovers: list[_Job] = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                leftovers.append(job)
        if leftovers:
            await self._process(leftovers)

    async def _process(self, batch: list[_Job]) -> None:
        run: list[_HitJob] = []
        for job in batch:
            if isinstance(job, _HitJob):
                run.append(job)
                continue
            if run:
                await self._commit_hit_jobs(run)
                run = []
            await self._commit_fn_job(job)
        if run:
            await self._commit_hit_jobs(run)

    async def _commit_fn_job(self, job: _FnJob) -> None:
        try:
            async with self.lock:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = await job.fn(self._conn)
                    await self._conn.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
                if job.after_commit is not None:
                    job.after_commit()
        except Exception as exc:
            if job.future is None:
                log.warning("background write failed: %s", exc)
            elif not job.future.done():
                job.future.set_exception(exc)
            return
        if job.future is not None and not job.future.done():
            job.future.set_result(result)

    async def _commit_hit_jobs(self, jobs: list[_HitJob]) -> None:
        try:
            results = await self._write_hits(jobs)
        except Exception as exc:
            if len(jobs) > 1:
                # Isolate the bad job: retry each on its own so one failure loses no other row.
                for job in jobs:
                    await self._commit_hit_jobs([job])
                return
            self._pending_rows -= len(jobs[0].rows)
            if not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        for job, stored in zip(jobs, results, strict=True):
            self._pending_rows -= len(job.rows)
            if not job.future.done():
                job.future.set_result(stored)

    async def _write_hits(self, jobs: list[_HitJob]) -> list[list[Stored]]:
        """One transaction for all queued hits: ids, unique flags, rows, rollups, COMMIT, all
        in one call on the connection's thread (the event loop is woken once per batch)."""
        complete_until = self.blocks_complete_until
        seen = self._seen

        def transaction(raw: sqlite3.Connection) -> tuple[list[list[Stored]], dict[int, set[str]]]:
            new_seen: dict[int, set[str]] = defaultdict(set)
            inserts: list[tuple[Any, ...]] = []
            rollups: dict[Any, list[int]] = {}
            blocks: dict[Any, list[int]] = {}
            results: list[list[Stored]] = []
            raw.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: another process (the CLI) may have inserted rows.
                next_id = int(raw.execute(MAX_HIT_ID).fetchone()[0])
                for job in jobs:
                    stored: list[Stored] = []
                    for hit in job.rows:
                        next_id += 1
                        day_seen = seen.get(hit.utc_day)
                        batch_seen = new_seen[hit.utc_day]
                        unique = hit.unique_hash not in batch_seen and (
                            day_seen is None or hit.unique_hash not in day_seen
                        )
                        if unique:
                            batch_seen.add(hit.unique_hash)
                        inserts.append((next_id, *hit[:13], int(unique)))
                        _add_rollups(rollups, hit, int(unique))
                        if hit.utc_day < complete_until:  # a late hit: its blocks may exist
                            _add_block_rollups(blocks, hit, int(unique), complete_until)
                        stored.append(Stored(next_id, unique))
                    results.append(stored)
                raw.executemany(INSERT_HIT, inserts)
                raw.executemany(UPSERT_ROLLUP, [(*k, v[0], v[1]) for k, v in rollups.items()])
                if blocks:
                    raw.executemany(
                        pyramid.UPSERT_BLOCK, [(*k, v[0], v[1]) for k, v in blocks.items()]
                    )
                raw.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise
            return results, new_seen

        async with self.lock:
            results, new_seen = await db.on_connection_thread(self._conn, transaction)
        self._remember(new_seen)
        return results

    def _remember(self, new_seen: dict[int, set[str]]) -> None:
        for day, hashes in new_seen.items():
            if hashes:
                self._seen.setdefault(day, set()).update(hashes)
        if len(self._seen) > 2:
            newest = max(self._seen)
            for day in [d for d in self._seen if d < newest - 1]:
                del self._seen[day]

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._conn.execute("ROLLBACK")


# (rollup code, HitRow index) for each dimension, resolved once instead of getattr per hit.
_DIM_INDEXES = tuple((code, HitRow._fields.index(column)) for code, column in _DIM_FIELDS)


def _add_rollups(acc: dict[Any, list[int]], hit: HitRow, unique: int) -> None:
    site, utc, local = hit[0], hit[13], hit[14]
    keys: list[Any] = [(site, TOTAL, utc, local, "")]
    keys += [(site, code, utc, local, hit[index] or "") for code, index in _DIM_INDEXES]
    _count(acc, keys, unique)


def _count(acc: dict[Any, list[int]], keys: list[Any], unique: int) -> None:
    """Add one hit (and its unique flag) to each key's [hits, uniques] in this batch."""
    for key in keys:
        slot = acc.get(key)
        if slot is None:
            acc[key] = [1, unique]
        else:
            slot[0] += 1
            slot[1] += unique


def _add_block_rollups(
    acc: dict[tuple[int, int, int, int, int, str], list[int]],
    hit: HitRow,
    unique: int,
    complete_until: int,
) -> None:
    for level in pyramid.LEVELS:
        size = pyramid.BLOCK_DAYS[level]
        block = hit.utc_day // size
        if not pyramid.block_end(level, block) < complete_until:
            continue  # not built yet: it will be built from the daily rows, hit included
        local = hit.local_day // size
        values = [(TOTAL, "")]
        values += [(code, str(hit[index] or "")) for code, index in _DIM_INDEXES]
        _count(acc, [(hit.site_id, code, level, block, local, v) for code, v in values], unique)
