"""``GET /healthz``: for the reverse proxy and for monitoring. 200 when the database takes a
write, 503 (with the reason) when it does not or while the server starts or stops. No key: it
says nothing about the data."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route

from tinytrack import __version__
from tinytrack.models import to_builtins

NO_CACHE = {"Cache-Control": "no-store"}


@route("/healthz", http_method=["GET", "HEAD"], include_in_schema=False)
async def healthz(request: Request[Any, Any, Any]) -> Response[Any]:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        body: dict[str, Any] = {
            "status": "error",
            "database": "not writable",
            "version": __version__,
            "error": "tinytrack is starting or stopping",
        }
        return Response(body, status_code=503, headers=NO_CACHE)
    health = await engine.health()
    status = 200 if health.status == "ok" else 503
    return Response(to_builtins(health), status_code=status, headers=NO_CACHE)


ROUTES = [healthz]
