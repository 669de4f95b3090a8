"""CSV import: reads tinytrack's own export back (restore, or move to another instance).

The kind is recognised from the header. The whole file is checked first (UTF-8, CSV quoting,
header), so a malformed file changes nothing; then rows go to the normal writer in batches, so
rollups, pyramid blocks and journey days stay right, with the unique flags of the file.

Duplicates: a row is skipped when the site already held an identical row at the same second
before this import began, counting repeats (two identical rows in a file need two in the
database). Identical means every column but ``user_agent``, which retention may have removed
since. An event whose order id is already recorded and a kudo whose uid is taken are duplicates
too. So importing a file twice adds nothing, and a file that overlaps what is stored adds only
the rest. The counts are kept per second while the file goes by: for a file in time order (as
tinytrack writes them) only the current second's; for one out of order, every second seen.

A bad row is reported with its line number and reason and never stops the others. A user agent
older than the retention period is not imported (the retention pass would have removed it)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from tinytrack.engine import clock, enrich, ingest
from tinytrack.engine.csv_export import COLUMNS, restore
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.writer import EventRow, HitRow
from tinytrack.errors import InvalidParameter, Overloaded
from tinytrack.models import ExportKind, ImportReport, RejectedRow

BATCH: Final = 1000
MAX_CELL: Final = 8192
MAX_PROPERTY_KEY: Final = 64  # models.PropertyKey
MAX_REJECTED: Final = 1000  # listed in the report; the rest are only counted
FUTURE_SLACK: Final = 86_400  # rows dated later than this after now are refused
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_TOKEN = re.compile(r"[0-9A-Za-z_.:]{1,128}")

# The columns that decide whether a row is already stored (see the module docstring).
KEY_COLUMNS: Final = {
    "hits": (
        "path", "url", "referrer", "source", "country", "browser_name", "platform_name",
        "is_mobile", "unique_hash", "visitor_hash", "is_unique",
    ),
    "events": (
        "name", "value", "path", "url", "referrer", "source", "country", "browser_name",
        "platform_name", "is_mobile", "unique_hash", "visitor_hash", "is_unique", "properties",
        "revenue_micros", "currency", "order_id",
    ),
    "kudos": ("uid", "path"),
}  # fmt: skip
EXISTING: Final = {
    kind: f"SELECT created_at, {', '.join(columns)} FROM {kind} "
    "WHERE site_id = ? AND created_at IN (SELECT value FROM json_each(?))"
    for kind, columns in KEY_COLUMNS.items()
}
EXISTING["visitors"] = (
    "SELECT updated_at, visitor_hash, key, value FROM visitor_properties "
    "WHERE site_id = ? AND updated_at IN (SELECT value FROM json_each(?))"
)
# A property is set when the file's value is at least as recent as the stored one (a newer
# value already stored wins, and the row counts as skipped).
UPSERT_VISITOR: Final = """
INSERT INTO visitor_properties (site_id, visitor_hash, key, value, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (site_id, visitor_hash, key) DO UPDATE
SET value = excluded.value, updated_at = excluded.updated_at
WHERE excluded.updated_at >= visitor_properties.updated_at
"""
INSERT_KUDO: Final = (
    "INSERT OR IGNORE INTO kudos (site_id, uid, path, created_at) VALUES (?, ?, ?, ?)"
)

Key = tuple[Any, ...]


class FileCheck(NamedTuple):
    kind: ExportKind
    rows: int
    in_order: bool  # created_at never goes back (among well-formed times)


class Parsed(NamedTuple):
    row: Any  # HitRow, EventRow or a kudos tuple (site_id, uid, path, created_at)
    unique: int
    at: int
    key: Key


def kind_of(header: list[str]) -> ExportKind:
    if tuple(header) == COLUMNS["hits"]:
        return "hits"
    if tuple(header) == COLUMNS["events"]:
        return "events"
    if tuple(header) == COLUMNS["kudos"]:
        return "kudos"
    if tuple(header) == COLUMNS["visitors"]:
        return "visitors"
    expected = "; ".join(f"{k}: {','.join(c)}" for k, c in COLUMNS.items())
    raise InvalidParameter(f"not a tinytrack export: the header must be one of ({expected})")


def check_file(path: Path) -> FileCheck:
    """Kind, data rows and order of a well-formed export; ``InvalidParameter`` naming the
    problem otherwise. Reads the whole file once, writes nothing."""
    rows = 0
    in_order = True
    latest = ""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise InvalidParameter("the file is empty")
            kind = kind_of(header)
            for cells in reader:
                rows += 1
                # Canonical times compare as strings; malformed ones are rejected later.
                if in_order and cells and _TIME.fullmatch(cells[0]):
                    if cells[0] < latest:
                        in_order = False
                    latest = cells[0]
    except UnicodeDecodeError as exc:
        raise InvalidParameter(
            f"the file is not UTF-8 text (bad byte at offset {exc.start} of a block)"
        ) from None
    except csv.Error as exc:
        raise InvalidParameter(f"malformed CSV after data row {rows}: {exc}") from None
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None
    return FileCheck(kind, rows, in_order)


def read(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every data row, formula guards removed."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        next(reader)
        line = reader.line_num + 1
        for cells in reader:
            yield line, [restore(c) for c in cells]
            line = reader.line_num + 1


def take(lines: Iterator[tuple[int, list[str]]], n: int) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for item in lines:
        out.append(item)
        if len(out) >= n:
            break
    return out


# -- one row ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """What a row is checked against: its site, the moment of the import, and the user-agent
    retention cut-off."""

    site: SiteInfo
    now: int
    ua_cutoff: int


def _time(text: str, rules: Rules) -> int:
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError("created_at must be ISO 8601 UTC, like 2026-02-14T10:00:00Z")
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"created_at is not a valid time: {text}") from None
    at = int(moment.timestamp())
    if at < 0:
        raise ValueError("created_at is before 1970")
    if at > rules.now + FUTURE_SLACK:
        raise ValueError("created_at is in the future")
    return at


def _flag(text: str, name: str) -> int:
    if text not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1")
    return int(text)


def _opt(text: str) -> str | None:
    return text if text != "" else None


def _path(text: str, *, required: bool = True) -> str | None:
    if not text and not required:
        return None
    if not text.startswith("/"):
        raise ValueError("path must start with /")
    return text


def _country(text: str) -> str:
    if not enrich.valid_country(text):
        raise ValueError("country must be a 2-letter uppercase code")
    return text


def _token(text: str, name: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"{name} must be a tinytrack hash (letters and digits)")
    return text


def _agent(text: str, at: int, rules: Rules) -> str | None:
    return text if text and at >= rules.ua_cutoff else None


def _cells(cells: list[str], kind: str) -> None:
    if len(cells) != len(COLUMNS[kind]):
        raise ValueError(f"expected {len(COLUMNS[kind])} cells, found {len(cells)}")
    if any(len(c) > MAX_CELL for c in cells):
        raise ValueError(f"a cell is longer than {MAX_CELL} characters")


def hit(cells: list[str], rules: Rules) -> Parsed:
    _cells(cells, "hits")
    (created, path, url, referrer, source, country, browser, platform, mobile, agent,
     unique_hash, visitor_hash, unique_text) = cells  # fmt: skip
    at = _time(created, rules)
    site = rules.site
    row = HitRow(
        site.id, at, str(_path(path)), _opt(url), _opt(referrer), _opt(source), _country(country),
        _opt(browser), _opt(platform), _flag(mobile, "is_mobile"), _agent(agent, at, rules),
        _token(unique_hash, "unique_hash"), _token(visitor_hash, "visitor_hash"),
        at // clock.SECONDS_PER_DAY, clock.local_day(site.timezone, at),
    )  # fmt: skip
    unique = _flag(unique_text, "is_unique")
    key = (*row[2:10], *row[11:13], unique)
    return Parsed(row, unique, at, key)


def event(cells: list[str], rules: Rules) -> Parsed:
    _cells(cells, "events")
    (created, name, value, path, url, referrer, source, country, browser, platform, mobile,
     agent, unique_hash, visitor_hash, unique_text, properties, revenue, currency,
     order_id) = cells  # fmt: skip
    at = _time(created, rules)
    if not ingest.valid_event_name(name):
        raise ValueError("event must be in category.action form")
    if properties:
        try:
            parsed = json.loads(properties)
        except ValueError:
            raise ValueError("properties must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise ValueError("properties must be a JSON object")
    micros = ingest.revenue_micros(revenue) if revenue else None
    if currency and micros is None:
        raise ValueError("currency without revenue")
    site = rules.site
    row = EventRow(
        site.id, at, name, _opt(value), _path(path, required=False), _opt(url), _opt(referrer),
        _opt(source), _country(country), _opt(browser), _opt(platform),
        _flag(mobile, "is_mobile"), _agent(agent, at, rules), _token(unique_hash, "unique_hash"),
        _token(visitor_hash, "visitor_hash"), _opt(properties), micros, _opt(currency),
        _opt(order_id), at // clock.SECONDS_PER_DAY, clock.local_day(site.timezone, at),
    )  # fmt: skip
    unique = _flag(unique_text, "is_unique")
    key = (*row[2:12], *row[13:15], unique, *row[15:19])
    return Parsed(row, unique, at, key)


def kudo(cells: list[str], rules: Rules) -> Parsed:
    _cells(cells, "kudos")
    created, uid, path = cells
    at = _time(created, rules)
    if not uid:
        raise ValueError("uid is required")
    _path(path)
    return Parsed((rules.site.id, uid, path, at), 0, at, (uid, path))


def visitor(cells: list[str], rules: Rules) -> Parsed:
    _cells(cells, "visitors")
    updated, visitor_hash, key, value = cells
    at = _time(updated, rules)
    _token(visitor_hash, "visitor_hash")
    if not key or len(key) > MAX_PROPERTY_KEY:
        raise ValueError(f"key must be 1 to {MAX_PROPERTY_KEY} characters")
    try:
        decoded = json.loads(value)
    except ValueError:
        raise ValueError(
            "value must be JSON: a string in quotes, a number, true or false"
        ) from None
    if not isinstance(decoded, str | int | float | bool):
        raise ValueError("value must be JSON: a string in quotes, a number, true or false")
    row = (rules.site.id, visitor_hash, key, value, at)
    return Parsed(row, 0, at, (visitor_hash, key, value))


def insert_visitors(raw: sqlite3.Connection, rows: list[Any]) -> list[bool]:
    """Set visitor properties on the writer's connection (inside its transaction); True where
    the file's value was stored."""
    return [raw.execute(UPSERT_VISITOR, row).rowcount == 1 for row in rows]


PARSERS: Final[dict[str, Callable[[list[str], Rules], Parsed]]] = {
    "hits": hit,
    "events": event,
    "kudos": kudo,
    "visitors": visitor,
}


def existing(
    raw: sqlite3.Connection, kind: str, site_id: int, seconds: list[int]
) -> dict[int, Counter[Key]]:
    """The rows stored at these seconds, counted per second and key."""
    pools: dict[int, Counter[Key]] = {}
    for row in raw.execute(EXISTING[kind], (site_id, json.dumps(seconds))):
        pools.setdefault(int(row[0]), Counter())[tuple(row[1:])] += 1
    return pools


def insert_kudos(raw: sqlite3.Connection, rows: list[Any]) -> list[bool]:
    """Insert kudos on the writer's connection (inside its transaction); True where stored."""
    stored = []
    for row in rows:
        stored.append(raw.execute(INSERT_KUDO, row).rowcount == 1)
    return stored


# Kinds the writer's own jobs do not store: inserted inside one of its transactions.
INSERTERS: Final[dict[str, Callable[[sqlite3.Connection, list[Any]], list[bool]]]] = {
    "kudos": insert_kudos,
    "visitors": insert_visitors,
}


# -- the whole file -----------------------------------------------------------------------------

Reader = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
Store = Callable[[str, list[Any], list[int]], Awaitable[list[bool]]]


async def import_file(
    path: Path,
    rules: Rules,
    *,
    read_db: Reader,
    store: Store,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check ``path``, then store its rows in batches through ``store`` (the writer), skipping
    duplicates (see the module docstring); ``read_db(fn)`` runs ``fn`` on a reader connection.
    ``progress(rows_done, rows_total)`` is called after each batch."""
    kind, total, in_order = await asyncio.to_thread(check_file, path)
    parse = PARSERS[kind]
    site_id = rules.site.id
    imported = duplicates = done = rejected_count = 0
    rejected: list[RejectedRow] = []
    # Per second and key: rows of the file so far (seen) and rows this import stored (mine).
    # Stored before the import = in the database now - mine.
    seen: dict[int, Counter[Key]] = {}
    mine: dict[int, Counter[Key]] = {}
    lines = read(path)
    while batch := await asyncio.to_thread(take, lines, BATCH):
        done += len(batch)
        parsed: list[Parsed] = []
        for line, cells in batch:
            try:
                parsed.append(parse(cells, rules))
            except ValueError as exc:
                rejected_count += 1
                if len(rejected) < MAX_REJECTED:
                    rejected.append(RejectedRow(line=line, reason=str(exc)))
        if parsed:
            seconds = sorted({p.at for p in parsed})
            pools: dict[int, Counter[Key]] = await read_db(
                functools.partial(existing, kind=kind, site_id=site_id, seconds=seconds)
            )
            fresh: list[Parsed] = []
            for item in parsed:
                count = seen.setdefault(item.at, Counter())
                if count[item.key] < _before(pools, mine, item):
                    duplicates += 1
                else:
                    fresh.append(item)
                count[item.key] += 1
            if fresh:
                stored = await _store(store, kind, fresh)
                for item, ok in zip(fresh, stored, strict=True):
                    if ok:
                        imported += 1
                        mine.setdefault(item.at, Counter())[item.key] += 1
                    else:
                        duplicates += 1
            if in_order:  # later rows are never earlier than this batch's last second
                last = seconds[-1]
                for table in (seen, mine):
                    for at in [at for at in table if at < last]:
                        del table[at]
        if progress is not None:
            progress(done, total)
    return ImportReport(
        kind=kind,
        rows=done,
        imported=imported,
        duplicates=duplicates,
        rejected_count=rejected_count,
        rejected=rejected,
    )


def _before(pools: dict[int, Counter[Key]], mine: dict[int, Counter[Key]], item: Parsed) -> int:
    """How many rows like ``item`` the site held before this import began."""
    now = pools.get(item.at)
    ours = mine.get(item.at)
    return (now[item.key] if now else 0) - (ours[item.key] if ours else 0)


async def _store(store: Store, kind: str, items: list[Parsed]) -> list[bool]:
    """Store one batch, waiting while the writer's queue is full (live traffic goes first)."""
    rows = [item.row for item in items]
    uniques = [item.unique for item in items]
    for _ in range(600):
        try:
            return await store(kind, rows, uniques)
        except Overloaded as exc:
            await asyncio.sleep(min(exc.retry_after, 0.5))
    raise Overloaded("the writer stayed overloaded for minutes; run the import again later")
