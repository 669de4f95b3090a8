"""Fixtures: a fresh engine on a real SQLite file per test, and the real Litestar app on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import Phase, settings

import tinytrack
from tinytrack.config import Settings
from tinytrack.server.app import create_app

# A failing property test must still report within scripts/test's time ceiling. Shrinking stays
# (a small failing example is worth it); the "explain" phase, which reruns the test many more
# times to annotate the example, goes: with tests that open an engine per example it ran for
# minutes after a failure. No deadline: an example that is merely slow (a loaded CI machine, two
# test runs at once) is not a failure; timing belongs in benchmarks/, not in tests.
settings.register_profile(
    "tinytrack", phases=[p for p in Phase if p is not Phase.explain], deadline=None
)
settings.load_profile("tinytrack")

# 2026-02-14 10:00:00 UTC, a Saturday: fixed so dates in assertions are stable.
T0 = dt.datetime(2026, 2, 14, 10, 0, tzinfo=dt.UTC).timestamp()

SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


class FakeClock:
    """Injectable clock: tests move time explicitly."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tinytrack.db"


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[tinytrack.Engine]:
    eng = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    try:
        yield eng
    finally:
        await eng.close()


@dataclass
class Api:
    client: httpx.AsyncClient
    engine: tinytrack.Engine
    site: tinytrack.Site
    read_key: str
    full_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.read_key}"}

    @property
    def write(self) -> dict[str, str]:
        return self.auth(self.full_key)


async def make_api(
    engine: tinytrack.Engine, *, rate_limit: int = 0, fast_path: bool = True
) -> AsyncIterator[Api]:
    site = await engine.create_site("https://example.com", label="My Blog")
    read = await engine.create_key("read_only", name="CLI integration")
    full = await engine.create_key("full_access", name="backend")
    app = create_app(engine, settings=Settings(rate_limit=rate_limit), fast_path=fast_path)
    # httpx's ASGI transport runs the real app in this test's event loop, beside the engine.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, engine, site, read.token, full.token)


@pytest.fixture
async def api(engine: tinytrack.Engine) -> AsyncIterator[Api]:
    async for value in make_api(engine):
        yield value
