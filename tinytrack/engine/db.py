"""SQLite connections: pragmas on every connection, migrations, and the read-connection pool."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from tinytrack.engine.schema import LATEST_VERSION, MIGRATIONS
from tinytrack.errors import TinytrackError

MEMORY = ":memory:"

# synchronous=NORMAL in WAL mode: a COMMIT survives a crash of the process (kill -9); only an OS
# crash or power loss can lose the last transactions. This build defaults to FULL, hence explicit.
_WRITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA cache_size=-65536",
)
_READ_PRAGMAS = (
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA cache_size=-65536",
    "PRAGMA mmap_size=1073741824",
)


T = TypeVar("T")

# The health check's write: one small meta row, rewritten each time.
TOUCH_HEALTH = "INSERT OR REPLACE INTO meta (key, value) VALUES ('health_checked_at', ?)"


async def on_connection_thread(
    conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``fn(raw sqlite3 connection)`` on ``conn``'s own thread, in ONE hop.

    Each ``await conn.execute(...)`` is a round trip that wakes the event loop (40-75 µs here);
    a group commit made five of them. aiosqlite has no public way to run a function on its
    thread, so this uses ``Connection._execute`` and ``_conn`` (present in 0.17 through 0.22;
    the dependency is pinned below 0.23 and every write test goes through here).
    """
    raw = conn._conn
    result: T = await conn._execute(fn, raw)  # type: ignore[no-untyped-call]
    return result


def is_memory(path: str | Path) -> bool:
    return str(path) == MEMORY


async def connect_writer(path: str | Path) -> aiosqlite.Connection:
    """The one connection allowed to write. Autocommit mode: transactions are explicit."""
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    for pragma in _WRITE_PRAGMAS:
        await conn.execute(pragma)
    return conn


async def connect_reader(path: str | Path) -> aiosqlite.Connection:
    # Resolving a path touches the file system once per connection, at startup only.
    uri = Path(path).resolve().as_uri() + "?mode=ro"  # noqa: ASYNC240
    conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    for pragma in _READ_PRAGMAS:
        await conn.execute(pragma)
    return conn


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the schema up to date; returns the version found before migrating."""
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    found = int(row[0]) if row else 0
    if found > LATEST_VERSION:
        raise TinytrackError(
            f"database schema version {found} is newer than this tinytrack ({LATEST_VERSION}); "
            "upgrade tinytrack"
        )
    for version, statements in MIGRATIONS:
        if version <= found:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                await conn.execute(statement)
            # PRAGMA takes no bound parameters; version is an int from the table above.
            await conn.execute(f"PRAGMA user_version = {int(version)}")
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("ROLLBACK")
            raise
    return found


class ReaderPool:
    """A few read-only connections; WAL lets them read beside the writer.

    For ``:memory:`` there is only one database connection, so readers share the writer's and
    take ``lock`` (also held by the writer around each transaction) to never see a half-written
    transaction.
    """

    def __init__(
        self, conns: list[aiosqlite.Connection], *, lock: asyncio.Lock | None = None
    ) -> None:
        self._all = conns
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in conns:
            self._idle.put_nowait(conn)
        self._lock = lock
        self._owned = lock is None

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._idle.get()
        try:
            if self._lock is not None:
                async with self._lock:
                    yield conn
            else:
                yield conn
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        if self._owned:
            for conn in self._all:
                await conn.close()
        self._all = []
