"""``create_app``: the Litestar application factory. No globals: the engine hangs off
``app.state`` and is opened/closed by the lifespan when the app owns it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from tinytrack import __version__
from tinytrack.config import Settings
from tinytrack.engine import Engine
from tinytrack.models import EventIn, HitIn, KudoIn
from tinytrack.server import api_v1, api_v1_sessions, dashboard, embed, health
from tinytrack.server.clients import Proxies
from tinytrack.server.collector import Collector
from tinytrack.server.compat import clicky, tracify, webanalyzer, woopra
from tinytrack.server.errors import EXCEPTION_HANDLERS
from tinytrack.server.fast_hits import FastHitPath
from tinytrack.server.ratelimit import RateLimiter

log = logging.getLogger("tinytrack.server")

APP_BODY_LIMIT = api_v1.BATCH_BODY_LIMIT


def create_app(
    engine_or_settings: Engine | Settings | None = None,
    *,
    settings: Settings | None = None,
    fast_path: bool = True,
) -> Litestar:
    """Build the app. Given an open ``Engine``, the caller keeps ownership of it (``settings``
    then only supplies HTTP options such as the rate limit); given ``Settings`` (or nothing:
    defaults + environment), the app opens the database on startup and closes it (flushing
    every queued write) on shutdown."""
    given = engine_or_settings
    if isinstance(given, Settings):
        settings = given
    elif settings is None:
        settings = Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if isinstance(given, Engine):
            app.state.engine = given
            yield
            return
        engine = await Engine.open(
            settings.db,
            max_pending_rows=settings.max_pending_rows,
            ua_retention_days=settings.ua_retention_days,
        )
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.close()

    app = Litestar(
        route_handlers=[
            *api_v1.ROUTES,
            *api_v1_sessions.ROUTES,
            *embed.ROUTES,
            *health.ROUTES,
            *dashboard.ROUTES,
            # Other tools' tracking formats, at their own paths (tinytrack.server.compat).
            *clicky.ROUTES,
            *woopra.ROUTES,
            *webanalyzer.ROUTES,
            *tracify.ROUTES,
        ],
        template_config=TemplateConfig(
            directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine
        ),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=APP_BODY_LIMIT,
        openapi_config=OpenAPIConfig(
            title="tinytrack API",
            version=__version__,
            description="Tinylytics-compatible analytics API served by tinytrack.",
            path="/api/v1/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )
    if isinstance(given, Engine):
        app.state.engine = given  # usable at once, also by ASGI clients that skip the lifespan
    app.state.limiter = RateLimiter(settings.rate_limit)
    app.state.proxies = Proxies(settings.trusted_proxies)
    # Browser-side limits are per client address and per minute (the seed: "25 hits per minute
    # per source"). A pixel source is often a feed reader or mail proxy fetching for many
    # people, and widget reads are cheap, so those get ten times as much.
    per_minute = settings.collector_rate_limit
    app.state.collector_limiter = RateLimiter(per_minute, period=60.0)
    app.state.pixel_limiter = RateLimiter(per_minute * 10, period=60.0)
    app.state.widget_limiter = RateLimiter(per_minute * 10, period=60.0)
    app.state.login_limiter = RateLimiter(dashboard.LOGIN_LIMIT, period=900.0)
    # Web Analyzer's documented limit: 60 requests per minute per API key.
    app.state.track_limiter = RateLimiter(settings.track_rate_limit, period=60.0)
    app.state.settings = settings
    app.state.openapi_document = openapi_document(app)
    app.asgi_handler = Collector(app, app.asgi_handler)
    if fast_path:
        # The single-hit POST is answered before Litestar's router (see fast_hits.py); the
        # exception wrapper and routing of every other request are Litestar's own.
        app.asgi_handler = FastHitPath(app, app.asgi_handler)
    return app


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The generated OpenAPI 3.1 document, with the JSON request bodies that handlers decode
    themselves (with msgspec, to control error shapes) described from the same Structs."""
    doc: dict[str, Any] = app.openapi_schema.to_schema()
    _, components = msgspec.json.schema_components(
        [HitIn, EventIn, KudoIn], ref_template="#/components/schemas/{name}"
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    bodies = {
        "createHit": {"$ref": "#/components/schemas/HitIn"},
        "createHitBatch": {
            "type": "array",
            "maxItems": 1000,
            "items": {"$ref": "#/components/schemas/HitIn"},
        },
        "createEvent": {"$ref": "#/components/schemas/EventIn"},
        "createEventBatch": {
            "type": "array",
            "maxItems": 1000,
            "items": {"$ref": "#/components/schemas/EventIn"},
        },
        "createKudo": {"$ref": "#/components/schemas/KudoIn"},
    }
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and operation.get("operationId") in bodies:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": bodies[operation["operationId"]]}},
                }
    return doc
