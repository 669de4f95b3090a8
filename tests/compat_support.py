"""Helpers shared by the tests of the other tools' formats (tests/test_compat_*.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import tinytrack
from tinytrack.models import TrackIn

TABLES = ("hits", "events", "sessions", "visitor_properties", "goals")


def counts(db_path: str | Path) -> dict[str, int]:
    """Rows per table: a rejected request must leave every one unchanged."""
    with sqlite3.connect(db_path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def rows(db_path: str | Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.execute(sql, args).fetchall())


async def make_sessions(engine: tinytrack.Engine, site_id: int, until: int) -> None:
    """Start sessions (one visitor each) until session id ``until`` exists: the seeds' examples
    name session 123."""
    n = 0
    while not rows(engine.path, "SELECT 1 FROM sessions WHERE id = ?", until):
        n += 1
        await engine.track(
            site_id,
            TrackIn(kind="visit", ip_address=f"10.9.{n // 250}.{n % 250}", session_timeout=60),
        )
