"""tinytrack: privacy-first web analytics in one SQLite file and one Python process.

Library use::

    import tinytrack

    async with tinytrack.open("analytics.db") as engine:
        site = await engine.create_site("https://example.com", label="Blog")
        await engine.record_hit(site.id, tinytrack.HitIn(path="/hello", country="PL"))
        page = await engine.hits(site.id, grouped=True, group_by="path")

``tinytrack.testing.serve`` runs the real HTTP server on a free loopback port for integration
tests of your own code.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tinytrack.engine.clock import Clock
from tinytrack.engine.core import Engine
from tinytrack.errors import (
    AccessDenied,
    AuthError,
    EngineClosed,
    InvalidParameter,
    NotFound,
    Overloaded,
    TinytrackError,
    ValidationFailed,
)
from tinytrack.models import (
    ApiKey,
    BatchResult,
    Event,
    EventCreated,
    EventIn,
    EventsPage,
    ExportKind,
    Goal,
    GoalsPage,
    GroupedEventsPage,
    GroupedHitsPage,
    Hit,
    HitCreated,
    HitIn,
    HitsPage,
    Ignored,
    ImportReport,
    Kudo,
    KudoCreated,
    KudoDeleted,
    KudoIn,
    KudosPage,
    LeaderboardPage,
    NewApiKey,
    RejectedRow,
    SessionsPage,
    Site,
    Tracked,
    TrackIn,
    UserJourneysPage,
    to_builtins,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "ApiKey",
    "AuthError",
    "BatchResult",
    "Engine",
    "EngineClosed",
    "Event",
    "EventCreated",
    "EventIn",
    "EventsPage",
    "ExportKind",
    "Goal",
    "GoalsPage",
    "GroupedEventsPage",
    "GroupedHitsPage",
    "Hit",
    "HitCreated",
    "HitIn",
    "HitsPage",
    "Ignored",
    "ImportReport",
    "InvalidParameter",
    "Kudo",
    "KudoCreated",
    "KudoDeleted",
    "KudoIn",
    "KudosPage",
    "LeaderboardPage",
    "NewApiKey",
    "NotFound",
    "Overloaded",
    "RejectedRow",
    "SessionsPage",
    "Site",
    "TinytrackError",
    "TrackIn",
    "Tracked",
    "UserJourneysPage",
    "ValidationFailed",
    "__version__",
    "open",
    "to_builtins",
]


@contextlib.asynccontextmanager
async def open(
    path: str | Path = "tinytrack.db", *, clock: Clock | None = None
) -> AsyncIterator[Engine]:
    """Open (creating and migrating if needed) a tinytrack database; ``":memory:"`` works."""
    engine = await Engine.open(path, clock=clock)
    try:
        yield engine
    finally:
        await engine.close()
