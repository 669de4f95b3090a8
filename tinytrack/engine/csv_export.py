"""CSV export: every hit, event or kudo of a site as RFC 4180 CSV (UTF-8, header row, CRLF line
ends, ISO 8601 UTC times), streamed in chunks in constant memory.

Each chunk is one keyset-paginated query ordered by (created_at, id) on the (site_id,
created_at) index, run on a reader connection's own thread: one short read transaction per chunk,
so an export of millions of rows never holds a snapshot open (the WAL can checkpoint) and never
blocks the writer. Rows whose id is above the table's largest id when the export started are left
out, so an export is exactly the rows recorded before it began, however long it runs.

SQLite builds each CSV line itself (quoting, formula guards, times): Python then handles one
string per row instead of a dozen cells, and most of the work runs with the GIL released, beside
the event loop. Measured on the 10M-hit benchmark database (2 slow cores): formatting the cells
in Python with ``csv.writer`` ran at ~200k rows/s; this runs at ~240k rows/s, mostly in C.

Formula guards: a text cell starting with ``= + - @``, a tab or a carriage return gets a leading
``'`` (a spreadsheet would run it as a formula), and so does a cell that starts with ``'`` itself,
so that import removes exactly one and every string round-trips. Numbers, times and the hex
hashes are written as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tinytrack.engine import clock
from tinytrack.errors import InvalidParameter

CHUNK_ROWS: Final = 5000
# Live traffic comes first. An export's reading thread runs at this CPU priority (Linux), and
# while the writer commits at least BUSY_ROWS_PER_S rows a second (heavy ingestion) an export
# pauses after each chunk for PAUSE_RATIO times as long as the chunk took: it then reads at most
# half the time. Measured on 2 cores (benchmarks/bench_export.py): single-hit ingestion kept 75%
# of its throughput beside a full-speed export; this keeps it above 80%.
BACKGROUND_NICE: Final = 10
EXPORT_CACHE_KIB: Final = -8192  # SQLite page cache of an export's connection: 8 MiB
BUSY_ROWS_PER_S: Final = 200
PAUSE_RATIO: Final = 1.0
END_OF_TIME: Final = 2**62
# Python's view of the guard (import uses ``restore``); the SQL below tests the same characters.
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "'")
_FORMULA_CODES: Final = ", ".join(str(ord(c)) for c in FORMULA_START)
# Stored as written by tinytrack's own code (2-letter codes, hex hashes; import checks them):
# they never need quotes or a guard.
TOKENS: Final = frozenset({"country", "unique_hash", "visitor_hash"})
FLAGS: Final = frozenset({"is_mobile", "is_unique"})

HIT_COLUMNS: Final = (
    "created_at", "path", "url", "referrer", "source", "country", "browser_name",
    "platform_name", "is_mobile", "user_agent", "unique_hash", "visitor_hash", "is_unique",
)  # fmt: skip
EVENT_COLUMNS: Final = (
    "created_at", "event", "value", "path", "url", "referrer", "source", "country",
    "browser_name", "platform_name", "is_mobile", "user_agent", "unique_hash", "visitor_hash",
    "is_unique", "properties", "revenue", "currency", "order_id",
)  # fmt: skip
KUDO_COLUMNS: Final = ("created_at", "uid", "path")
# Visitor properties (other tools' formats): ``value`` is the stored JSON (a string in quotes, a
# number or true/false), so types survive the round trip.
VISITOR_COLUMNS: Final = ("updated_at", "visitor_hash", "key", "value")
COLUMNS: Final = {
    "hits": HIT_COLUMNS,
    "events": EVENT_COLUMNS,
    "kudos": KUDO_COLUMNS,
    "visitors": VISITOR_COLUMNS,
}
# CSV column -> stored column where the names differ.
STORED: Final = {"event": "name", "revenue": "revenue_micros"}
TABLES: Final = {"hits": "hits", "events": "events", "kudos": "kudos"}


def _time_cell(column: str) -> str:
    # date() || time() is ~2x faster than one strftime() with a format string (measured).
    return f"date({column}, 'unixepoch') || 'T' || time({column}, 'unixepoch') || 'Z'"


def _text_cell(column: str) -> str:
    guarded = (
        f"CASE WHEN unicode({column}) IN ({_FORMULA_CODES}) THEN '''' || {column} ELSE {column} END"
    )
    needs_quotes = (
        f"instr({column}, ',') OR instr({column}, '\"') "
        f"OR instr({column}, char(10)) OR instr({column}, char(13))"
    )
    return (
        f"CASE WHEN {column} IS NULL THEN '' "
        f"WHEN {needs_quotes} THEN '\"' || replace({guarded}, '\"', '\"\"') || '\"' "
        f"ELSE {guarded} END"
    )


def _revenue_cell(column: str) -> str:
    """Millionths as the shortest exact decimal: 12500000 -> 12.5, -3000000 -> -3."""
    return (
        f"CASE WHEN {column} IS NULL THEN '' ELSE "
        f"(CASE WHEN {column} < 0 THEN '-' ELSE '' END) || (abs({column}) / 1000000) || "
        f"CASE WHEN abs({column}) % 1000000 = 0 THEN '' "
        f"ELSE '.' || rtrim(printf('%06d', abs({column}) % 1000000), '0') END END"
    )


def _cell(name: str) -> str:
    column = STORED.get(name, name)  # identifiers come only from the column tuples above
    if name == "created_at":
        return _time_cell(column)
    if name == "revenue":
        return _revenue_cell(column)
    if name in FLAGS or name in TOKENS:
        return column
    return _text_cell(column)


def _line_sql(kind: str) -> str:
    return " || ',' || ".join(_cell(name) for name in COLUMNS[kind])


# A chunk is two queries. BOUNDARY finds the key of its last row (on the covering index, ~1 ms);
# CHUNK builds all its lines and joins them inside SQLite, so the connection's thread gets ONE
# string per chunk: the GIL is released for the whole query instead of being taken back for
# every row (measured: 286k instead of 255k rows/s alone, and far less contention with the event
# loop). group_concat follows the subquery's ORDER BY, which SQLite runs as an ordered
# co-routine (an aggregate's subquery with ORDER BY is never flattened); the tests check the
# order across many chunk boundaries.
# Both start the index range at max(start, after's second): a row-value comparison alone made
# SQLite scan from the range start on every page (quadratic: ~330 ms a page in the middle of
# 10M rows). ``+id`` keeps the snapshot cap from being used as a rowid range.
_AFTER = "AND (created_at > ? OR id > ?) AND +id <= ? "
BOUNDARY: Final = {
    kind: f"SELECT created_at, id FROM {table} "
    "WHERE site_id = ? AND created_at >= ? AND created_at < ? "
    + _AFTER
    + "ORDER BY created_at, id LIMIT 1 OFFSET ?"
    for kind, table in TABLES.items()
}
CHUNK: Final = {
    kind: "SELECT COUNT(*), group_concat(line, char(13, 10)) FROM ("
    f"SELECT {_line_sql(kind)} AS line FROM {table} "
    "WHERE site_id = ? AND created_at >= ? AND created_at <= ? "
    + _AFTER
    + "AND (created_at < ? OR id <= ?) ORDER BY created_at, id)"
    for kind, table in TABLES.items()
}
COUNT: Final = {
    kind: f"SELECT COUNT(*) FROM {table} "
    "WHERE site_id = ? AND created_at >= ? AND created_at < ? AND +id <= ?"
    for kind, table in TABLES.items()
}
MAX_ID: Final = {
    kind: f"SELECT COALESCE(MAX(id), 0) FROM {table}" for kind, table in TABLES.items()
}


def neutralise(text: str) -> str:
    """The formula guard the export's SQL applies to a text cell (for tests and documentation)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def restore(text: str) -> str:
    """The inverse of ``neutralise`` on a cell read back."""
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_START:
        return text[1:]
    return text


def header(kind: str) -> bytes:
    return (",".join(COLUMNS[kind]) + "\r\n").encode()


def max_id(raw: sqlite3.Connection, kind: str) -> int:
    """The snapshot cap: rows recorded later get larger ids and are left out."""
    return int(raw.execute(MAX_ID[kind]).fetchone()[0])


def bounds(
    timezone: str, start_date: dt.date | None, end_date: dt.date | None, time_zone: str
) -> tuple[int, int]:
    """[start, end) seconds of an export. Without a start: from the first row; without an end:
    to the last (the reports' default of the last 30 days does not apply, nor their limit of
    730 days). ``time_zone`` "user" reads the dates in the site's ``timezone``."""
    if start_date is not None and end_date is not None and start_date > end_date:
        raise InvalidParameter("start_date must be on or before end_date")
    tz = timezone if time_zone == "user" else "UTC"
    start = clock.local_midnight(tz, clock.day_number(start_date)) if start_date else 0
    end = clock.local_midnight(tz, clock.day_number(end_date) + 1) if end_date else END_OF_TIME
    return max(start, 0), end


@dataclass(frozen=True)
class Export:
    """One export of hits, events or kudos: what to read, and the snapshot cap (the table's
    largest id at its start). Rows are read by their (created_at, id) key."""

    site_id: int
    kind: str
    bounds: tuple[int, int]
    cap: int

    @property
    def start(self) -> tuple[Any, Any]:
        """The key before the first row."""
        return self.bounds[0] - 1, 0

    def chunk(self, after: tuple[Any, Any], raw: sqlite3.Connection) -> Chunk:
        return chunk(raw, self.kind, self.site_id, self.bounds, after, self.cap)

    def count(self, raw: sqlite3.Connection) -> int:
        return count(raw, self.kind, self.site_id, self.bounds, self.cap)


@dataclass(frozen=True)
class VisitorExport(Export):
    """Visitor properties: read by their (visitor_hash, key) key; no ids, so no cap."""

    @property
    def start(self) -> tuple[Any, Any]:
        return "", ""

    def chunk(self, after: tuple[Any, Any], raw: sqlite3.Connection) -> Chunk:
        return visitor_chunk(raw, self.site_id, self.bounds, after)

    def count(self, raw: sqlite3.Connection) -> int:
        return int(raw.execute(VISITOR_COUNT, (self.site_id, *self.bounds)).fetchone()[0])


def begin(raw: sqlite3.Connection, site_id: int, kind: str, bounds: tuple[int, int]) -> Export:
    """The export of ``kind`` starting now (reads the snapshot cap on ``raw``)."""
    if kind == "visitors":
        return VisitorExport(site_id, kind, bounds, 0)
    return Export(site_id, kind, bounds, max_id(raw, kind))


# (bytes, the key of the last row, rows, whether more may follow)
Chunk = tuple[bytes, tuple[Any, Any], int, bool]


def pause_after(spent: float, rows_committed: int) -> float:
    """Seconds to wait before the next chunk, given how long the last one took and how many
    rows the writer committed meanwhile."""
    if spent > 0 and rows_committed / spent >= BUSY_ROWS_PER_S:
        return spent * PAUSE_RATIO
    return 0.0


def prepare_connection(raw: sqlite3.Connection) -> None:
    """Set up an export's own connection, on its thread. A sequential scan gains nothing from a
    big page cache or from mapping the file, and both stay resident: a small cache and no mmap
    keep the server's memory flat however big the export (reading speed measured the same).
    The thread's CPU priority is lowered to nice ``BACKGROUND_NICE`` (Linux, where a thread's
    nice value is its own; elsewhere it would change the whole process, so it is left)."""
    raw.execute("PRAGMA mmap_size=0")
    raw.execute(f"PRAGMA cache_size={EXPORT_CACHE_KIB}")
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def chunk(
    raw: sqlite3.Connection,
    kind: str,
    site_id: int,
    bounds: tuple[int, int],
    after: tuple[int, int],
    cap: int,
    limit: int | None = None,
) -> Chunk:
    """CSV bytes of up to ``limit`` rows after the (created_at, id) key ``after``: (bytes, the
    last key, rows, whether more may follow). Runs on the connection's thread: queries and
    encoding in one hop."""
    limit = CHUNK_ROWS if limit is None else limit
    start = max(bounds[0], after[0])
    raw.execute("BEGIN")  # both queries see the same rows; the transaction lasts one chunk
    try:
        found = raw.execute(
            BOUNDARY[kind], (site_id, start, bounds[1], after[0], after[1], cap, limit - 1)
        ).fetchone()
        last = (int(found[0]), int(found[1])) if found else (bounds[1] - 1, END_OF_TIME)
        rows, text = raw.execute(
            CHUNK[kind], (site_id, start, last[0], after[0], after[1], cap, last[0], last[1])
        ).fetchone()
    finally:
        raw.execute("COMMIT")
    data = (text + "\r\n").encode() if rows else b""
    return data, last, int(rows), found is not None


def count(
    raw: sqlite3.Connection, kind: str, site_id: int, bounds: tuple[int, int], cap: int
) -> int:
    return int(raw.execute(COUNT[kind], (site_id, bounds[0], bounds[1], cap)).fetchone()[0])


async def dicts(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, str]]:
    """Rows of an export as dicts of column -> cell text. Chunks hold whole rows."""
    header: list[str] | None = None
    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
        async for data in chunks:
            for cells in csv.reader(io.StringIO(data.decode(), newline=""), strict=True):
                if header is None:
                    header = cells
                else:
                    yield dict(zip(header, cells, strict=True))


async def write_file(
    chunks: AsyncIterator[tuple[bytes, int]],
    path: Path,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Write (bytes, rows) chunks to ``path`` through ``<path>.partial``; returns the rows.
    File writes run in a thread: the event loop may be serving requests meanwhile."""
    partial = path.with_name(path.name + ".partial")
    rows = 0
    out = await asyncio.to_thread(partial.open, "wb")
    try:
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            async for data, n in chunks:
                await asyncio.to_thread(out.write, data)
                rows += n
                if progress is not None and n:
                    progress(rows, total)
        await asyncio.to_thread(out.close)
        await asyncio.to_thread(os.replace, partial, path)
    except BaseException:
        out.close()
        partial.unlink(missing_ok=True)
        raise
    return rows


# Visitor properties, in primary-key order (visitor hash, key), keyset-paginated; a date range
# applies to when a property was last set. Small next to hits (at most 100 keys a visitor), so
# the cells are formatted here with the csv module (same quoting and formula guards).
VISITOR_CHUNK: Final = """
SELECT updated_at, visitor_hash, key, value FROM visitor_properties
WHERE site_id = ? AND (visitor_hash, key) > (?, ?) AND updated_at >= ? AND updated_at < ?
ORDER BY visitor_hash, key LIMIT ?
"""
VISITOR_COUNT: Final = """
SELECT COUNT(*) FROM visitor_properties WHERE site_id = ? AND updated_at >= ? AND updated_at < ?
"""


def visitor_chunk(
    raw: sqlite3.Connection,
    site_id: int,
    bounds: tuple[int, int],
    after: tuple[Any, Any],
    limit: int = CHUNK_ROWS,
) -> Chunk:
    rows = raw.execute(VISITOR_CHUNK, (site_id, *after, *bounds, limit)).fetchall()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for at, visitor, key, value in rows:
        writer.writerow((clock.iso(at), visitor, neutralise(key), neutralise(value)))
    last = (rows[-1][1], rows[-1][2]) if rows else after
    return out.getvalue().encode(), last, len(rows), len(rows) == limit
