"""CSV import: reads tinytrack's own export back (restore, or move to another instance).

The kind is recognised from the header. The whole file is checked first (UTF-8, CSV quoting,
header), so a malformed file changes nothing; then rows go to the normal writer in batches, so
rollups, pyramid blocks and journey days stay right, with the exported unique flags. A row is a
duplicate, and skipped, when the database already holds an identical one at the same second
(counting repeats: two identical rows in a file need two in the database), so importing a file
twice adds nothing. A bad row is reported with its line number and never stops the rest."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tinytrack.engine import clock, enrich
from tinytrack.engine.csv_export import COLUMNS, restore
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.writer import EventRow, HitRow
from tinytrack.errors import InvalidParameter

BATCH = 1000
MAX_CELL = 8192
csv.field_size_limit(1 << 20)

EXISTING: dict[str, str] = {
    "hits": "SELECT path, url, referrer, source, country, browser_name, platform_name, is_mobile, "
    "user_agent, unique_hash, visitor_hash, is_unique, created_at FROM hits "
    "WHERE site_id = ? AND created_at BETWEEN ? AND ?",
    "events": "SELECT name, value, path, url, referrer, source, country, browser_name, "
    "platform_name, is_mobile, user_agent, unique_hash, visitor_hash, is_unique, properties, "
    "revenue_micros, currency, order_id, created_at FROM events "
    "WHERE site_id = ? AND created_at BETWEEN ? AND ?",
    "kudos": "SELECT uid, path, created_at FROM kudos "
    "WHERE site_id = ? AND created_at BETWEEN ? AND ?",
}
INSERT_KUDO = "INSERT OR IGNORE INTO kudos (site_id, uid, path, created_at) VALUES (?, ?, ?, ?)"


def kind_of(header: list[str]) -> str:
    for kind, columns in COLUMNS.items():
        if tuple(header) == columns:
            return kind
    expected = "; ".join(f"{k}: {','.join(c)}" for k, c in COLUMNS.items())
    raise InvalidParameter(f"not a tinytrack export: the header must be one of ({expected})")


def check_file(path: Path) -> tuple[str, int]:
    """(kind, data rows) of a well-formed export; ``InvalidParameter`` naming the problem
    otherwise. Reads the whole file once, writes nothing."""
    rows = 0
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise InvalidParameter("the file is empty")
            kind = kind_of(header)
            for cells in reader:
                rows += 1
                if any("\x00" in cell for cell in cells):
                    raise InvalidParameter(f"binary data (a NUL byte) in data row {rows}")
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"the file is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise InvalidParameter(f"malformed CSV after data row {rows}: {exc}") from None
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None
    return kind, rows


def read(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every data row, formula guards removed."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        next(reader)
        for cells in reader:
            yield reader.line_num, [restore(c) for c in cells]


def _time(text: str) -> int:
    if not text.endswith("Z"):
        raise ValueError("created_at must be ISO 8601 UTC, like 2026-02-14T10:00:00Z")
    moment = dt.datetime.fromisoformat(text[:-1] + "+00:00")
    return int(moment.timestamp())


def _flag(text: str, name: str) -> int:
    if text not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1")
    return int(text)


def _opt(text: str) -> str | None:
    return text if text != "" else None


def _check_cells(cells: list[str], kind: str) -> None:
    if len(cells) != len(COLUMNS[kind]):
        raise ValueError(f"expected {len(COLUMNS[kind])} cells, found {len(cells)}")
    if any(len(c) > MAX_CELL for c in cells):
        raise ValueError(f"a cell is longer than {MAX_CELL} characters")


def hit_row(site: SiteInfo, cells: list[str]) -> tuple[HitRow, int]:
    """The row to store and its unique flag; ``ValueError`` saying what is wrong."""
    _check_cells(cells, "hits")
    (created, path, url, referrer, source, country, browser, platform, mobile, agent,
     unique_hash, visitor_hash, unique) = cells  # fmt: skip
    at = _time(created)
    if not path.startswith("/"):
        raise ValueError("path must start with /")
    if not enrich.valid_country(country):
        raise ValueError("country must be a 2-letter uppercase code")
    if not unique_hash or not visitor_hash:
        raise ValueError("unique_hash and visitor_hash are required")
    row = HitRow(
        site.id, at, path, _opt(url), _opt(referrer), _opt(source), country, _opt(browser),
        _opt(platform), _flag(mobile, "is_mobile"), _opt(agent), unique_hash, visitor_hash,
        at // clock.SECONDS_PER_DAY, clock.local_day(site.timezone, at),
    )  # fmt: skip
    return row, _flag(unique, "is_unique")


def event_row(site: SiteInfo, cells: list[str]) -> tuple[EventRow, int]:
    _check_cells(cells, "events")
    (created, name, value, path, url, referrer, source, country, browser, platform, mobile,
     agent, unique_hash, visitor_hash, unique, properties, revenue, currency,
     order_id) = cells  # fmt: skip
    at = _time(created)
    if len(name.split(".")) < 2:
        raise ValueError("event must be in category.action form")
    if path and not path.startswith("/"):
        raise ValueError("path must start with /")
    if not enrich.valid_country(country):
        raise ValueError("country must be a 2-letter uppercase code")
    if properties:
        parsed = json.loads(properties)
        if not isinstance(parsed, dict):
            raise ValueError("properties must be a JSON object")
    micros: int | None = None
    if revenue:
        try:
            micros = int(Decimal(revenue) * 1_000_000)
        except InvalidOperation:
            raise ValueError("revenue must be a decimal number") from None
    row = EventRow(
        site.id, at, name, _opt(value), _opt(path), _opt(url), _opt(referrer), _opt(source),
        country, _opt(browser), _opt(platform), _flag(mobile, "is_mobile"), _opt(agent),
        unique_hash, visitor_hash, _opt(properties), micros, _opt(currency), _opt(order_id),
        at // clock.SECONDS_PER_DAY, clock.local_day(site.timezone, at),
    )  # fmt: skip
    return row, _flag(unique, "is_unique")


def kudo_row(site: SiteInfo, cells: list[str]) -> tuple[int, str, str, int]:
    _check_cells(cells, "kudos")
    created, uid, path = cells
    if not uid or not path.startswith("/"):
        raise ValueError("uid is required and path must start with /")
    return (site.id, uid, path, _time(created))


def stored_key(kind: str, row: Any, unique: int = 0) -> tuple[Any, ...]:
    """The comparable content of a row about to be stored (as the EXISTING query returns it)."""
    if kind == "hits":
        return (*row[2:13], unique)
    if kind == "events":
        return (*row[2:15], unique, *row[15:19])
    return (row[1], row[2])


def existing(
    raw: sqlite3.Connection, kind: str, site_id: int, first: int, last: int
) -> dict[int, Counter[tuple[Any, ...]]]:
    """The rows already stored in [first, last] seconds, counted per second."""
    pools: dict[int, Counter[tuple[Any, ...]]] = {}
    sql = EXISTING[kind]
    for row in raw.execute(sql, (site_id, first, last)):
        pools.setdefault(int(row[-1]), Counter())[tuple(row[:-1])] += 1
    return pools
