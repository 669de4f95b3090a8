"""The single writer: one task owns the only write connection.

Requests put jobs on a queue and await a future. The writer drains whatever is queued (up to
``max_batch_rows`` hits) into ONE transaction: the raw rows, then COMMIT, then resolves every
future. So a 2xx is only ever sent for a committed row, and concurrent requests share one
fsync-free WAL commit (group commit). When more than ``max_pending_rows`` hits wait, new work is
refused with ``Overloaded`` (HTTP 503 + Retry-After) instead of growing memory without bound.

Hits are counted into the daily rollups (and the all-time path totals) by a later *fold*
(fold.py says why and how it stays exact). The writer starts one, computed on a connection of
its own beside the commits, after ``fold_idle_seconds`` without work, every ``fold_seconds``
under load, or when ``fold_rows`` hits wait; ``fold()`` folds everything at once (reads and
every other write job wait for it). Events and back-dated hits' rollup blocks are still kept in
the rows' own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from tinytrack.engine import db, fold, journeys, pyramid, settled
from tinytrack.engine.fold import Fold
from tinytrack.engine.rollups import (
    DIMENSIONS,
    EVENT_DIMENSIONS,
    EVENT_TOTAL,
    TOTAL,
    UPSERT_ROLLUP,
)
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

INSERT_EVENT = """
INSERT INTO events (id, site_id, created_at, name, value, path, url, referrer, source, country,
                    browser_name, platform_name, is_mobile, user_agent, unique_hash, visitor_hash,
                    is_unique, properties, revenue_micros, currency, order_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
EVENT_BY_ORDER = "SELECT id FROM events WHERE site_id = ? AND order_id = ?"
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
class _FoldJob:  # fold everything now (Writer.fold)
    future: asyncio.Future[None]
    rows: tuple[()] = ()


@dataclass(eq=False)
class _ApplyJob:  # store a fold computed beside the writer
    computed: Fold | None
    rows: tuple[()] = ()


@dataclass(eq=False)
class _FnJob:
    fn: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any] | None
    rows: list[HitRow] = field(default_factory=list)
    after_commit: Callable[[], None] | None = None
    needs_fold: bool = True  # reads or deletes hits or rollups: fold every hit first


_RowJob = _HitJob | _EventJob
_Job = _HitJob | _EventJob | _FnJob | _FoldJob | _ApplyJob


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        lock: asyncio.Lock,
        fold_conn: aiosqlite.Connection | None = None,
        # 4,000: four concurrent 1,000-hit batch requests share one transaction, so COMMIT and
        # the pages written are paid once; measured with bench_ingest_batch.py (A/B, same
        # machine, when the rollups were still upserted in this transaction): 36.7k/37.2k
        # hits/s with 1,000 against 42.7k/41.1k. A single hit still commits as soon as the
        # writer is free.
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
        # Folds are computed on fold_conn (a reader of the same file), beside the commits; without
        # one (:memory:) the writer folds in its own transactions.
        self._fold_conn = fold_conn
        self._computing: asyncio.Task[None] | None = None
        self._committed_top = 0  # the newest hit id this writer committed
        self._folded_top = 0  # every hit id up to here is in the rollups
        self._fold_started = time.monotonic()  # when the last fold was started
        self._rows_since_fold = 0

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

    async def close_fold_connection(self) -> None:
        """Close the connection folds are computed on (after ``close``)."""
        if self._fold_conn is not None:
            conn, self._fold_conn = self._fold_conn, None
            await conn.close()

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
        """Fire-and-forget variant for bookkeeping (e.g. a key's last_used_at) that touches
        neither hits nor rollups."""
        if self._closing or self._task is None:
            return
        self._queue.put_nowait(_FnJob(fn, None, needs_fold=False))

    @property
    def unfolded(self) -> bool:
        """True while hits this writer committed are not in the rollups yet."""
        return self._committed_top > self._folded_top

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
            if self.unfolded and self._computing is None and self._queue.empty():
                try:
                    job = await asyncio.wait_for(self._queue.get(), self._fold_idle)
                except TimeoutError:  # idle: fold now rather than when someone reads
                    await self._start_fold()
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
            if (
                self.unfolded
                and self._computing is None
                and (
                    self._rows_since_fold >= self._fold_rows
                    or time.monotonic() - self._fold_started >= self._fold_seconds
                )
            ):
                await self._start_fold()
        # Drain whatever arrived between the stop marker and now (nothing new is accepted).
        leftovers: list[_Job] = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                leftovers.append(job)
        if leftovers:
            await self._process(leftovers)
        if self._computing is not None:
            await self._computing
        if self.unfolded:
            await self._fold_now()

    async def _process(self, batch: list[_Job]) -> None:
        run: list[_RowJob] = []
        for job in batch:
            if isinstance(job, _HitJob | _EventJob):
                run.append(job)
                continue
            if run:
                await self._commit_hit_jobs(run)
                run = []
            if isinstance(job, _ApplyJob):
                self._computing = None
                if job.computed is not None:
                    await self._apply(job.computed)
            elif isinstance(job, _FoldJob):
                await self._fold_now()
                if not job.future.done():
                    job.future.set_result(None)
            else:
                if job.needs_fold and self.unfolded:  # what it reads must count every hit
                    await self._fold_now()
                await self._commit_fn_job(job)
        if run:
            await self._commit_hit_jobs(run)

    # -- folding (fold.py) ----------------------------------------------------------------------

    async def _start_fold(self) -> None:
        self._fold_started, self._rows_since_fold = time.monotonic(), 0
        if self._fold_conn is None:
            await self._fold_now()
        else:
            self._computing = asyncio.create_task(self._compute(self._fold_conn))

    async def _compute(self, conn: aiosqlite.Connection) -> None:
        """Read a fold on ``conn`` (one read transaction), then queue it for the writer."""
        complete_until = self.blocks_complete_until

        def read(raw: sqlite3.Connection) -> Fold:
            raw.execute("BEGIN")
            try:
                return fold.compute(raw, complete_until)
            finally:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("COMMIT")

        computed: Fold | None = None
        try:
            computed = await db.on_connection_thread(conn, read)
        except Exception as exc:  # retried at the next trigger
            log.warning("computing a fold of the rollups failed: %s", exc)
        self._queue.put_nowait(_ApplyJob(computed))

    async def _apply(self, computed: Fold) -> None:
        applied = await self._fold_transaction(lambda raw: fold.apply(raw, computed))
        if applied:  # else the mark moved (fold_now, another process): a later fold counts them
            self._folded_top = max(self._folded_top, computed.top)

    async def _fold_now(self) -> None:
        """Fold every committed hit in one write transaction."""
        complete_until = self.blocks_complete_until
        self._fold_started, self._rows_since_fold = time.monotonic(), 0
        top = await self._fold_transaction(lambda raw: fold.fold_all(raw, complete_until))
        if top is not None:
            self._folded_top = max(self._folded_top, top)

    async def _fold_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T | None:
        """``fn(raw)`` in one write transaction; None if it failed. Then nothing changed: the
        hits are committed, only their counts wait, readers go on with the last fold, and the
        next trigger (a second from now at the latest) tries again."""

        def transaction(raw: sqlite3.Connection) -> T:
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = fn(raw)
                raw.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise
            return result

        try:
            async with self.lock:
                return await db.on_connection_thread(self._conn, transaction)
        except Exception as exc:
            log.warning("folding hits into the rollups failed: %s", exc)
            return None

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
                found = raw.execute(pyramid.READ_WATERMARK).fetchone()
                complete_until = max(complete_until_here, int(found[0]) if found else 0)
                late = False  # a row before the watermark: kept settled totals go stale
                next_id = next_event_id = -1
                for job in jobs:
                    stored: list[Stored] = []
                    if job.before is not None:
                        rows = job.before(raw)
                        if len(rows) != len(job.rows):
                            raise ValueError("a before step must return as many rows")
                        job.rows = rows
                    if isinstance(job, _HitJob):
                        if next_id < 0:
                            next_id = int(raw.execute(fold.MAX_HIT_ID).fetchone()[0])
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
            return results, new_seen, new_seen_events, next_id

        async with self.lock:
            results, new_seen, new_seen_events, last_id = await db.on_connection_thread(
                self._conn, transaction
            )
        _remember(self._seen, new_seen)
        _remember(self._seen_events, new_seen_events)
        if last_id > self._committed_top:
            self._rows_since_fold += last_id - self._committed_top
            self._committed_top = last_id
        return results

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._conn.execute("ROLLBACK")


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
