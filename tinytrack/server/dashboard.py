"""The dashboard: server-rendered pages (Litestar + Jinja templates, a little self-hosted CSS and
JavaScript, nothing from a CDN) for the instance owner, and the read-only public stats page.

Every figure comes from the same engine calls as the API (``Engine.hits`` grouped,
``Engine.events``, ``Engine.user_journeys``, ``Engine.traffic`` for the chart), so the dashboard
and the API cannot disagree. Private pages need the owner's session (see ``sessions.py``):
logged out, a page redirects to the login form (302) and an action answers 403."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream, Template

from tinytrack import __version__
from tinytrack.engine import Engine
from tinytrack.errors import InvalidParameter, NotFound, TinytrackError
from tinytrack.models import AccessType, GroupedEventsPage, Period, Site
from tinytrack.server import api_v1, charts, embed, sessions
from tinytrack.server.ratelimit import RateLimiter

PERIODS: dict[str, str] = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "12m": "Last 12 months",
}
FILTERS = ("path", "referrer", "country", "browser")
TABLE_ROWS = 10
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOGIN_LIMIT = 10  # attempts per client address per 15 minutes


def _engine(request: Request[Any, Any, Any]) -> Engine:
    return api_v1.engine_of(request.app.state)


def _secure(request: Request[Any, Any, Any]) -> bool:
    scheme, _host = request.app.state.proxies.scheme_and_host(request.scope)
    return (scheme or request.scope.get("scheme")) == "https"


async def _session(request: Request[Any, Any, Any]) -> tuple[sessions.Session | None, bytes | None]:
    secret = await _engine(request).session_secret()
    return sessions.read_cookie(secret, request.cookies.get(sessions.COOKIE)), secret


def _page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(
        template_name=name,
        context={"version": __version__, **context},
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def _to_login(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(
        "/dashboard/login?" + urlencode({"next": target}), status_code=302, headers=SECURITY_HEADERS
    )


def _forbidden() -> Response[Any]:
    return Response(
        {"error": "Log in to the dashboard first"}, status_code=403, headers=SECURITY_HEADERS
    )


async def _authorized_post(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """The form of a POST by the logged-in owner with a valid CSRF token, else None."""
    session, secret = await _session(request)
    form = await request.form()
    values = {k: str(v) for k, v in form.items()}
    if session is None or not sessions.check_csrf(secret, session, values.get("csrf")):
        return None
    return values


# -- login ------------------------------------------------------------------------------------


@get("/dashboard/login", include_in_schema=False)
async def login_form(
    request: Request[Any, Any, Any], next: FromQuery[str] = "/dashboard"
) -> Template:
    has_password = await _engine(request).has_owner_password()
    return _page("login.html.j2", next=_safe_next(next), has_password=has_password, error=None)


@post("/dashboard/login", include_in_schema=False, status_code=303)
async def login(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    engine = _engine(request)
    form = await request.form()
    target = _safe_next(str(form.get("next") or "/dashboard"))
    limiter: RateLimiter = request.app.state.login_limiter
    wait = limiter.hit(request.app.state.proxies.client(request.scope))
    if wait:
        message = f"Too many attempts. Try again in {max(1, wait // 60)} minute(s)."
        return _page("login.html.j2", 429, next=target, has_password=True, error=message)
    password = str(form.get("password") or "")
    if not await engine.check_owner_password(password):
        await asyncio.sleep(0)  # the check itself is slow (scrypt); nothing to add here
        has_password = await engine.has_owner_password()
        return _page(
            "login.html.j2", 401, next=target, has_password=has_password, error="Wrong password."
        )
    secret = await engine.session_secret()
    assert secret is not None
    cookie = Cookie(
        key=sessions.COOKIE,
        value=sessions.new_cookie(secret),
        max_age=sessions.LIFETIME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return Redirect(target, status_code=303, cookies=[cookie], headers=SECURITY_HEADERS)


@post("/dashboard/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    if await _authorized_post(request) is None:
        return _forbidden()
    response = Redirect("/dashboard/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only local dashboard paths: a login link must not bounce anyone to another site."""
    if target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


# -- pages ------------------------------------------------------------------------------------


@get("/dashboard", include_in_schema=False)
async def sites_page(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    session, secret = await _session(request)
    if session is None or secret is None:
        return _to_login(request)
    engine = _engine(request)
    rows = []
    now = engine.now()
    for site in await engine.list_sites():
        last = await engine.last_hit_at(site.id)
        recent = last is not None and now - _seconds(last) < 86400
        rows.append({"site": site, "last_hit": last, "recent": recent})
    return _page("sites.html.j2", rows=rows, csrf=session.csrf(secret))


def _seconds(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


@get("/dashboard/sites/{site_id:int}", include_in_schema=False)
async def site_page(
    request: Request[Any, Any, Any], site_id: FromPath[int]
) -> Response[Any] | Template:
    session, secret = await _session(request)
    if session is None or secret is None:
        return _to_login(request)
    started = time.perf_counter()
    engine = _engine(request)
    site = await engine.get_site(site_id)
    report = await _report(engine, site, dict(request.query_params), f"/dashboard/sites/{site_id}")
    page = _page("site.html.j2", **report, public=False, csrf=session.csrf(secret))
    # The time spent gathering the page's figures, for benchmarks/bench_dashboard.py (and any
    # browser's network panel): Server-Timing is a standard header.
    page.headers["Server-Timing"] = f"figures;dur={(time.perf_counter() - started) * 1000:.1f}"
    return page


@get("/dashboard/sites/{site_id:int}/export.csv", include_in_schema=False)
async def export_csv(
    request: Request[Any, Any, Any], site_id: FromPath[int], kind: FromQuery[str] = "hits"
) -> Response[Any] | Stream:
    """The export buttons: the API's CSV export of the whole history, by the owner's session."""
    session, _secret = await _session(request)
    if session is None:
        return _forbidden()
    if kind not in ("hits", "events", "kudos", "visitors"):
        raise InvalidParameter("kind must be hits, events, kudos or visitors")
    engine = _engine(request)
    site = await engine.get_site(site_id)
    chunks = await engine.export_csv(site_id, kind)  # type: ignore[arg-type]
    return Stream(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tinytrack-{site.uid}-{kind}.csv"',
            "Cache-Control": "no-store",
        },
    )


@get("/dashboard/sites/{site_id:int}/journeys", include_in_schema=False)
async def journeys_fragment(
    request: Request[Any, Any, Any], site_id: FromPath[int]
) -> Response[Any] | Template:
    """The journeys summary, loaded after the page (it is the slowest figure to compute)."""
    session, _secret = await _session(request)
    if session is None:
        return _forbidden()
    return await _journeys(request, site_id)


async def _journeys(request: Request[Any, Any, Any], site_id: int) -> Template:
    engine = _engine(request)
    start, end, _period = _dates(engine, await engine.get_site(site_id), dict(request.query_params))
    page = await engine.user_journeys(
        site_id, start_date=start, end_date=end, time_zone="user", per_page=1
    )
    return _page("journeys.html.j2", summary=page.summary, insights=page.insights)


@get("/share/{uid:str}", include_in_schema=False)
async def public_page(request: Request[Any, Any, Any], uid: FromPath[str]) -> Template:
    """Public stats: the same charts and tables, read-only, only when the site is public."""
    engine = _engine(request)
    site = await engine.get_site(await engine.site_id_for_uid(uid))
    if not site.public:
        raise NotFound("Site not found")
    report = await _report(engine, site, dict(request.query_params), f"/share/{uid}")
    return _page("site.html.j2", **report, public=True, csrf=None)


@get("/share/{uid:str}/journeys", include_in_schema=False)
async def public_journeys(request: Request[Any, Any, Any], uid: FromPath[str]) -> Template:
    engine = _engine(request)
    site = await engine.get_site(await engine.site_id_for_uid(uid))
    if not site.public:
        raise NotFound("Site not found")
    return await _journeys(request, site.id)


_NAMED_PERIODS: dict[str, Period] = {"24h": "24h", "7d": "7d", "30d": "30d", "12m": "12m"}


def _dates(engine: Engine, site: Site, query: dict[str, str]) -> tuple[dt.date, dt.date, Period]:
    """The table date range for the requested period (the API's whole-day ranges)."""
    from tinytrack.engine import clock

    period = query.get("period") or "30d"
    today = clock.today(site.timezone, engine.now())
    if period == "custom":
        try:
            start = dt.date.fromisoformat(query.get("start", ""))
            end = dt.date.fromisoformat(query.get("end", ""))
        except ValueError:
            raise InvalidParameter("start and end must be dates (YYYY-MM-DD)") from None
        return start, end, "custom"
    named: Period = _NAMED_PERIODS.get(period, "30d")
    return clock.period_start(named, today), today, named


async def _report(engine: Engine, site: Site, query: dict[str, str], base: str) -> dict[str, Any]:
    start, end, period = _dates(engine, site, query)
    filters = {name: query.get(name) or None for name in FILTERS}
    show_internal = query.get("internal") == "1"
    hit_filters: dict[str, Any] = {
        "path": filters["path"],
        "referrer": filters["referrer"],
        "country": filters["country"],
        "browser_name": filters["browser"],
    }

    async def table(group_by: Any, rows: int = TABLE_ROWS) -> list[dict[str, Any]]:
        page = await engine.hits(
            site.id,
            start_date=start,
            end_date=end,
            time_zone="user",
            grouped=True,
            group_by=group_by,
            per_page=rows,
            **hit_filters,
        )
        return page.grouped_hits  # type: ignore[union-attr]

    names = ("path", "referrer", "source", "country", "browser_name", "platform_name")
    # All figures at once: each is its own read on one of the engine's reader connections,
    # whose threads run side by side (SQLite releases the GIL), so the page takes about as long
    # as its slowest figures instead of their sum (a filtered view groups raw rows per table).
    figures = asyncio.gather(
        engine.traffic(site.id, period=period, start_date=start, end_date=end, **hit_filters),
        engine.events(
            site.id, start_date=start, end_date=end, time_zone="user", grouped=True,
            group_by="event", per_page=TABLE_ROWS,
        ),
        engine.events(
            site.id, start_date=start, end_date=end, time_zone="user", grouped=True,
            group_by="value", per_page=TABLE_ROWS,
        ),
        engine.kudos_by_path(site.id, start_date=start, end_date=end),
    )  # fmt: skip
    grouping = asyncio.gather(
        *(table(name, 50 if name == "referrer" else TABLE_ROWS) for name in names)
    )
    (traffic, events, values, kudos), grouped = await asyncio.gather(figures, grouping)
    assert isinstance(events, GroupedEventsPage) and isinstance(values, GroupedEventsPage)
    tables = dict(zip(names, grouped, strict=True))
    referrers = charts.referrers(tables["referrer"], site.url, show_internal)[:TABLE_ROWS]
    platforms = tables["platform_name"]

    def link(**change: str | None) -> str:
        merged = {k: v for k, v in query.items() if k in (*FILTERS, "period", "start", "end")}
        merged.update({k: v for k, v in change.items() if v is not None})
        for k, v in change.items():
            if v is None:
                merged.pop(k, None)
        return base + ("?" + urlencode(merged) if merged else "")

    return {
        "site": site,
        "period": period,
        "periods": PERIODS,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "filters": {k: v for k, v in filters.items() if v},
        "traffic": traffic,
        "chart": charts.svg(traffic),
        "change": charts.change(traffic.hits, traffic.previous_hits),
        "unique_change": charts.change(traffic.unique_hits, traffic.previous_unique_hits),
        "pages": tables["path"],
        "referrers": referrers,
        "show_internal": show_internal,
        "sources": tables["source"],
        "countries": [
            {**row, "flag": charts.flag(row["country"] or "XX")} for row in tables["country"]
        ],
        "browsers": tables["browser_name"],
        "platforms": platforms,
        "mobile_share": charts.mobile_share(platforms),
        "events": events.grouped_events,
        "event_values": values.grouped_events,
        "kudos": kudos,
        "link": link,
        "base": base,
    }


# -- settings and keys ------------------------------------------------------------------------


@get("/dashboard/sites/{site_id:int}/settings", include_in_schema=False)
async def settings_page(
    request: Request[Any, Any, Any], site_id: FromPath[int]
) -> Response[Any] | Template:
    session, secret = await _session(request)
    if session is None or secret is None:
        return _to_login(request)
    site = await _engine(request).get_site(site_id)
    return _settings(request, site, session.csrf(secret), saved=False, error=None)


def _settings(
    request: Request[Any, Any, Any], site: Site, csrf: str, *, saved: bool, error: str | None
) -> Template:
    scheme, host = request.app.state.proxies.scheme_and_host(request.scope)
    origin = f"{scheme or request.url.scheme}://{host or request.url.netloc}"
    return _page(
        "settings.html.j2",
        400 if error else 200,
        site=site,
        csrf=csrf,
        saved=saved,
        error=error,
        server=origin,
        embed=f"{origin}/embed/{site.uid}.js",
        pixel=f"{origin}/pixel/{site.uid}.gif?path=/your-post",
        share=f"{origin}/share/{site.uid}",
    )


@post("/dashboard/sites/{site_id:int}/settings", include_in_schema=False, status_code=303)
async def save_settings(
    request: Request[Any, Any, Any], site_id: FromPath[int]
) -> Response[Any] | Template:
    form = await _authorized_post(request)
    if form is None:
        return _forbidden()
    engine = _engine(request)
    rules = [line.strip() for line in form.get("ignore_paths", "").splitlines() if line.strip()]
    try:
        site = await engine.update_site(
            site_id,
            label=form.get("label", "").strip() or None,
            timezone=form.get("timezone", "UTC").strip() or "UTC",
            public=form.get("public") == "on",
            ignore_paths=rules,
        )
    except InvalidParameter as exc:
        site = await engine.get_site(site_id)
        return _settings(request, site, form["csrf"], saved=False, error=exc.message)
    return _settings(request, site, form["csrf"], saved=True, error=None)


@get("/dashboard/keys", include_in_schema=False)
async def keys_page(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    session, secret = await _session(request)
    if session is None or secret is None:
        return _to_login(request)
    keys = await _engine(request).list_keys()
    return _page("keys.html.j2", keys=keys, csrf=session.csrf(secret), new_key=None)


@post("/dashboard/keys", include_in_schema=False, status_code=200)
async def create_key(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    form = await _authorized_post(request)
    if form is None:
        return _forbidden()
    engine = _engine(request)
    access: AccessType = "full_access" if form.get("access") == "full_access" else "read_only"
    name = form.get("name", "").strip()[:100] or "dashboard"
    new_key = await engine.create_key(access, name=name)
    keys = await engine.list_keys()
    return _page("keys.html.j2", keys=keys, csrf=form["csrf"], new_key=new_key)


@post("/dashboard/keys/{key_id:int}/revoke", include_in_schema=False, status_code=303)
async def revoke_key(request: Request[Any, Any, Any], key_id: FromPath[int]) -> Response[Any]:
    form = await _authorized_post(request)
    if form is None:
        return _forbidden()
    with contextlib.suppress(TinytrackError):  # already gone: the list shows the truth
        await _engine(request).revoke_key(key_id)
    return Redirect("/dashboard/keys", status_code=303, headers=SECURITY_HEADERS)


@get("/dashboard/static/{name:str}", include_in_schema=False)
async def static_file(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    if name not in ("dashboard.css", "dashboard.js"):
        raise NotFound("Not found")
    stem, kind = name.split(".")
    asset = embed.script(stem, minified=False, suffix=kind)
    media = "text/css" if kind == "css" else embed.JS_TYPE
    return Response(
        asset.body,
        media_type=media,
        headers={"Cache-Control": "public, max-age=3600", "ETag": asset.etag,
                 "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


ROUTES = [
    static_file,
    login_form,
    login,
    logout,
    sites_page,
    site_page,
    journeys_fragment,
    export_csv,
    public_page,
    public_journeys,
    settings_page,
    save_settings,
    keys_page,
    create_key,
    revoke_key,
]
