"""``/api/v1``: the Tinylytics-compatible REST API (seed 004, "API Documentation").

Handlers parse and check HTTP-level things (key, limits, parameters) and call the engine; the
engine's structs are serialised as they are. Bodies are decoded here with msgspec rather than by
Litestar's signature model so that every malformed payload gets the seed's 422 shape and batch
rows can fail one by one.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from tinytrack import __version__
from tinytrack.engine import (
    Engine,
    decode_event,
    decode_event_batch,
    decode_hit,
    decode_hit_batch,
    decode_kudo,
)
from tinytrack.engine.params import (
    parse_events_params,
    parse_export_params,
    parse_hits_params,
    parse_journeys_params,
    parse_kudos_params,
    parse_leaderboard_params,
)
from tinytrack.errors import AccessDenied, AuthError, EngineClosed, NotFound
from tinytrack.models import (
    ApiKey,
    BatchResult,
    EventCreated,
    EventsPage,
    GroupedEventsPage,
    GroupedHitsPage,
    HitCreated,
    HitsPage,
    Ignored,
    KudoCreated,
    KudoDeleted,
    KudosPage,
    LeaderboardPage,
    Me,
    Site,
    UserJourneysPage,
    to_builtins,
)
from tinytrack.server import clients
from tinytrack.server.errors import RateLimited
from tinytrack.server.ratelimit import RateLimiter

SINGLE_BODY_LIMIT = 64 * 1024
BATCH_BODY_LIMIT = 4 * 1024 * 1024

SITE_KEYS = (
    "id",
    "uid",
    "url",
    "label",
    "lifetime_hits",
    "lifetime_unique_hits",
    "lifetime_kudos",
    "active",
    "public",
    "created_at",
    "updated_at",
)


def engine_of(state: State) -> Engine:
    engine: Engine | None = getattr(state, "engine", None)
    if engine is None:
        raise EngineClosed("tinytrack is starting or stopping; retry shortly")
    return engine


async def authorize(request: Request[Any, Any, Any], *, write: bool = False) -> ApiKey:
    """Bearer key -> 401 if missing/invalid/revoked, 429 over the rate limit, 403 if a write
    needs a full-access key."""
    return await check_key(request.app.state, request.headers.get("authorization"), write=write)


async def check_key(state: State, header: str | None, *, write: bool = False) -> ApiKey:
    """``authorize`` on a raw Authorization header value (shared with the fast hit path)."""
    token = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("Authorization header must be 'Bearer <api key>'")
        token = value.strip()
    key = await engine_of(state).authenticate(token)
    limiter: RateLimiter = state.limiter
    wait = limiter.hit(key.id)
    if wait:
        raise RateLimited(wait)
    if write and key.access_type != "full_access":
        raise AccessDenied("This endpoint requires a full-access API key")
    return key


def site_id_of(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound("Site not found")
    return int(raw)


def site_json(site: Site) -> dict[str, Any]:
    data = to_builtins(site)
    return {key: data[key] for key in SITE_KEYS}


@get("/api/v1", summary="API discovery metadata", tags=["meta"])
async def discovery(request: Request[Any, Any, Any]) -> dict[str, Any]:
    public = clients.base_url(
        request.scope, request.app.state.proxies, str(request.base_url).rstrip("/")
    )
    base = public + "/api/v1"
    return {
        "name": "tinytrack",
        "version": __version__,
        "api_version": "v1",
        "base_url": base,
        "openapi_url": base + "/openapi.json",
        "authentication": {
            "type": "bearer",
            "header": "Authorization: Bearer <api key>",
            "read_only_prefix": "tt-ro-",
            "full_access_prefix": "tt-fa-",
        },
        "rate_limit": {
            "requests_per_hour_per_key": request.app.state.limiter.limit or None,
        },
        "endpoints": [
            {"method": "GET", "path": "/me", "access": "read_only"},
            {"method": "GET", "path": "/sites", "access": "read_only"},
            {"method": "GET", "path": "/sites/{id}", "access": "read_only"},
            {"method": "GET", "path": "/sites/{id}/hits", "access": "read_only"},
            {"method": "POST", "path": "/sites/{id}/hits", "access": "full_access"},
            {"method": "POST", "path": "/sites/{id}/hits/batch", "access": "full_access"},
            {"method": "GET", "path": "/sites/{id}/events", "access": "read_only"},
            {"method": "POST", "path": "/sites/{id}/events", "access": "full_access"},
            {"method": "POST", "path": "/sites/{id}/events/batch", "access": "full_access"},
            {"method": "GET", "path": "/sites/{id}/kudos", "access": "read_only"},
            {"method": "POST", "path": "/sites/{id}/kudos", "access": "full_access"},
            {"method": "DELETE", "path": "/sites/{id}/kudos/{kudo_uid}", "access": "full_access"},
            {"method": "GET", "path": "/sites/{id}/leaderboard", "access": "read_only"},
            {"method": "GET", "path": "/sites/{id}/user_journeys", "access": "read_only"},
            {"method": "GET", "path": "/sites/{id}/sessions", "access": "read_only"},
            {"method": "GET", "path": "/sites/{id}/goals", "access": "read_only"},
            {"method": "POST", "path": "/sites/{id}/goals", "access": "full_access"},
            {"method": "GET", "path": "/sites/{id}/visitors/{visitor_hash}", "access": "read_only"},
        ],
    }


@get("/api/v1/openapi.json", summary="OpenAPI 3.1 schema for API v1", tags=["meta"])
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.state.openapi_document  # type: ignore[no-any-return]


@get("/api/v1/me", summary="Validate the API key and return account info", tags=["account"])
async def me(request: Request[Any, Any, Any]) -> Me:
    key = await authorize(request)
    return await engine_of(request.app.state).me(key)


@get("/api/v1/sites", summary="List sites with lifetime counters", tags=["sites"])
async def list_sites(request: Request[Any, Any, Any]) -> dict[str, Any]:
    await authorize(request)
    sites = await engine_of(request.app.state).list_sites()
    return {"sites": [site_json(site) for site in sites]}


@get("/api/v1/sites/{site_id:str}", summary="Get one site", tags=["sites"])
async def get_site(request: Request[Any, Any, Any], site_id: FromPath[str]) -> dict[str, Any]:
    await authorize(request)
    return site_json(await engine_of(request.app.state).get_site(site_id_of(site_id)))


def _q(description: str) -> QueryParameter:
    return QueryParameter(description=description)


# Query parameters are declared (as plain strings) so the OpenAPI document lists them; their
# values are checked by tinytrack.engine.params so every bad value gets the same clear 400.
Q = str | None


@get(
    "/api/v1/sites/{site_id:str}/hits",
    summary="Raw or grouped hits",
    tags=["analytics"],
)
async def read_hits(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: 30 days before end)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive (default: today)")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
    country: Annotated[Q, _q("Exact 2-letter country code")] = None,
    path: Annotated[Q, _q("Exact path, e.g. /pricing")] = None,
    referrer: Annotated[Q, _q("Case-insensitive partial match on the referrer")] = None,
    grouped: Annotated[Q, _q("true: return grouped counts")] = None,
    group_by: Annotated[
        Q, _q("path, country, referrer, browser_name, platform_name or source")
    ] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 1000 (default 100)")] = None,
) -> HitsPage | GroupedHitsPage:
    await authorize(request)
    sid = site_id_of(site_id)
    given = {
        "start_date": start_date,
        "end_date": end_date,
        "time_zone": time_zone,
        "country": country,
        "path": path,
        "referrer": referrer,
        "grouped": grouped,
        "group_by": group_by,
        "page": page,
        "per_page": per_page,
    }
    kwargs = parse_hits_params({k: v for k, v in given.items() if v is not None})
    return await engine_of(request.app.state).hits(sid, **kwargs)


@post(
    "/api/v1/sites/{site_id:str}/hits",
    summary="Create one hit (full access)",
    tags=["analytics"],
    request_max_body_size=SINGLE_BODY_LIMIT,
    status_code=201,
    operation_id="createHit",
)
async def create_hit(
    request: Request[Any, Any, Any], site_id: FromPath[str]
) -> Response[HitCreated | Ignored]:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    hit = decode_hit(await request.body())
    result = await engine.record_hit(sid, hit)
    return Response(result, status_code=201 if isinstance(result, HitCreated) else 202)


@post(
    "/api/v1/sites/{site_id:str}/hits/batch",
    summary="Create many hits in one request (full access, partial success)",
    tags=["analytics"],
    request_max_body_size=BATCH_BODY_LIMIT,
    status_code=200,
    operation_id="createHitBatch",
)
async def create_hit_batch(request: Request[Any, Any, Any], site_id: FromPath[str]) -> BatchResult:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    items = decode_hit_batch(await request.body())
    return await engine.record_hits(sid, items)


def _given(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


@post(
    "/api/v1/sites/{site_id:str}/events",
    summary="Create one event (full access)",
    tags=["events"],
    request_max_body_size=SINGLE_BODY_LIMIT,
    status_code=201,
    operation_id="createEvent",
)
async def create_event(
    request: Request[Any, Any, Any], site_id: FromPath[str]
) -> Response[EventCreated | Ignored]:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    event = decode_event(await request.body())
    result = await engine.record_event(sid, event)
    return Response(result, status_code=201 if isinstance(result, EventCreated) else 202)


@post(
    "/api/v1/sites/{site_id:str}/events/batch",
    summary="Create many events in one request (full access, partial success)",
    tags=["events"],
    request_max_body_size=BATCH_BODY_LIMIT,
    status_code=200,
    operation_id="createEventBatch",
)
async def create_event_batch(
    request: Request[Any, Any, Any], site_id: FromPath[str]
) -> BatchResult:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    items = decode_event_batch(await request.body())
    return await engine.record_events(sid, items)


@get("/api/v1/sites/{site_id:str}/events", summary="Raw or grouped events", tags=["events"])
async def read_events(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: 30 days before end)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive (default: today)")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
    event: Annotated[Q, _q("Exact event name, e.g. signup.started")] = None,
    value: Annotated[Q, _q("Exact event value")] = None,
    path: Annotated[Q, _q("Exact path")] = None,
    grouped: Annotated[Q, _q("true: return grouped counts")] = None,
    group_by: Annotated[Q, _q("event (default), value or path")] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 1000 (default 100)")] = None,
) -> EventsPage | GroupedEventsPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_events_params(
        _given(
            start_date=start_date,
            end_date=end_date,
            time_zone=time_zone,
            event=event,
            value=value,
            path=path,
            grouped=grouped,
            group_by=group_by,
            page=page,
            per_page=per_page,
        )
    )
    return await engine_of(request.app.state).events(sid, **kwargs)


@get("/api/v1/sites/{site_id:str}/kudos", summary="Read kudos records", tags=["kudos"])
async def read_kudos(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: 30 days before end)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive (default: today)")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
    path: Annotated[Q, _q("Exact path")] = None,
    uid: Annotated[Q, _q("Exact kudo uid")] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 1000 (default 100)")] = None,
) -> KudosPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_kudos_params(
        _given(
            start_date=start_date,
            end_date=end_date,
            time_zone=time_zone,
            path=path,
            uid=uid,
            page=page,
            per_page=per_page,
        )
    )
    return await engine_of(request.app.state).kudos(sid, **kwargs)


@get(
    "/api/v1/sites/{site_id:str}/export.csv",
    summary="Export hits, events, kudos or visitor properties as CSV (streamed)",
    tags=["export"],
    media_type="text/csv",
)
async def export_csv(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    kind: Annotated[Q, _q("hits (default), events, kudos or visitors")] = None,
    start_date: Annotated[Q, _q("First day, YYYY-MM-DD (default: the whole history)")] = None,
    end_date: Annotated[Q, _q("Last day, YYYY-MM-DD, inclusive")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
) -> Stream:
    """RFC 4180 CSV with a header row, UTF-8, ISO 8601 UTC times, oldest first; columns in
    the README. A read-only key suffices."""
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_export_params(
        _given(kind=kind, start_date=start_date, end_date=end_date, time_zone=time_zone)
    )
    engine = engine_of(request.app.state)
    site = await engine.get_site(sid)
    chunks = await engine.export_csv(sid, **kwargs)
    span = "-".join(str(kwargs[k]) for k in ("start_date", "end_date") if k in kwargs)
    name = f"tinytrack-{site.uid}-{kwargs['kind']}{'-' + span if span else ''}.csv"
    return Stream(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@post(
    "/api/v1/sites/{site_id:str}/kudos",
    summary="Create one kudo (full access)",
    tags=["kudos"],
    request_max_body_size=SINGLE_BODY_LIMIT,
    status_code=201,
    operation_id="createKudo",
)
async def create_kudo(
    request: Request[Any, Any, Any], site_id: FromPath[str]
) -> Response[KudoCreated | Ignored]:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    result = await engine.create_kudo(sid, decode_kudo(await request.body()))
    return Response(result, status_code=201 if isinstance(result, KudoCreated) else 202)


@delete(
    "/api/v1/sites/{site_id:str}/kudos/{kudo_uid:str}",
    summary="Delete one kudo by uid (full access)",
    tags=["kudos"],
    status_code=200,
)
async def delete_kudo(
    request: Request[Any, Any, Any], site_id: FromPath[str], kudo_uid: FromPath[str]
) -> KudoDeleted:
    await authorize(request, write=True)
    return await engine_of(request.app.state).delete_kudo(site_id_of(site_id), kudo_uid)


@get(
    "/api/v1/sites/{site_id:str}/leaderboard",
    summary="All-time path leaderboard",
    tags=["analytics"],
)
async def read_leaderboard(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    path: Annotated[Q, _q("Case-insensitive partial match on the path")] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 1000 (default 100)")] = None,
) -> LeaderboardPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_leaderboard_params(_given(path=path, page=page, per_page=per_page))
    return await engine_of(request.app.state).leaderboard(sid, **kwargs)


@get(
    "/api/v1/sites/{site_id:str}/user_journeys",
    summary="Visitor journeys: each visitor's pages per UTC day, with summary and top pages",
    tags=["analytics"],
)
async def read_user_journeys(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: 30 days before end)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive (default: today)")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 50 (default 50)")] = None,
) -> UserJourneysPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_journeys_params(
        _given(
            start_date=start_date,
            end_date=end_date,
            time_zone=time_zone,
            page=page,
            per_page=per_page,
        )
    )
    return await engine_of(request.app.state).user_journeys(sid, **kwargs)


ROUTES = [
    discovery,
    openapi_json,
    me,
    list_sites,
    get_site,
    read_hits,
    create_hit,
    create_hit_batch,
    create_event,
    create_event_batch,
    read_events,
    read_kudos,
    export_csv,
    create_kudo,
    delete_kudo,
    read_leaderboard,
    read_user_journeys,
]
