"""Run the real tinytrack server in-process, for integration tests of your own code::

    from tinytrack.testing import serve

    def test_my_backend_reports_hits():
        with serve() as server:                      # free port on 127.0.0.1, temp database
            my_backend.configure(server.base_url, server.full_key, server.site_id)
            ...
            page = httpx.get(f"{server.api}/sites/{server.site_id}/hits",
                             headers={"Authorization": f"Bearer {server.read_key}"}).json()

The server runs on its own thread and event loop, so this works from sync and async tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tinytrack.config import Settings
from tinytrack.engine import Engine

T = TypeVar("T")


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    db_path: Path
    site_id: int
    site_uid: str
    read_key: str
    full_key: str

    @property
    def api(self) -> str:
        return self.base_url + "/api/v1"


async def _seed(db: Path, site_url: str, timezone: str) -> tuple[int, str, str, str]:
    engine = await Engine.open(db, maintenance=False)
    try:
        site = await engine.create_site(site_url, label="test site", timezone=timezone)
        read = await engine.create_key("read_only", name="tests (read)")
        full = await engine.create_key("full_access", name="tests (write)")
        return site.id, site.uid, read.token, full.token
    finally:
        await engine.close()


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a thread of its own: ``serve`` is called from sync
    code, from async tests and from inside other tools' event loops (Playwright's sync API
    keeps one running), where ``asyncio.run`` would refuse."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@contextlib.contextmanager
def serve(
    db_path: str | Path | None = None,
    *,
    site_url: str = "https://example.com",
    timezone: str = "UTC",
    rate_limit: int = 0,
    collector_rate_limit: int = 0,
    trusted_proxies: str = "",
    startup_timeout: float = 15.0,
) -> Iterator[RunningServer]:
    """Start the real server on a free loopback port with one site and two keys; stop it (all
    writes committed) on exit. Without ``db_path`` a temporary database is used and removed."""
    import uvicorn

    from tinytrack.server.app import create_app

    with contextlib.ExitStack() as stack:
        if db_path is None:
            db_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "tinytrack.db"
        db = Path(db_path)
        site_id, uid, read_key, full_key = _in_thread(lambda: _seed(db, site_url, timezone))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        settings = Settings(
            db=str(db),
            port=port,
            rate_limit=rate_limit,
            collector_rate_limit=collector_rate_limit,
            trusted_proxies=trusted_proxies,
        )
        config = uvicorn.Config(
            create_app(settings),
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,  # tinytrack applies its own trusted_proxies setting
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="tinytrack-test-server",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("tinytrack test server did not start")
            time.sleep(0.01)
        try:
            yield RunningServer(
                base_url=f"http://127.0.0.1:{port}",
                db_path=db,
                site_id=site_id,
                site_uid=uid,
                read_key=read_key,
                full_key=full_key,
            )
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
