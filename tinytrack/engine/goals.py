"""Goals and revenue totals.

A goal is a name with a number of its own within its site (existing Clicky code names goals by
number; a name it has never sent creates the goal "on the fly"). A completion is an ordinary
event named ``goal.<name>`` carrying the revenue, so every event query, export and rollup sees
it; its order id ``goal:<goal id>:session:<session id>`` makes it count once per session, and
revenue sent later is added to a completion that has none (see ``tracking``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from tinytrack.engine import clock, ingest
from tinytrack.errors import InvalidParameter, NotFound
from tinytrack.models import Goal, RevenueTotal

PREFIX = "goal."
MAX_GOAL_ID = 2**53
MICROS = 1_000_000
GOAL_NOT_FOUND = "Goal not found"

INSERT = "INSERT INTO goals (site_id, id, name, created_at) VALUES (?, ?, ?, ?)"
NEXT_ID = "SELECT COALESCE(MAX(id), 0) + 1 FROM goals WHERE site_id = ?"
BY_ID = "SELECT id, name, created_at FROM goals WHERE site_id = ? AND id = ?"
BY_NAME = "SELECT id, name, created_at FROM goals WHERE site_id = ? AND name = ?"
LIST = "SELECT id, name, created_at FROM goals WHERE site_id = ? ORDER BY id"
# Completions and revenue of every goal event in a time range: one scan of the site's events
# in range ('goal/' is the first string after every 'goal.<name>').
GOAL_TOTALS = """
SELECT name, currency, COUNT(*), SUM(revenue_micros), COUNT(revenue_micros) FROM events
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND name >= 'goal.' AND name < 'goal/'
GROUP BY name, currency
"""
ADD_REVENUE = """
UPDATE events SET revenue_micros = ?, currency = ?
WHERE id = ? AND site_id = ? AND revenue_micros IS NULL
"""
# Revenue per event name for grouped event answers; filters from this whitelist only.
REVENUE_BY_NAME = """
SELECT name, currency, SUM(revenue_micros), COUNT(*) FROM events
WHERE site_id = ? AND created_at >= ? AND created_at < ? AND revenue_micros IS NOT NULL
"""
_FILTERS = {"event": "AND name = ? ", "value": "AND value = ? ", "path": "AND path = ? "}


def is_number(spec: str) -> bool:
    return spec.isascii() and spec.isdigit() and len(spec) <= 15


def check_name(name: str) -> str:
    """A usable goal name (``InvalidParameter`` otherwise): not blank, not a number (numbers
    name goals by id), and ``goal.<name>`` a valid event name."""
    text = name.strip()
    if not text:
        raise InvalidParameter("Goal name can't be blank")
    if len(text) > 200:
        raise InvalidParameter("Goal name is too long (max 200 characters)")
    if is_number(text):
        raise InvalidParameter("Goal name can't be a number (numbers name goals by id)")
    if not ingest.valid_event_name(PREFIX + text):
        raise InvalidParameter("Goal name can't start or end with '.' or hold '..'")
    return text


def create(
    conn: sqlite3.Connection, site_id: int, name: str, goal_id: int | None, now: int
) -> tuple[int, str, int]:
    """Insert a goal (inside the writer's transaction); returns (id, name, created_at)."""
    text = check_name(name)
    if conn.execute(BY_NAME, (site_id, text)).fetchone():
        raise InvalidParameter(f"A goal named {text!r} already exists")
    if goal_id is None:
        goal_id = int(conn.execute(NEXT_ID, (site_id,)).fetchone()[0])
    elif not 1 <= goal_id <= MAX_GOAL_ID:
        raise InvalidParameter(f"Goal id must be between 1 and {MAX_GOAL_ID}")
    elif conn.execute(BY_ID, (site_id, goal_id)).fetchone():
        raise InvalidParameter(f"Goal id {goal_id} is already used")
    conn.execute(INSERT, (site_id, goal_id, text, now))
    return goal_id, text, now


def resolve(conn: sqlite3.Connection, site_id: int, spec: str, now: int) -> tuple[int, str]:
    """(id, name) of the goal ``spec`` names: a number is a goal's id (``NotFound`` when no
    such goal), anything else a name, created when new."""
    text = spec.strip()
    if is_number(text):
        row = conn.execute(BY_ID, (site_id, int(text))).fetchone()
        if row is None:
            raise NotFound(GOAL_NOT_FOUND)
        return int(row[0]), str(row[1])
    row = conn.execute(BY_NAME, (site_id, text)).fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    goal_id, name, _ = create(conn, site_id, text, None, now)
    return goal_id, name


def order_id(goal_id: int, session_id: int) -> str:
    return f"goal:{goal_id}:session:{session_id}"


def _totals(rows: Iterable[Sequence[Any]]) -> dict[str, tuple[int, list[RevenueTotal]]]:
    """name -> (completions, revenue per currency) from GOAL_TOTALS / REVENUE_BY_NAME rows."""
    out: dict[str, tuple[int, list[RevenueTotal]]] = {}
    for name, currency, count, micros, with_revenue in rows:
        done, revenue = out.get(name, (0, []))
        if with_revenue:
            revenue.append(
                RevenueTotal(currency=currency, amount=micros / MICROS, count=with_revenue)
            )
        out[name] = (done + count, revenue)
    return out


async def list_goals(
    conn: aiosqlite.Connection, site_id: int, bounds: tuple[int, int]
) -> list[Goal]:
    async with conn.execute(LIST, (site_id,)) as cur:
        goals = list(await cur.fetchall())
    async with conn.execute(GOAL_TOTALS, (site_id, *bounds)) as cur:
        totals = _totals(await cur.fetchall())
    out: list[Goal] = []
    for goal_id, name, created in goals:
        done, revenue = totals.get(PREFIX + name, (0, []))
        out.append(
            Goal(
                id=goal_id,
                name=name,
                event=PREFIX + name,
                completions=done,
                revenue=sorted(revenue, key=lambda r: r.currency or ""),
                created_at=clock.iso(created),
            )
        )
    return out


async def revenue_by_name(
    conn: aiosqlite.Connection,
    site_id: int,
    bounds: tuple[int, int],
    names: Sequence[str],
    filters: Mapping[str, str | None],
) -> dict[str, list[RevenueTotal]]:
    """Revenue per currency of each of ``names`` (events in range matching ``filters``)."""
    if not names:
        return {}
    sql = REVENUE_BY_NAME
    args: list[Any] = [site_id, *bounds]
    for key, value in filters.items():
        if value is not None:
            sql += _FILTERS[key]
            args.append(value)
    sql += "AND name IN (" + ", ".join("?" for _ in names) + ") GROUP BY name, currency"
    async with conn.execute(sql, [*args, *names]) as cur:
        rows = [(n, c, 0, m, k) for n, c, m, k in await cur.fetchall()]
    return {
        name: sorted(revenue, key=lambda r: r.currency or "")
        for name, (_done, revenue) in _totals(rows).items()
    }
