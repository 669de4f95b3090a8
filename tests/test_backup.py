"""Your data, the rest: online backups during heavy ingestion (library and CLI beside a running
server) and deleting a site with everything recorded for it. Real database files throughout."""

from __future__ import annotations

import asyncio
import os
import pty
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import tinytrack
from tests.conftest import SAFARI_MAC, Api, FakeClock
from tinytrack.engine import deletion
from tinytrack.errors import InvalidParameter


def consistent_counts(db: Path) -> tuple[int, int]:
    """(hits, events) of a database file that must be internally consistent: integrity, and
    rollup totals equal to the raw rows, day by day."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        raw = conn.execute(
            "SELECT site_id, created_at / 86400, COUNT(*), SUM(is_unique) FROM hits GROUP BY 1, 2"
        ).fetchall()
        rolled = conn.execute(
            "SELECT site_id, utc_day, SUM(hits), SUM(uniques) FROM hit_rollups WHERE dim = 0 "
            "GROUP BY 1, 2"
        ).fetchall()
        assert raw == rolled
        (hits,) = conn.execute("SELECT COUNT(*) FROM hits").fetchone()
        (events,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(hits), int(events)
    finally:
        conn.close()


async def test_backup_during_heavy_ingestion_is_one_moment(
    engine: tinytrack.Engine, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    stop = asyncio.Event()

    async def ingest(n: int) -> None:
        while not stop.is_set():
            await engine.record_hits(
                site.id, [tinytrack.HitIn(path=f"/{n}-{i}", country="PL") for i in range(200)]
            )
            await engine.record_event(site.id, tinytrack.EventIn(event="a.b", value=str(n)))

    writers = [asyncio.create_task(ingest(n)) for n in range(3)]
    while (await engine.get_site(site.id)).lifetime_hits < 3000:
        await asyncio.sleep(0.01)
    before = (await engine.get_site(site.id)).lifetime_hits
    size = await engine.backup(tmp_path / "copy.db")
    after = (await engine.get_site(site.id)).lifetime_hits
    stop.set()
    await asyncio.gather(*writers)
    assert size == (tmp_path / "copy.db").stat().st_size
    hits, events = consistent_counts(tmp_path / "copy.db")
    assert before <= hits <= after and events > 0
    assert not (tmp_path / "copy.db.partial").exists()
    async with tinytrack.open(tmp_path / "copy.db") as copy:  # a working tinytrack database
        assert (await copy.get_site(site.id)).lifetime_hits == hits


async def test_backup_refusals(engine: tinytrack.Engine, tmp_path: Path) -> None:
    (tmp_path / "taken.db").write_bytes(b"x")
    with pytest.raises(InvalidParameter, match="already exists"):
        await engine.backup(tmp_path / "taken.db")
    with pytest.raises(InvalidParameter, match="is not a directory"):
        await engine.backup(tmp_path / "no" / "such" / "dir.db")
    assert (tmp_path / "taken.db").read_bytes() == b"x"
    async with tinytrack.open(":memory:") as memory:
        with pytest.raises(InvalidParameter, match="in-memory"):
            await memory.backup(tmp_path / "m.db")


def test_cli_backup_beside_a_running_server_under_load(tmp_path: Path) -> None:
    from tinytrack.testing import serve

    with serve(tmp_path / "live.db") as server:
        url = f"{server.api}/sites/{server.site_id}/hits/batch"
        headers = {"Authorization": f"Bearer {server.full_key}"}
        stop = threading.Event()
        sent: list[int] = []

        def load() -> None:
            with httpx.Client(headers=headers, timeout=30) as client:
                while not stop.is_set():
                    rows = [{"path": f"/{len(sent)}-{i}", "country": "PL"} for i in range(500)]
                    client.post(url, json=rows).raise_for_status()
                    sent.append(len(rows))

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            while sum(sent) < 5000:
                stop.wait(0.05)
            acknowledged_before = sum(sent)
            r = subprocess.run(
                [sys.executable, "-m", "tinytrack", "backup", str(tmp_path / "copy.db"),
                 "--db", str(server.db_path)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            acknowledged_after = sum(sent)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"Wrote a consistent copy of the database to {tmp_path}")
        hits, _events = consistent_counts(tmp_path / "copy.db")
        # Every hit acknowledged before the backup started is in it; at most the batches in
        # flight when it ended (one per load thread) beyond those acknowledged by then.
        assert acknowledged_before <= hits <= acknowledged_after + 2 * 500


# -- deleting a site ----------------------------------------------------------------------------


def rows_per_site(db: Path) -> dict[tuple[str, int], int]:
    conn = sqlite3.connect(db)
    try:
        out: dict[tuple[str, int], int] = {}
        for table in deletion.site_tables(conn):
            for site_id, n in conn.execute(
                f'SELECT site_id, COUNT(*) FROM "{table}" GROUP BY site_id'
            ):
                out[(table, site_id)] = n
        return out
    finally:
        conn.close()


async def fill_site(engine: tinytrack.Engine, clock: FakeClock, site_id: int) -> None:
    for day in range(3):
        await engine.record_hits(
            site_id,
            [
                tinytrack.HitIn(path=f"/{day}", user_agent=SAFARI_MAC, visitor_id=f"v{i}")
                for i in range(4)
            ],
        )
        await engine.record_event(site_id, tinytrack.EventIn(event="a.b", order_id=f"o{day}"))
        await engine.create_kudo(site_id, tinytrack.KudoIn(path=f"/{day}"))
        clock.advance(86_400)


async def test_delete_site_removes_everything_and_only_it(
    engine: tinytrack.Engine, clock: FakeClock, api: Api
) -> None:
    keep, gone = api.site, await engine.create_site("https://gone.example")
    start = clock.now
    await fill_site(engine, clock, keep.id)
    clock.now = start
    await fill_site(engine, clock, gone.id)
    assert await engine.build_journeys() > 0  # finished days: journeys tables hold rows too
    before = rows_per_site(Path(engine.path))
    assert {t for t, s in before if s == gone.id} >= {
        "hits", "events", "kudos", "hit_rollups", "journeys", "journey_stats", "journey_days",
    }  # fmt: skip

    deleted = await engine.delete_site(gone.id)
    assert deleted["hits"] == 12 and deleted["events"] == 3 and deleted["kudos"] == 3
    after = rows_per_site(Path(engine.path))
    assert {k: v for k, v in before.items() if k[1] != gone.id} == after
    with pytest.raises(tinytrack.NotFound):
        await engine.get_site(gone.id)
    with pytest.raises(tinytrack.NotFound):
        await engine.record_hit(gone.id, tinytrack.HitIn(path="/"))
    with pytest.raises(tinytrack.NotFound):
        await engine.delete_site(gone.id)
    r = await api.client.get(f"/api/v1/sites/{gone.id}/hits", headers=api.auth())
    assert r.status_code == 404
    r = await api.client.get(f"/api/v1/sites/{keep.id}/export.csv", headers=api.auth())
    assert r.status_code == 200 and r.text.count("\r\n") == 13

    # The id is never given to another site: nothing cached anywhere can land in the new one.
    newer = await engine.create_site("https://new.example")
    assert newer.id > gone.id
    result = await engine.record_hit(newer.id, tinytrack.HitIn(path="/0", visitor_id="v0"))
    assert isinstance(result, tinytrack.HitCreated) and result.hit.id > 0
    page = await engine.hits(newer.id, grouped=True, group_by="path")
    assert isinstance(page, tinytrack.GroupedHitsPage)
    assert page.grouped_hits == [{"path": "/0", "views": 1, "unique_views": 1}]


async def test_deleting_the_newest_site_keeps_its_id_retired(engine: tinytrack.Engine) -> None:
    a = await engine.create_site("https://a.example")
    b = await engine.create_site("https://b.example")
    await engine.delete_site(b.id)
    await engine.delete_site(a.id)
    c = await engine.create_site("https://c.example")
    assert c.id == b.id + 1


def _cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tinytrack", *args, "--db", str(db)]


def _on_a_terminal(argv: list[str], answer: str) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr; type ``answer`` after the
    prompt. Returns (exit code, everything shown)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child)
    os.close(child)
    shown = b""
    try:
        while b"to confirm: " not in shown:
            data = os.read(main, 4096)
            if not data:
                break
            shown += data
        os.write(main, answer.encode() + b"\n")
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:
                break
            if not data:
                break
            shown += data
        return proc.wait(timeout=60), shown.decode(errors="replace")
    finally:
        os.close(main)


async def _seed(db: Path) -> str:
    async with tinytrack.open(db) as engine:
        site = await engine.create_site("https://example.com")
        await engine.record_hits(site.id, [tinytrack.HitIn(path="/a")] * 3)
        return site.uid


def test_cli_site_delete_asks_for_confirmation(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    uid = asyncio.run(_seed(db))
    r = subprocess.run(_cli(db, "site", "delete", "1"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "add --yes" in r.stderr and "Traceback" not in r.stderr
    code, shown = _on_a_terminal(_cli(db, "site", "delete", "1"), "wrong")
    assert (
        code == 2
        and "Delete https://example.com (id 1)" in shown
        and "nothing was deleted" in shown
    )
    assert asyncio.run(_site_count(db)) == 1
    code, shown = _on_a_terminal(_cli(db, "site", "delete", uid), uid)
    assert code == 0 and "Deleted site https://example.com (id 1)" in shown
    assert asyncio.run(_site_count(db)) == 0
    asyncio.run(_seed(db))
    r = subprocess.run(
        _cli(db, "site", "delete", "2", "--yes"), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "3 hits" in r.stdout
    r = subprocess.run(
        _cli(db, "site", "delete", "2", "--yes"), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 3 and "no site" in r.stderr


async def _site_count(db: Path) -> int:
    async with tinytrack.open(db) as engine:
        return len(await engine.list_sites())


def test_site_tables_cover_the_schema(tmp_path: Path) -> None:
    """Every table holding per-site rows is found (new migrations included)."""

    async def make() -> None:
        async with tinytrack.open(tmp_path / "t.db"):
            pass

    asyncio.run(make())
    conn = sqlite3.connect(tmp_path / "t.db")
    try:
        found = set(deletion.site_tables(conn))
        tables: list[Any] = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        with_site = {
            t
            for t in tables
            if "site_id" in {c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')}
        }
    finally:
        conn.close()
    assert found == with_site and {"hits", "events", "kudos", "hit_rollups"} <= found
