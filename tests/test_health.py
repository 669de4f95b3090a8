"""``/healthz``: 200 while the database takes writes, 503 with the reason when it cannot."""

from __future__ import annotations

import httpx

import tinytrack
from tinytrack.config import Settings
from tinytrack.engine import db
from tinytrack.server.app import create_app


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")  # type: ignore[arg-type]


async def test_healthy_database(engine: tinytrack.Engine) -> None:
    async with client_for(create_app(engine, settings=Settings())) as client:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {
            "status": "ok",
            "database": "writable",
            "version": tinytrack.__version__,
        }
        assert r.headers["cache-control"] == "no-store"
        assert (await client.head("/healthz")).status_code == 200


async def test_read_only_database_is_503(engine: tinytrack.Engine) -> None:
    """SQLite's own read-only state (what a read-only file or mount gives the writer): the
    check is a real write, so it fails like every write would."""
    await db.on_connection_thread(engine._conn, lambda c: c.execute("PRAGMA query_only = 1"))
    async with client_for(create_app(engine, settings=Settings())) as client:
        r = await client.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "error" and body["database"] == "not writable"
        assert "readonly" in body["error"]
    # and it recovers when writes work again
    await db.on_connection_thread(engine._conn, lambda c: c.execute("PRAGMA query_only = 0"))
    assert (await engine.health()).status == "ok"


async def test_closed_engine_is_503(db_path: object) -> None:
    engine = await tinytrack.Engine.open(db_path, maintenance=False)  # type: ignore[arg-type]
    app = create_app(engine, settings=Settings())
    await engine.close()
    async with client_for(app) as client:
        r = await client.get("/healthz")
        assert r.status_code == 503 and r.json()["error"]
