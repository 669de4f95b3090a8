"""The single writer: one task owns the only write connection.

Requests put jobs on a queue and await a future. The writer drains whatever is queued (up to
``max_batch_rows`` hits) into ONE transaction: the raw rows, then COMMIT, then resolves every
future. So a 2xx is only ever sent for a committed row, and concurrent requests share one
fsync-free WAL commit (group commit). When more than ``max_pending_rows`` hits wait, new work is
refused with ``Overloaded`` (HTTP 503 + Retry-After) instead of growing memory without bound.

Hits are folded into the daily rollups (and the all-time path totals) by a separate, later
transaction: the *fold*. Why not in the hit's own transaction: the upserts made every group
commit longer, and with the event loop and this thread sharing one GIL that latency capped
single-hit ingest at ~0.6 of a bare Litestar app; without it the same server reaches ~0.9
(benchmarks/bench_single_breakdown.py). Folding a second's hits at once also counts each
repeated key once. What keeps answers exact:

* meta ``rollups_folded_until`` is the highest hit id folded; it moves in the fold's own
  transaction, so every hit is folded exactly once, and a hit id is never reused below it.
* The fold reads nothing but committed state: the hits this writer committed since the last
  fold when they are exactly the ids above the mark, else the raw rows above the mark (after a
  crash, or when another process wrote too). ``Engine.open`` folds what a crash left.
* Before any read that may touch rollups, ``Engine`` waits for a fold of this writer's unfolded
  hits (``unfolded`` / ``fold``), and every other write job runs after one; so no answer, and
  no rebuild or deletion, ever misses an acknowledged hit.
* Left alone, the writer folds after ``fold_idle_seconds`` without work, at the latest every
  ``fold_seconds`` under load, or when ``fold_rows`` hits wait.
Events and back-dated hits' rollup blocks are still kept in the rows' own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from tinytrack.engine import clock, db, journeys, pyramid, settled
from tinytrack.engine.rollups import DIMENSIONS, EVENT_DIMENSIONS, EVENT_TOTAL, TOTAL
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


class EventRow(NamedTuple):
    """A fully enriched event, ready to insert (field order = INSERT column order after id,
    with is_unique inserted after visitor_hash)."""

    site_id: int
    created_at: int
    name: str
    value: str | None
    path: str | None
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
    properties: str | None  # JSON object
    revenue_micros: int | None
    currency: str | None
    order_id: str | None
    utc_day: int
    local_day: int


class Stored(NamedTuple):
    id: int
    is_unique: bool
    duplicate: bool = False  # an event whose order_id was already recorded (id = the first)


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
INSERT_EVENT = """
INSERT INTO events (id, site_id, created_at, name, value, path, url, referrer, source, country,
                    browser_name, platform_name, is_mobile, user_agent, unique_hash, visitor_hash,
                    is_unique, properties, revenue_micros, currency, order_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
EVENT_BY_ORDER = "SELECT id FROM events WHERE site_id = ? AND order_id = ?"
FOLDED_KEY = "rollups_folded_until"
_FOLDED = f"COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{FOLDED_KEY}'), 0)"
# Never below the fold mark: a hit id at or under it would never be folded (the newest hits
# can be deleted with their site, and ids are MAX(id) + 1).
MAX_HIT_ID = f"SELECT MAX(COALESCE((SELECT MAX(id) FROM hits), 0), {_FOLDED})"
FOLD_BOUNDS = f"SELECT {_FOLDED}, COALESCE((SELECT MAX(id) FROM hits), 0)"
SET_FOLDED = (
    f"INSERT INTO meta (key, value) VALUES ('{FOLDED_KEY}', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
UNFOLDED_HITS = """
SELECT h.site_id, h.created_at, h.path, h.referrer, h.source, h.country, h.browser_name,
       h.platform_name, h.is_unique, s.timezone
FROM hits h JOIN sites s ON s.id = h.site_id
WHERE h.id > ? AND h.id <= ?
"""
FOLD_CHUNK = 100_000  # hit ids per pass when folding from the raw rows
BLOCKS_WATERMARK = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'blocks_complete_until'"
MAX_EVENT_ID = "SELECT COALESCE(MAX(id), 0) FROM events"
RECENT_UNIQUE_HASHES = """
SELECT unique_hash, created_at / 86400 FROM hits
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND is_unique = 1
"""
RECENT_EVENT_UNIQUE_HASHES = """
SELECT unique_hash, created_at / 86400 FROM events
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND is_unique = 1
"""
SITE_IDS = "SELECT id FROM sites"


Seen = dict[str, None]  # a day's counted unique hashes (see Writer._seen)

# Run first inside the job's write transaction, on the writer's thread; returns the rows to
# insert (as many as were queued), so bookkeeping the rows depend on (sessions, goals) commits
# together with them or not at all.
Before = Callable[[sqlite3.Connection], list[Any]]


@dataclass(eq=False)
class _HitJob:
    rows: list[HitRow]
    future: asyncio.Future[list[Stored]]
    uniques: list[int] | None = None  # given unique flags (restoring an export) or computed
    before: Before | None = None


@dataclass(eq=False)
class _EventJob:
    rows: list[EventRow]
    future: asyncio.Future[list[Stored]]
    uniques: list[int] | None = None
    before: Before | None = None


@dataclass(eq=False)
class _FoldJob:
    future: asyncio.Future[None]
    rows: tuple[()] = ()


@dataclass(eq=False)
class _FnJob:
    fn: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any] | None
    rows: list[HitRow] = field(default_factory=list)
    after_commit: Callable[[], None] | None = None


_RowJob = _HitJob | _EventJob
_Job = _HitJob | _EventJob | _FnJob | _FoldJob


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        lock: asyncio.Lock,
        # 4,000: four concurrent 1,000-hit batch requests share one transaction, so COMMIT,
        # the rollup upserts (keys repeat across requests) and the pages written are paid once;
        # measured with bench_ingest_batch.py (A/B, same machine): 36.7k/37.2k hits/s with
        # 1,000 against 42.7k/41.1k. A single hit still commits as soon as the writer is free.
        max_batch_rows: int = 4000,
        max_pending_rows: int = 20_000,
        fold_seconds: float = 1.0,
        fold_idle_seconds: float = 0.05,
        fold_rows: int = 50_000,
    ) -> None:
        self._conn = conn
        self.lock = lock  # held around every transaction (readers of :memory: share it)
        self._max_batch = max_batch_rows
        self._max_pending = max_pending_rows
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._pending_rows = 0
        self.rows_committed = 0  # hits and events so far: how busy ingestion is (exports yield)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Every rollup block ending before this UTC day is built (see pyramid.py); a hit on an
        # earlier day also updates its built blocks.
        self.blocks_complete_until = 0
        # Every UTC day with built journeys is before this day (see journeys.py); a hit on an
        # earlier day drops its day's built journeys, to be rebuilt.
        self.journeys_built_until = 0
        # UTC day -> unique hashes already counted that day (hits and events apart). A hash
        # embeds its day's salt, so only today's and yesterday's can recur; older days go.
        # Dicts of hash -> None, not sets: a dict holding only strings is not tracked by the
        # garbage collector, while a set is, and every full collection walked millions of
        # hashes on a busy day (measured: 15% of a batch-ingest server's wall time in GC).
        self._seen: dict[int, Seen] = {}
        self._seen_events: dict[int, Seen] = {}
        self._fold_seconds = fold_seconds
        self._fold_idle = fold_idle_seconds
        self._fold_rows = fold_rows
        # Hits committed by this writer and not folded yet: ids tail_first .. tail_first +
        # len - 1 (contiguous unless tail_gap), with their unique flags (see the docstring).
        self._tail: list[HitRow] = []
        self._tail_uniques: list[int] = []
        self._tail_first = 0
        self._tail_gap = False  # another writer's ids in between, or the tail was dropped
        self._tail_since = 0.0  # monotonic time of the oldest unfolded hit

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, today: int, *, blocks_complete_until: int, journeys_built_until: int = 0
    ) -> None:
        self.blocks_complete_until = blocks_complete_until
        self.journeys_built_until = journeys_built_until
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
                    self._seen.setdefault(int(day), {})[unique_hash] = None
            async with self._conn.execute(RECENT_EVENT_UNIQUE_HASHES, (site_id, start, end)) as cur:
                async for unique_hash, day in cur:
                    self._seen_events.setdefault(int(day), {})[unique_hash] = None

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

    async def insert_hits(
        self, rows: list[HitRow], *, uniques: list[int] | None = None, before: Before | None = None
    ) -> list[Stored]:
        """Queue rows and wait until they are committed; returns their ids and unique flags.
        ``uniques`` gives the flags instead of computing them (restoring exported rows of past
        days, whose hashes the writer no longer holds in memory). ``before(conn)``, if given,
        runs first in the same transaction and returns the rows to insert instead (as many);
        what it raises fails this call alone, with nothing of it written."""
        self._check_open(len(rows))
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._pending_rows += len(rows)
        self._queue.put_nowait(_HitJob(rows, future, uniques, before))
        return await future

    async def insert_events(
        self,
        rows: list[EventRow],
        *,
        uniques: list[int] | None = None,
        before: Before | None = None,
    ) -> list[Stored]:
        """Queue events and wait until committed; a repeated order id is not inserted again
        (its ``Stored`` has ``duplicate=True`` and the first event's id). ``before`` as for
        ``insert_hits``."""
        self._check_open(len(rows))
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._pending_rows += len(rows)
        self._queue.put_nowait(_EventJob(rows, future, uniques, before))
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

    @property
    def unfolded(self) -> bool:
        """True while hits this writer committed are not in the rollups yet."""
        return bool(self._tail) or self._tail_gap

    async def fold(self) -> None:
        """Fold every committed hit not in the rollups yet (this writer's, and any another
        process or a crash left), after the jobs queued before this call."""
        self._check_open(0)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_FoldJob(future))
        await future

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        stop = False
        while not stop:
            if self._tail and self._queue.empty():
                try:
                    job = await asyncio.wait_for(self._queue.get(), self._fold_idle)
                except TimeoutError:  # idle: fold now rather than when someone reads
                    await self._fold()
                    continue
            else:
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
            if self._tail and (
                len(self._tail) >= self._fold_rows
                or time.monotonic() - self._tail_since >= self._fold_seconds
            ):
                await self._fold()
        # Drain whatever arrived between the stop marker and now (nothing new is accepted).
        leftovers: list[_Job] = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                leftovers.append(job)
        if leftovers:
            await self._process(leftovers)
        if self.unfolded:
            await self._fold()

    async def _process(self, batch: list[_Job]) -> None:
        run: list[_RowJob] = []
        for job in batch:
            if isinstance(job, _HitJob | _EventJob):
                run.append(job)
                continue
            if run:
                await self._commit_hit_jobs(run)
                run = []
            if isinstance(job, _FoldJob):
                await self._fold()
                if not job.future.done():
                    job.future.set_result(None)
                continue
            if self.unfolded:  # what the job reads or deletes must include every hit
                await self._fold()
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

    async def _commit_hit_jobs(self, jobs: list[_RowJob]) -> None:
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
            self.rows_committed += len(job.rows)
            if not job.future.done():
                job.future.set_result(stored)

    async def _write_hits(self, jobs: list[_RowJob]) -> list[list[Stored]]:
        """One transaction for all queued hits and events: ids, unique flags, rows, rollups,
        COMMIT, all in one call on the connection's thread (the loop is woken once a batch)."""
        complete_until_here = self.blocks_complete_until
        journeys_until = self.journeys_built_until
        seen, seen_events = self._seen, self._seen_events
        hit_rows: list[HitRow] = []  # the committed hits, for the next fold
        hit_uniques: list[int] = []

        def transaction(
            raw: sqlite3.Connection,
        ) -> tuple[list[list[Stored]], dict[int, set[str]], dict[int, set[str]], int]:
            new_seen: dict[int, set[str]] = defaultdict(set)
            new_seen_events: dict[int, set[str]] = defaultdict(set)
            inserts: list[tuple[Any, ...]] = []
            event_inserts: list[tuple[Any, ...]] = []
            rollups: dict[Any, list[int]] = {}
            blocks: dict[Any, list[int]] = {}
            stale_journeys: set[tuple[int, int]] = set()
            orders: dict[tuple[int, str], int] = {}
            results: list[list[Stored]] = []
            raw.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: another process (the CLI) may have inserted rows,
                # or (a server) moved the block watermark since this one last looked.
                found = raw.execute(BLOCKS_WATERMARK).fetchone()
                complete_until = max(complete_until_here, int(found[0]) if found else 0)
                late = False  # a row before the watermark: kept settled totals go stale
                next_id = next_event_id = -1
                first_id = 0
                for job in jobs:
                    stored: list[Stored] = []
                    if job.before is not None:
                        rows = job.before(raw)
                        if len(rows) != len(job.rows):
                            raise ValueError("a before step must return as many rows")
                        job.rows = rows
                    if isinstance(job, _HitJob):
                        if next_id < 0:
                            next_id = int(raw.execute(MAX_HIT_ID).fetchone()[0])
                            first_id = next_id + 1
                        given = job.uniques
                        for i, hit in enumerate(job.rows):
                            next_id += 1
                            if given is None:
                                unique = _first_today(hit.unique_hash, hit.utc_day, seen, new_seen)
                            else:
                                unique = given[i]
                                if unique:
                                    new_seen[hit.utc_day].add(hit.unique_hash)
                            inserts.append((next_id, *hit[:13], unique))
                            hit_rows.append(hit)
                            hit_uniques.append(unique)
                            if hit.utc_day < complete_until:  # late: its blocks may exist
                                _add_block_rollups(blocks, hit, unique, complete_until)
                                late = True
                            if hit.utc_day < journeys_until:
                                stale_journeys.add((hit.site_id, hit.utc_day))
                            stored.append(Stored(next_id, bool(unique)))
                    else:
                        if next_event_id < 0:
                            next_event_id = int(raw.execute(MAX_EVENT_ID).fetchone()[0])
                        given_events = job.uniques
                        for i, event in enumerate(job.rows):
                            if event.order_id is not None:
                                key = (event.site_id, event.order_id)
                                first = orders.get(key)
                                if first is None:
                                    found = raw.execute(EVENT_BY_ORDER, key).fetchone()
                                    first = int(found[0]) if found else None
                                if first is not None:
                                    stored.append(Stored(first, False, duplicate=True))
                                    continue
                            next_event_id += 1
                            if event.order_id is not None:
                                orders[(event.site_id, event.order_id)] = next_event_id
                            if given_events is None:
                                unique = _first_today(
                                    event.unique_hash, event.utc_day, seen_events, new_seen_events
                                )
                            else:
                                unique = given_events[i]
                                if unique:
                                    new_seen_events[event.utc_day].add(event.unique_hash)
                            event_inserts.append(
                                (next_event_id, *event[:15], unique, *event[15:19])
                            )
                            _add_event_rollups(rollups, event, unique)
                            if event.utc_day < complete_until:
                                _add_event_block_rollups(blocks, event, unique, complete_until)
                                late = True
                            stored.append(Stored(next_event_id, bool(unique)))
                    results.append(stored)
                if inserts:
                    raw.executemany(INSERT_HIT, inserts)
                if event_inserts:
                    raw.executemany(INSERT_EVENT, event_inserts)
                # The hits' own daily and all-time rollups come with the next fold.
                if rollups:
                    raw.executemany(UPSERT_ROLLUP, [(*k, v[0], v[1]) for k, v in rollups.items()])
                if blocks:
                    raw.executemany(
                        pyramid.UPSERT_BLOCK, [(*k, v[0], v[1]) for k, v in blocks.items()]
                    )
                for site_day in stale_journeys:
                    for sql in journeys.INVALIDATE_DAY:
                        raw.execute(sql, site_day)
                if late:
                    raw.execute(settled.BUMP_VERSION)
                raw.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise
            return results, new_seen, new_seen_events, first_id

        async with self.lock:
            results, new_seen, new_seen_events, first_id = await db.on_connection_thread(
                self._conn, transaction
            )
        _remember(self._seen, new_seen)
        _remember(self._seen_events, new_seen_events)
        if hit_rows:
            self._add_to_tail(first_id, hit_rows, hit_uniques)
        return results

    def _add_to_tail(self, first_id: int, rows: list[HitRow], uniques: list[int]) -> None:
        if not self._tail:
            self._tail_first = first_id
            self._tail_since = time.monotonic()
        elif first_id != self._tail_first + len(self._tail):
            self._tail_gap = True  # another writer's hits in between: fold from the raw rows
        if self._tail_gap or len(self._tail) > 4 * self._fold_rows:
            # Folding keeps failing (or will read raw anyway): stop holding rows in memory.
            self._tail_gap = True
            self._tail, self._tail_uniques = [], []
            return
        self._tail += rows
        self._tail_uniques += uniques

    async def _fold(self) -> None:
        """One transaction: the daily and all-time rollups of every hit above the fold mark,
        and the new mark. On failure nothing changes, and the next trigger tries again."""
        tail, uniques = self._tail, self._tail_uniques
        first, gap = self._tail_first, self._tail_gap
        complete_until_here = self.blocks_complete_until

        def transaction(raw: sqlite3.Connection) -> None:
            raw.execute("BEGIN IMMEDIATE")
            try:
                fold_committed(raw, complete_until_here, None if gap else (first, tail, uniques))
                raw.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise

        try:
            async with self.lock:
                await db.on_connection_thread(self._conn, transaction)
        except Exception as exc:
            # The hits are committed; only their rollups wait. Readers go on with the last
            # fold rather than fail; the next trigger (a second from now at the latest) retries.
            log.warning("folding hits into the rollups failed: %s", exc)
            self._tail_since = time.monotonic()
            return
        self._tail, self._tail_uniques, self._tail_gap = [], [], False

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._conn.execute("ROLLBACK")


def fold_committed(
    raw: sqlite3.Connection,
    complete_until: int = 0,
    tail: tuple[int, list[HitRow], list[int]] | None = None,
) -> None:
    """Inside the caller's write transaction: fold every hit above the fold mark into the
    rollups and move the mark. ``tail`` (first id, rows, unique flags) are hits the caller
    committed; they are used instead of reading the raw rows back when they are exactly the
    unfolded ones."""
    folded, top = raw.execute(FOLD_BOUNDS).fetchone()
    if top <= folded:
        return
    found = raw.execute(BLOCKS_WATERMARK).fetchone()
    complete_until = max(complete_until, int(found[0]) if found else 0)
    if tail is not None and tail[1] and folded == tail[0] - 1 and top == tail[0] + len(tail[1]) - 1:
        _fold_rows(raw, tail[1], tail[2], complete_until)
    else:
        for start in range(folded, top, FOLD_CHUNK):
            rows, uniques = _unfolded_hits(raw, start, min(top, start + FOLD_CHUNK))
            _fold_rows(raw, rows, uniques, complete_until)
    raw.execute(SET_FOLDED, (str(top),))


def _fold_rows(
    raw: sqlite3.Connection, rows: list[HitRow], uniques: list[int], complete_until: int
) -> None:
    day_rows, all_time_rows = _hit_rollup_rows(rows, uniques)
    raw.executemany(UPSERT_ROLLUP, day_rows)
    if all_time_rows:
        raw.executemany(pyramid.UPSERT_BLOCK, all_time_rows)
    if rows and min(row.utc_day for row in rows) < complete_until:
        # A day whose grouped totals may be kept (settled.py) changed after its hit's commit.
        raw.execute(settled.BUMP_VERSION)


def _unfolded_hits(
    raw: sqlite3.Connection, after: int, until: int
) -> tuple[list[HitRow], list[int]]:
    """Hits with after < id <= until as HitRows carrying what the rollups need."""
    rows: list[HitRow] = []
    uniques: list[int] = []
    for site, at, path, referrer, source, country, browser, platform, unique, tz in raw.execute(
        UNFOLDED_HITS, (after, until)
    ):
        day = at // clock.SECONDS_PER_DAY
        rows.append(
            HitRow(
                site,
                at,
                path,
                None,
                referrer,
                source,
                country,
                browser,
                platform,
                0,
                None,
                "",
                "",
                day,
                clock.local_day(tz, at),
            )
        )
        uniques.append(unique)
    return rows, uniques


def _first_today(
    unique_hash: str, day: int, seen: dict[int, Seen], new_seen: dict[int, set[str]]
) -> int:
    """1 if this hash was not yet counted on its UTC day (committed or earlier in the batch)."""
    batch_seen = new_seen[day]
    day_seen = seen.get(day)
    if unique_hash in batch_seen or (day_seen is not None and unique_hash in day_seen):
        return 0
    batch_seen.add(unique_hash)
    return 1


def _remember(seen: dict[int, Seen], new_seen: dict[int, set[str]]) -> None:
    for day, hashes in new_seen.items():
        if hashes:
            seen.setdefault(day, {}).update(dict.fromkeys(hashes))
    if len(seen) > 2:
        newest = max(seen)
        for day in [d for d in seen if d < newest - 1]:
            del seen[day]


# (rollup code, HitRow index) for each dimension, resolved once instead of getattr per hit.
_DIM_INDEXES = tuple((code, HitRow._fields.index(column)) for code, column in _DIM_FIELDS)
_PATH_CODE, _PATH_COLUMN = DIMENSIONS["path"]
_PATH_INDEX = HitRow._fields.index(_PATH_COLUMN)


_EVENT_DIM_INDEXES = tuple(
    (code, EventRow._fields.index(column)) for code, column in sorted(EVENT_DIMENSIONS.values())
)


def _add_event_rollups(acc: dict[Any, list[int]], event: EventRow, unique: int) -> None:
    site, utc, local = event.site_id, event.utc_day, event.local_day
    keys: list[Any] = [(site, EVENT_TOTAL, utc, local, "")]
    keys += [(site, code, utc, local, event[index] or "") for code, index in _EVENT_DIM_INDEXES]
    _count(acc, keys, unique)


def _add_event_block_rollups(
    acc: dict[Any, list[int]], event: EventRow, unique: int, complete_until: int
) -> None:
    values = [(EVENT_TOTAL, "")]
    values += [(code, str(event[index] or "")) for code, index in _EVENT_DIM_INDEXES]
    _add_blocks(acc, event.site_id, event.utc_day, event.local_day, values, unique, complete_until)


def _hit_rollup_rows(
    hits: list[HitRow], uniques: list[int]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """UPSERT_ROLLUP rows (site, dim, utc day, local day, value, hits, uniques) and all-time
    path rows for UPSERT_BLOCK, counted over a batch of hits.

    Why in bulk: building a key per hit and dimension in a Python loop cost ~6 µs a hit on the
    writer's thread, whose time bounds batch ingestion; ``Counter`` counts in C. A batch is
    nearly always one site and one (UTC day, local day): then each dimension is counted by its
    values alone (strings cache their hash); other batches (imports, midnight) are split."""
    if not hits:
        return [], []
    columns = list(zip(*hits, strict=True))
    keys = list(zip(columns[0], columns[13], columns[14], strict=True))  # site, utc, local
    groups = Counter(keys)
    if len(groups) > 1:
        day_rows: list[tuple[Any, ...]] = []
        all_time: dict[tuple[int, str], list[int]] = {}
        for group in groups:
            picked = [i for i, key in enumerate(keys) if key == group]
            part_rows, part_all_time = _hit_rollup_rows(
                [hits[i] for i in picked], [uniques[i] for i in picked]
            )
            day_rows += part_rows
            for row in part_all_time:  # one all-time row per (site, path) in the batch
                slot = all_time.setdefault((row[0], row[5]), [0, 0])
                slot[0] += row[6]
                slot[1] += row[7]
        return day_rows, [
            (site, _PATH_CODE, pyramid.ALL_TIME, 0, 0, path, n, u)
            for (site, path), (n, u) in all_time.items()
        ]
    ((site, utc, local),) = groups
    rows: list[tuple[Any, ...]] = [(site, TOTAL, utc, local, "", len(hits), sum(uniques))]
    paths: list[tuple[Any, ...]] = []
    for code, index in _DIM_INDEXES:
        values = columns[index]
        counts = _without_none(Counter(values))
        unique = _without_none(Counter(compress(values, uniques)))
        rows += [(site, code, utc, local, v, n, unique[v]) for v, n in counts.items()]
        if index == _PATH_INDEX:
            paths = [
                (site, _PATH_CODE, pyramid.ALL_TIME, 0, 0, v, n, unique[v])
                for v, n in counts.items()
            ]
    return rows, paths


def _without_none(counts: Counter[Any]) -> Counter[Any]:
    """A rollup value is never NULL: a missing value is counted as ''."""
    missing = counts.pop(None, 0)
    if missing:
        counts[""] += missing
    return counts


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
    acc: dict[Any, list[int]], hit: HitRow, unique: int, complete_until: int
) -> None:
    values = [(TOTAL, "")]
    values += [(code, str(hit[index] or "")) for code, index in _DIM_INDEXES]
    _add_blocks(acc, hit.site_id, hit.utc_day, hit.local_day, values, unique, complete_until)


def _add_blocks(
    acc: dict[Any, list[int]],
    site_id: int,
    utc_day: int,
    local_day: int,
    values: list[tuple[int, str]],
    unique: int,
    complete_until: int,
) -> None:
    for level in pyramid.LEVELS:
        size = pyramid.BLOCK_DAYS[level]
        block = utc_day // size
        if not pyramid.block_end(level, block) < complete_until:
            continue  # not built yet: it will be built from the daily rows, this row included
        local = local_day // size
        _count(acc, [(site_id, code, level, block, local, v) for code, v in values], unique)
