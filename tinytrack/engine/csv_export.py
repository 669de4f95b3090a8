"""CSV export: every hit, event or kudo of a site as RFC 4180 CSV (UTF-8, header row, CRLF,
ISO 8601 UTC times), streamed in chunks read on the connection's own thread.

Rows are read in keyset-paginated chunks ordered by (created_at, id), each chunk its own short
read, so an export of millions of rows holds no long read transaction (the WAL can checkpoint)
and keeps memory flat. Text cells that a spreadsheet would run as a formula (starting with
``= + - @``, a tab or a carriage return) get a leading ``'``; so does a cell that starts with
``'`` itself, so that import can remove exactly one and every value round-trips."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final

from tinytrack.engine import clock

CHUNK_ROWS = 5000
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "'")

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
COLUMNS: Final = {"hits": HIT_COLUMNS, "events": EVENT_COLUMNS, "kudos": KUDO_COLUMNS}
# Columns that hold numbers or times: never neutralised (a spreadsheet reads "-5" as a number).
PLAIN: Final = frozenset({"created_at", "is_mobile", "is_unique", "revenue"})

_SELECT: Final = {
    "hits": "SELECT id, created_at, path, url, referrer, source, country, browser_name, "
    "platform_name, is_mobile, user_agent, unique_hash, visitor_hash, is_unique FROM hits",
    "events": "SELECT id, created_at, name, value, path, url, referrer, source, country, "
    "browser_name, platform_name, is_mobile, user_agent, unique_hash, visitor_hash, is_unique, "
    "properties, revenue_micros, currency, order_id FROM events",
    "kudos": "SELECT id, created_at, uid, path FROM kudos",
}
_PAGE: Final = (
    " WHERE site_id = ? AND created_at >= ? AND created_at < ? AND (created_at, id) > (?, ?) "
    "ORDER BY created_at, id LIMIT ?"
)
_COUNT: Final = (
    "SELECT COUNT(*) FROM {table} WHERE site_id = ? AND created_at >= ? AND created_at < ?"
)
TABLES: Final = {"hits": "hits", "events": "events", "kudos": "kudos"}


def neutralise(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def restore(text: str) -> str:
    """The inverse of ``neutralise`` on a cell read back."""
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_START:
        return text[1:]
    return text


def revenue_text(micros: int | None) -> str:
    if micros is None:
        return ""
    return format(Decimal(micros) / 1_000_000, "f")


def _formatter(kind: str) -> Callable[[Sequence[Any]], list[str]]:
    """A function turning one selected row (without its id) into CSV cells."""
    names = COLUMNS[kind]
    iso = clock.iso

    def cells(row: Sequence[Any]) -> list[str]:
        out: list[str] = []
        for name, value in zip(names, row, strict=True):
            if value is None:
                out.append("")
            elif name == "created_at":
                out.append(iso(int(value)))
            elif name == "revenue":
                out.append(revenue_text(int(value)))
            elif name in PLAIN:
                out.append(str(value))
            else:
                out.append(neutralise(str(value)))
        return out

    return cells


def header(kind: str) -> bytes:
    return (",".join(COLUMNS[kind]) + "\r\n").encode()


def chunk(
    raw: sqlite3.Connection,
    kind: str,
    site_id: int,
    bounds: tuple[int, int],
    after: tuple[int, int],
    limit: int = CHUNK_ROWS,
) -> tuple[bytes, tuple[int, int] | None, int]:
    """One chunk of CSV bytes after the (created_at, id) key ``after``: (bytes, the last key
    or None at the end, rows). Runs on the connection's thread: fetch and format in one hop."""
    rows = raw.execute(
        _SELECT[kind] + _PAGE, (site_id, bounds[0], bounds[1], after[0], after[1], limit)
    ).fetchall()
    if not rows:
        return b"", None, 0
    cells = _formatter(kind)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(cells(row[1:]) for row in rows)
    last = rows[-1]
    return buffer.getvalue().encode(), (int(last[1]), int(last[0])), len(rows)


def count(raw: sqlite3.Connection, kind: str, site_id: int, bounds: tuple[int, int]) -> int:
    sql = _COUNT.format(table=TABLES[kind])
    return int(raw.execute(sql, (site_id, bounds[0], bounds[1])).fetchone()[0])
