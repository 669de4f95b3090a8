"""``tinytrack serve`` with its write path cut down, for bench_single_breakdown.py ONLY.

Never use it for anything real: the cut-down variants acknowledge hits they do not store. They
exist to show where a single hit's time goes, by taking parts of the write away:

    nodb       the writer answers every queued hit at once; SQLite is never touched
    sleep:MS   the writer waits MS milliseconds per group commit (no CPU, no GIL) instead
    hits-only  the real transaction, without the rollup rows (hits are stored, rollups are not)
    rollup-log the real transaction, but the rollup rows are appended to plain tables without a
               key (what an append-only delta log would cost) instead of upserted

    python benchmarks/diag_serve.py VARIANT [tinytrack serve options...]
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from typing import Any

from tinytrack import cli
from tinytrack.engine import pyramid, writer


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
    else:
        raise SystemExit(f"diag_serve: unknown variant {variant!r}")


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    patch(sys.argv[1])
    return cli.main(["serve", *sys.argv[2:]])


if __name__ == "__main__":
    raise SystemExit(main())
