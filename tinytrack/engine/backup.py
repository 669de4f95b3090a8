"""Online backup: a consistent copy of the live database in a new file.

``VACUUM INTO`` on a read-only connection of its own reads one snapshot (one read transaction)
and writes a compact copy, while the server's writer goes on committing beside it (WAL). The
copy is written to ``<file>.partial``, flushed to disk and only then renamed, so a backup that
fails or is interrupted never leaves a file that looks complete. (The page-by-page backup API
was not used: it starts over whenever another connection writes, so under steady ingestion it
may never finish.) While it runs the WAL cannot be checkpointed past its snapshot and grows; it
is folded back in afterwards. Hits the snapshot holds but the live writer had not folded into
the rollups yet (see fold.py) are folded in the copy before it is renamed, so the copy is
complete on its own, whatever reads it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tinytrack.engine import fold
from tinytrack.errors import InvalidParameter


def vacuum_into(source: str | Path, target: Path) -> int:
    """Copy ``source`` to the new file ``target``; returns the copy's size in bytes."""
    if target.exists():
        raise InvalidParameter(f"{target} already exists; choose a new file")
    if not target.parent.is_dir():
        raise InvalidParameter(f"{target.parent} is not a directory")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    uri = Path(source).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (str(partial),))
        finally:
            conn.close()
        copy_conn = sqlite3.connect(partial, isolation_level=None)
        try:
            copy_conn.execute("BEGIN IMMEDIATE")
            fold.fold_all(copy_conn)
            copy_conn.execute("COMMIT")
        finally:
            copy_conn.close()
        with partial.open("rb+") as copy:
            os.fsync(copy.fileno())
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise InvalidParameter(f"backup failed: {exc}") from None
    os.replace(partial, target)
    return target.stat().st_size
