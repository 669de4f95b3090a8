"""Sessions: runs of one visitor's actions with no gap longer than the session's timeout.

Rules (also in the README):

- A session belongs to one site and one ``visitor_hash``. An action at time ``t`` continues the
  visitor's session that covers ``t`` (``started_at <= t <= last_seen_at + timeout``, the most
  recent one if several); otherwise it starts a new session at ``t``.
- Page views and events count as ``actions`` and move ``last_seen_at`` forward; a ping only
  moves ``last_seen_at``; goals, custom data and properties change neither (as Clicky says, they
  are "not a visitor action").
- ``timeout`` is the latest one given (Woopra sends it with every request), in seconds, at most
  ``MAX_TIMEOUT``; ``referrer`` is the first action's.
- A session named by id (Clicky's ``session_id``) can be updated at any later time, even long
  after it ended.

The functions taking a ``sqlite3.Connection`` run inside the writer's transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from tinytrack.engine import clock, visitors
from tinytrack.errors import ValidationFailed
from tinytrack.models import SessionRecord

DEFAULT_TIMEOUT = 30 * 60
MAX_TIMEOUT = 86_400
MAX_PROPERTIES = 50
TOO_MANY = f"A session has at most {MAX_PROPERTIES} properties"

_COLUMNS = "id, visitor_hash, started_at, last_seen_at, timeout, actions, referrer, properties"
BY_ID = f"SELECT {_COLUMNS} FROM sessions WHERE id = ? AND site_id = ?"
# The index (site_id, visitor_hash, last_seen_at) narrows to sessions seen within MAX_TIMEOUT
# before t; each row's own timeout is then checked in Python.
COVERING = f"""
SELECT {_COLUMNS} FROM sessions
WHERE site_id = ? AND visitor_hash = ? AND last_seen_at >= ? AND started_at <= ?
ORDER BY last_seen_at DESC, id DESC LIMIT 16
"""
INSERT = """
INSERT INTO sessions (site_id, visitor_hash, started_at, last_seen_at, timeout, actions, referrer)
VALUES (?, ?, ?, ?, ?, 0, NULL)
"""
UPDATE = """
UPDATE sessions SET last_seen_at = ?, timeout = ?, actions = ?, referrer = ? WHERE id = ?
"""
SET_PROPERTIES = "UPDATE sessions SET properties = ? WHERE id = ?"
_WHERE = "WHERE site_id = ? AND started_at >= ? AND started_at < ? "
LIST = f"SELECT {_COLUMNS} FROM sessions {_WHERE}"
COUNT = f"SELECT COUNT(*) FROM sessions {_WHERE}"
BY_VISITOR = "AND visitor_hash = ? "
ORDER = "ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"


@dataclass(slots=True)
class Session:
    id: int
    visitor_hash: str
    started_at: int
    last_seen_at: int
    timeout: int
    actions: int
    referrer: str | None
    properties: str | None

    def covers(self, at: int) -> bool:
        return self.started_at <= at <= self.last_seen_at + self.timeout


def _session(row: Any) -> Session:
    return Session(*row)


def clamp_timeout(seconds: int | None) -> int:
    return DEFAULT_TIMEOUT if seconds is None else max(1, min(seconds, MAX_TIMEOUT))


def by_id(conn: sqlite3.Connection, site_id: int, session_id: int) -> Session | None:
    row = conn.execute(BY_ID, (session_id, site_id)).fetchone()
    return _session(row) if row else None


def covering(conn: sqlite3.Connection, site_id: int, visitor_hash: str, at: int) -> Session | None:
    """The visitor's session that covers ``at``, if any."""
    rows = conn.execute(COVERING, (site_id, visitor_hash, at - MAX_TIMEOUT, at)).fetchall()
    for row in rows:
        session = _session(row)
        if session.covers(at):
            return session
    return None


def start(
    conn: sqlite3.Connection, site_id: int, visitor_hash: str, at: int, timeout: int
) -> Session:
    cur = conn.execute(INSERT, (site_id, visitor_hash, at, at, timeout))
    return Session(int(cur.lastrowid or 0), visitor_hash, at, at, timeout, 0, None, None)


def record(
    conn: sqlite3.Connection,
    session: Session,
    at: int,
    *,
    action: bool,
    alive: bool,
    timeout: int | None,
    referrer: str | None,
) -> bool:
    """Count an action (``action``) and/or keep the session alive until ``at`` (``alive``);
    returns whether this was the session's first action."""
    first = action and session.actions == 0
    if alive or action:
        session.last_seen_at = max(session.last_seen_at, at)
    if timeout is not None:
        session.timeout = timeout
    if action:
        session.actions += 1
    if first and referrer:
        session.referrer = referrer
    conn.execute(
        UPDATE,
        (session.last_seen_at, session.timeout, session.actions, session.referrer, session.id),
    )
    return first


def merge_properties(conn: sqlite3.Connection, session: Session, given: dict[str, Any]) -> None:
    """Set (``None``: remove) session properties; ``ValidationFailed`` past ``MAX_PROPERTIES``."""
    current: dict[str, Any] = msgspec.json.decode(session.properties) if session.properties else {}
    for key, value in given.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    if len(current) > MAX_PROPERTIES:
        raise ValidationFailed([TOO_MANY])
    session.properties = msgspec.json.encode(current).decode() if current else None
    conn.execute(SET_PROPERTIES, (session.properties, session.id))


def list_sessions(
    conn: sqlite3.Connection,
    site_id: int,
    bounds: tuple[int, int],
    visitor_hash: str | None,
    page: int,
    per_page: int,
    now: int,
) -> tuple[list[SessionRecord], int]:
    """Sessions that started in [lo, hi), newest first, with their visitors' properties."""
    extra = ""
    args: list[Any] = [site_id, *bounds]
    if visitor_hash is not None:
        extra = BY_VISITOR
        args.append(visitor_hash)
    conn.execute("BEGIN")
    try:
        total = int(conn.execute(COUNT + extra, args).fetchone()[0])
        rows = conn.execute(
            LIST + extra + ORDER, [*args, per_page, (page - 1) * per_page]
        ).fetchall()
        found: dict[str, dict[str, Any]] = {}
        out: list[SessionRecord] = []
        for row in rows:
            s = _session(row)
            if s.visitor_hash not in found:
                found[s.visitor_hash] = visitors.properties_of(conn, site_id, s.visitor_hash)
            out.append(
                SessionRecord(
                    id=s.id,
                    visitor_hash=s.visitor_hash,
                    started_at=clock.iso(s.started_at),
                    last_seen_at=clock.iso(s.last_seen_at),
                    timeout=s.timeout,
                    active=s.last_seen_at + s.timeout >= now,
                    actions=s.actions,
                    referrer=s.referrer,
                    properties=msgspec.json.decode(s.properties) if s.properties else None,
                    visitor_properties=found[s.visitor_hash] or None,
                )
            )
    finally:
        conn.execute("COMMIT")
    return out, total
