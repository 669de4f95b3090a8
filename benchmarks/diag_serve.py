"""``tinytrack serve`` with its write path cut down, for bench_single_breakdown.py ONLY.

Never use it for anything real: the cut-down variants acknowledge hits they do not store. They
exist to show where a single hit's time goes, by taking parts of the write away:

    nodb       the writer answers every queued hit at once; SQLite is never touched
    sleep:MS   the writer waits MS milliseconds per group commit (no CPU, no GIL) instead
    hits-only  the real transaction, without the rollup rows (hits are stored, rollups are not)
    rollup-log the real transaction, but the rollup rows are appended to plain tables without a
               key (what an append-only delta log would cost) instead of upserted
    trigger    the real transaction, but the rollups are kept by a TEMP trigger on the writer's
               connection (inside SQLite, without the GIL) instead of counted in Python;
               a prototype: exact only for sites in UTC (local day = UTC day)
    trigger-multi  as trigger, and the hit rows go in as one multi-row INSERT per commit (one
               sqlite3 step, so the writer's thread takes the GIL back once, not once a row)

    python benchmarks/diag_serve.py VARIANT [tinytrack serve options...]
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from typing import Any

from tinytrack import cli
from tinytrack.engine import db, pyramid, rollups, writer


def _answered(jobs: list[Any]) -> list[list[writer.Stored]]:
    return [[writer.Stored(0, True) for _ in job.rows] for job in jobs]


def patch(variant: str) -> None:
    if variant == "nodb":

        async def nodb(self: writer.Writer, jobs: list[Any]) -> list[list[writer.Stored]]:
            return _answered(jobs)

        writer.Writer._write_hits = nodb  # type: ignore[method-assign]
    elif variant.startswith("sleep:"):
        seconds = float(variant.partition(":")[2]) / 1000

        async def sleep(self: writer.Writer, jobs: list[Any]) -> list[list[writer.Stored]]:
            await asyncio.sleep(seconds)
            return _answered(jobs)

        writer.Writer._write_hits = sleep  # type: ignore[method-assign]
    elif variant == "hits-only":
        if not hasattr(writer, "_hit_rollup_rows"):  # fail loudly if the writer changed
            raise SystemExit("diag_serve: tinytrack.engine.writer._hit_rollup_rows is gone")
        writer._hit_rollup_rows = lambda hits, uniques: ([], [])
    elif variant == "rollup-log":
        db = sys.argv[sys.argv.index("--db") + 1]
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS diag_rollup_log (a, b, c, d, e, f, g)")
            conn.execute("CREATE TABLE IF NOT EXISTS diag_block_log (a, b, c, d, e, f, g, h)")
        writer.UPSERT_ROLLUP = "INSERT INTO diag_rollup_log VALUES (?, ?, ?, ?, ?, ?, ?)"
        pyramid.UPSERT_BLOCK = "INSERT INTO diag_block_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    elif variant == "trigger":
        _patch_trigger()
    elif variant == "trigger-multi":
        _patch_trigger()
        _patch_multi_row()
    else:
        raise SystemExit(f"diag_serve: unknown variant {variant!r}")


_HIT_COLUMNS = (
    "id, site_id, created_at, path, url, referrer, source, country, browser_name, platform_name,"
    " is_mobile, user_agent, unique_hash, visitor_hash, is_unique"
)


def _trigger_sql() -> list[str]:
    new_values = ", ".join(f"NEW.{c.strip()}" for c in _HIT_COLUMNS.split(","))
    upserts = [
        "INSERT INTO hit_rollups (site_id, dim, utc_day, local_day, value, hits, uniques)"
        f" VALUES (NEW.site_id, {code}, NEW.created_at / 86400, NEW.created_at / 86400, {value},"
        " 1, NEW.is_unique) ON CONFLICT (site_id, dim, utc_day, local_day, value)"
        " DO UPDATE SET hits = hits + 1, uniques = uniques + excluded.uniques;"
        for code, value in [
            (rollups.TOTAL, "''"),
            *((code, f"COALESCE(NEW.{col}, '')") for code, col in rollups.DIMENSIONS.values()),
        ]
    ]
    upserts.append(
        "INSERT INTO hit_rollup_blocks (site_id, dim, level, utc_block, local_block, value, hits,"
        f" uniques) VALUES (NEW.site_id, {rollups.DIMENSIONS['path'][0]}, {pyramid.ALL_TIME}, 0,"
        " 0, NEW.path, 1, NEW.is_unique) ON CONFLICT (site_id, dim, level, utc_block,"
        " local_block, value) DO UPDATE SET hits = hits + 1, uniques = uniques + excluded.uniques;"
    )
    return [
        f"CREATE TEMP VIEW hits_in AS SELECT {_HIT_COLUMNS} FROM hits",
        "CREATE TEMP TRIGGER hits_in_insert INSTEAD OF INSERT ON hits_in BEGIN"
        f" INSERT INTO hits ({_HIT_COLUMNS}) VALUES ({new_values}); {' '.join(upserts)} END",
    ]


def _patch_trigger() -> None:
    connect = db.connect_writer

    async def connect_writer(path: Any) -> Any:
        conn = await connect(path)
        for statement in _trigger_sql():
            await conn.execute(statement)
        return conn

    db.connect_writer = connect_writer  # type: ignore[assignment]
    writer.INSERT_HIT = (
        f"INSERT INTO hits_in ({_HIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    writer._hit_rollup_rows = lambda hits, uniques: ([], [])


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    patch(sys.argv[1])
    return cli.main(["serve", *sys.argv[2:]])


class _MultiRow:
    """A stand-in for the raw connection whose executemany of the hit insert is one statement."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> Any:
        if sql != writer.INSERT_HIT or len(rows) * 15 > 32_000 or not rows:
            return self._raw.executemany(sql, rows)
        values = ", ".join(["(" + ", ".join("?" * 15) + ")"] * len(rows))
        head = sql.partition("VALUES")[0]
        return self._raw.execute(f"{head} VALUES {values}", [v for row in rows for v in row])


def _patch_multi_row() -> None:
    run = db.on_connection_thread

    async def on_connection_thread(conn: Any, fn: Any) -> Any:
        return await run(conn, lambda raw: fn(_MultiRow(raw)))

    db.on_connection_thread = on_connection_thread  # type: ignore[assignment]


if __name__ == "__main__":
    raise SystemExit(main())
