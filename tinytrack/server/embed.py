"""The browser side served through Litestar: the embed script, the widgets script and the
widgets' small public JSON answers. (The collector and the pixel, the hot write paths, are
raw ASGI: see ``collector.py``.)

Script URLs are Tinylytics': ``/embed/{site_uid}.js`` and ``/embed/{site_uid}/min.js``. The
bytes are the same for every site (the script reads the uid and its options from its own URL),
so browsers and proxies cache them well; an unknown uid is still a 404, which is what someone
debugging a fresh install needs to see.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import rjsmin
from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from tinytrack.errors import NotFound, TinytrackError
from tinytrack.models import to_builtins
from tinytrack.server import api_v1
from tinytrack.server.errors import RateLimited, error_parts
from tinytrack.server.ratelimit import RateLimiter

# The core script changes when tinytrack is upgraded, under the same URL: an hour of caching,
# then a cheap revalidation (ETag). The widgets file is versioned in its URL.
SCRIPT_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
WIDGETS_CACHE = "public, max-age=86400"
JS_TYPE = "text/javascript"  # Litestar appends "; charset=utf-8"
# Counters change with every hit, and a visitor who just gave kudos must see them on reload:
# never answered from a cache.
WIDGET_JSON_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Script:
    body: bytes
    etag: str


def _script(text: str) -> Script:
    body = text.encode()
    return Script(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


@functools.cache
def script(name: str, *, minified: bool, suffix: str = "js") -> Script:
    """One of the static files (the ``embed`` or ``widgets`` script, the dashboard's), as
    written or minified (rjsmin: comments and whitespace out, behaviour untouched; done once
    per process)."""
    path = f"static/{name}.{suffix}"
    text = resources.files("tinytrack.server").joinpath(path).read_text("utf-8")
    if minified:
        text = rjsmin.jsmin(text, keep_bang_comments=False) + "\n"
    return _script(text)


def _serve(request: Request[Any, Any, Any], asset: Script, cache: str) -> Response[bytes]:
    headers = {
        "Cache-Control": cache,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=JS_TYPE, headers=headers)


async def _check_site(request: Request[Any, Any, Any], uid: str) -> None:
    await api_v1.engine_of(request.app.state).site_id_for_uid(uid)


@get("/embed/{name:str}", include_in_schema=False)
async def embed_script(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    """``/embed/{site_uid}.js``: the readable core script."""
    if not name.endswith(".js"):
        raise NotFound("Not found")
    await _check_site(request, name[:-3])
    return _serve(request, script("embed", minified=False), SCRIPT_CACHE)


@get("/embed/{uid:str}/min.js", include_in_schema=False)
async def embed_script_min(request: Request[Any, Any, Any], uid: FromPath[str]) -> Response[bytes]:
    """``/embed/{site_uid}/min.js``: the same script, minified."""
    await _check_site(request, uid)
    return _serve(request, script("embed", minified=True), SCRIPT_CACHE)


@get("/widgets/v1.js", include_in_schema=False)
async def widgets_script(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _serve(request, script("widgets", minified=False), WIDGETS_CACHE)


@get("/widgets/v1.min.js", include_in_schema=False)
async def widgets_script_min(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _serve(request, script("widgets", minified=True), WIDGETS_CACHE)


def _limit(request: Request[Any, Any, Any]) -> None:
    """Widget reads are public: a per-source limit keeps one client from hammering them."""
    limiter: RateLimiter = request.app.state.widget_limiter
    wait = limiter.hit(request.app.state.proxies.client(request.scope))
    if wait:
        raise RateLimited(wait)


def _json(value: object) -> Response[Any]:
    return Response(to_builtins(value), headers=WIDGET_JSON_HEADERS)


def _error(exc: TinytrackError) -> Response[Any]:
    # Public and cross-origin: errors carry the CORS header too, so the script can read them.
    status, body, headers = error_parts(exc)
    return Response(body, status_code=status, headers={**headers, **WIDGET_JSON_HEADERS})


def _paths(request: Request[Any, Any, Any]) -> list[str]:
    """Every ``path`` query parameter (a page asks for all its counters at once)."""
    return list(request.query_params.getall("path", []))


@get("/widgets/{uid:str}/hits", include_in_schema=False)
async def widget_hits(
    request: Request[Any, Any, Any], uid: FromPath[str], unique: FromQuery[bool] = False
) -> Response[Any]:
    """The hit counter: ``{"unique": bool, "hits": N, "paths": {path: N}}``."""
    try:
        _limit(request)
        engine = api_v1.engine_of(request.app.state)
        return _json(await engine.widget_hits(uid, _paths(request), unique=unique))
    except TinytrackError as exc:
        return _error(exc)


@get("/widgets/{uid:str}/kudos", include_in_schema=False)
async def widget_kudos(request: Request[Any, Any, Any], uid: FromPath[str]) -> Response[Any]:
    """Kudos buttons: ``{"kudos": {path: N}}``."""
    try:
        _limit(request)
        engine = api_v1.engine_of(request.app.state)
        return _json(await engine.widget_kudos(uid, _paths(request)))
    except TinytrackError as exc:
        return _error(exc)


@get("/widgets/{uid:str}/countries", include_in_schema=False)
async def widget_countries(request: Request[Any, Any, Any], uid: FromPath[str]) -> Response[Any]:
    """Visited countries: ``{"countries": ["DE", "US", ...]}``, alphabetical."""
    try:
        _limit(request)
        return _json(await api_v1.engine_of(request.app.state).widget_countries(uid))
    except TinytrackError as exc:
        return _error(exc)


ROUTES = [
    embed_script,
    embed_script_min,
    widgets_script,
    widgets_script_min,
    widget_hits,
    widget_kudos,
    widget_countries,
]
