"""Kudos: SQL and row mapping. Kudos are few (people click them by hand), so they are written
as ordinary writer jobs and counted straight from their table."""

from __future__ import annotations

from typing import Any

import aiosqlite

from tinytrack.engine import clock
from tinytrack.models import Kudo

INSERT = "INSERT INTO kudos (site_id, uid, path, created_at) VALUES (?, ?, ?, ?)"
DELETE = "DELETE FROM kudos WHERE site_id = ? AND uid = ?"
COLUMNS = "id, uid, path, created_at"
_FILTERS = {"path": "AND path = ?", "uid": "AND uid = ?"}
WHERE = "WHERE site_id = ? AND created_at >= ? AND created_at < ? "
UID_TAKEN = "Uid has already been taken"


def kudo(row: Any) -> Kudo:
    return Kudo(id=row[0], uid=row[1], path=row[2], created_at=clock.iso(row[3]))


async def list_kudos(
    conn: aiosqlite.Connection,
    site_id: int,
    bounds: tuple[int, int],
    filters: dict[str, str | None],
    page: int,
    per_page: int,
) -> tuple[list[Kudo], int]:
    extra = ""
    args: list[Any] = [site_id, *bounds]
    for name, value in filters.items():
        if value is not None:
            extra += _FILTERS[name] + " "
            args.append(value)
    async with conn.execute("SELECT COUNT(*) FROM kudos " + WHERE + extra, args) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    sql = (
        f"SELECT {COLUMNS} FROM kudos "
        + WHERE
        + extra
        + "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    async with conn.execute(sql, [*args, per_page, (page - 1) * per_page]) as cur:
        rows = await cur.fetchall()
    return [kudo(r) for r in rows], total


async def count_for_path(conn: aiosqlite.Connection, site_id: int, path: str) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM kudos WHERE site_id = ? AND path = ?", (site_id, path)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
