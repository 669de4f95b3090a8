"""Woopra's HTTP tracking API (seed 003): ``/track/ce``, ``/track/identify``, ``/track/ping``,
GET or POST (query string, form or JSON object body), with or without a trailing slash.

- The project comes from ``project``, else ``host``, ``domain``, ``website``, ``alias``: a site's
  domain (``www.`` or not), uid, id or an alias given to it. None, or an unknown one: ``403``.
- The visitor is ``id`` (or ``cv_id``), else ``email`` (or ``cv_email``), else ``cookie``: the
  identifier is hashed with the site's secret, never stored (a ``cv_email`` property is stored
  as sent, like any property). With none, a random one is used: that visitor is never seen again,
  as Woopra says.
- ``/track/ce``: ``event`` (else ``ce_name``; neither = a page view). ``pv`` is a page view: a
  hit whose path and URL come from ``ce_url`` / ``ce_uri`` (``utm_*`` in it become the source
  and stay in the stored URL); other names are events (``bark`` -> ``woopra.bark``; a name
  already in ``category.action`` form is kept) with the ``ce_*`` properties, prefix removed.
- ``cv_*`` are visitor properties, ``cs_*`` session properties (any endpoint; prefix removed).
- ``timestamp`` (ms) dates a historical event (a future one counts as now); ``timeout`` (ms,
  default 30000) is the session's inactivity timeout; ``/track/ping`` keeps an open session
  alive. ``ip`` (else the caller's address), ``referer`` and the ``User-Agent`` header (an HTTP
  library's own is not taken for the visitor's) as for any hit.

Woopra is forgiving and so is this: a malformed ``timestamp``, ``timeout`` or ``ip`` is ignored,
over-long keys and values are cut, at most 50 properties of each kind are kept. Answers: ``200``
(``X-Tinytrack-Result`` says created / ignored and why), ``401`` when the site has secure
tracking on and no full-access key came (``Authorization: Bearer <key>``, or Basic with the key
as password), ``403`` for an unknown project or an excluded request (a path matching the site's
ignore rules, an inactive site), ``400`` for a request that cannot be parsed, ``413`` for a body
over 64 KiB. The answer never needs to be read: the action is committed whatever the client does
with the connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
import secrets
from typing import Any

from litestar import Request, Response, route
from litestar.exceptions import HTTPException

from tinytrack.engine import collect, ingest
from tinytrack.errors import (
    AccessDenied,
    AuthError,
    InvalidParameter,
    NotFound,
    Overloaded,
    TinytrackError,
    ValidationFailed,
)
from tinytrack.models import Tracked
from tinytrack.server import compat

PROJECT_PARAMS = ("project", "host", "domain", "website", "alias")
MAX_KEY = 64
MAX_VALUE = 1024
MAX_PROPERTIES = 50
DEFAULT_TIMEOUT_MS = 30_000
PAGE_VIEW = "pv"
# Server-side SDKs send the visitor's user agent in the header; without one, an HTTP library's
# own user agent says nothing about the visitor (and must not get the action dropped as a bot).
_LIBRARY_UA = re.compile(
    r"^(python-|python/|curl/|wget/|go-http-client|java/|okhttp|apache-httpclient|axios|"
    r"node-fetch|undici|guzzlehttp|ruby|php|libwww|lwp-|httpie|rest-client)",
    re.IGNORECASE,
)
EXCLUDED = {ingest.IGNORED_PATH, ingest.EVENT_IGNORED, ingest.SITE_INACTIVE}


def _response(status: int, result: str, headers: dict[str, str] | None = None) -> Response[str]:
    # Woopra answers with a string of JavaScript for its browser tracker to run: an empty one.
    return Response(
        "",
        status_code=status,
        media_type="application/javascript",
        headers={"Cache-Control": "no-store", "X-Tinytrack-Result": result, **(headers or {})},
    )


def _prefixed(params: dict[str, str], prefix: str, skip: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key.startswith(prefix) and key != skip and len(out) < MAX_PROPERTIES:
            name = key[len(prefix) :][:MAX_KEY]
            if name:
                out[name] = value[:MAX_VALUE]
    return out


def _visitor_id(params: dict[str, str]) -> str:
    for name in ("id", "cv_id", "email", "cv_email", "cookie"):
        value = params.get(name, "").strip()
        if value:
            return (value.lower() if "email" in name else value)[:256]
    return "woopra-random:" + secrets.token_hex(12)


def _millis(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit() or len(text.strip()) > 16:
        return None
    return int(text.strip())


def _user_agent(request: Request[Any, Any, Any]) -> str | None:
    agent = request.headers.get("user-agent", "").strip()
    if not agent or _LIBRARY_UA.match(agent):
        return None
    return agent[:1024]


def _token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user or None
    return None


async def _site(request: Request[Any, Any, Any], params: dict[str, str]) -> int:
    name = next((params[p].strip() for p in PROJECT_PARAMS if params.get(p, "").strip()), "")
    if not name:
        raise compat.Answer(403, "ignored: no project")
    engine = compat.engine_of(request.app.state)
    try:
        site_id = await engine.find_site(name)
    except NotFound:
        raise compat.Answer(403, "ignored: unknown project") from None
    if await engine.secure_tracking(site_id):
        try:
            await compat.full_access_key(
                request.app.state, _token(request.headers.get("authorization"))
            )
        except (AuthError, AccessDenied):
            raise compat.Answer(
                401,
                "ignored: secure tracking needs a full-access key",
                {"WWW-Authenticate": "Basic"},
            ) from None
    return site_id


def _page(params: dict[str, str]) -> dict[str, Any]:
    """A page view's path and URL: ``ce_url`` (Woopra's tracker sends the path there) or
    ``ce_uri`` (the full address); only campaign parameters of the URL are stored."""
    raw = params.get("ce_url", "").strip() or params.get("ce_uri", "").strip() or "/"
    full = params.get("ce_uri", "").strip() or raw
    web = full.lower().startswith(("http://", "https://"))
    return {"path": raw[:2048], "url": collect.page_url(full[:2048]) if web else None}


async def _track(request: Request[Any, Any, Any], endpoint: str) -> Response[str]:
    params = await compat.request_params(request)
    site_id = await _site(request, params)
    timeout_ms = _millis(params.get("timeout")) or DEFAULT_TIMEOUT_MS
    stamp = _millis(params.get("timestamp"))
    ip = None
    with contextlib.suppress(ValidationFailed):  # forgiving, as Woopra: the caller's address
        ip = compat.ip_or_none(params.get("ip"), "ip")
    fields: dict[str, Any] = {
        "visitor_id": _visitor_id(params),
        "ip_address": ip or compat.client_address(request),
        "user_agent": _user_agent(request),
        "at": stamp // 1000 if stamp is not None else None,
        "session_timeout": max(1, math.ceil(timeout_ms / 1000)),
        "visitor_properties": _prefixed(params, "cv_") or None,
        "session_properties": _prefixed(params, "cs_") or None,
    }
    referer = params.get("referer", "").strip()[:2048]
    if endpoint == "ping":
        fields["kind"] = "ping"
    elif endpoint == "identify":
        fields["kind"] = "visit"
    else:
        name = params.get("event", "").strip() or params.get("ce_name", "").strip()
        # Forgiving: empty segments of a dotted name are dropped ("a..b" -> "a.b").
        name = ".".join(part.strip() for part in name.split(".") if part.strip()) or PAGE_VIEW
        skip = "" if params.get("event", "").strip() else "ce_name"
        campaign = params.get("ce_campaign_source", "").strip()[:256] or None
        fields.update(referrer=referer or None, source=campaign)
        if name == PAGE_VIEW:
            fields.update(kind="pageview", **_page(params))
        else:
            page = params.get("ce_url", "").strip()
            fields.update(
                kind="event",
                event=compat.event_name(name[:200], "woopra"),
                properties=_prefixed(params, "ce_", skip) or None,
                path=page[:2048] if page.startswith("/") else None,
            )
    item = compat.track_in(**fields)
    result = await compat.engine_of(request.app.state).track(site_id, item)
    return _answer(result)


def _answer(result: Tracked) -> Response[str]:
    if result.status == "ignored" and result.reason in EXCLUDED:
        return _response(403, f"ignored: {result.reason}")
    outcome = result.status + (f": {result.reason}" if result.reason else "")
    return _response(200, outcome)


async def _handle(request: Request[Any, Any, Any], endpoint: str) -> Response[str]:
    try:
        return await _track(request, endpoint)
    except compat.Answer as answer:
        return _response(answer.status, answer.message, answer.headers)
    except (ValidationFailed, InvalidParameter) as exc:
        return _response(400, f"error: {exc.message}")
    except NotFound as exc:
        return _response(403, f"ignored: {exc.message}")
    except Overloaded as exc:
        return _response(503, f"error: {exc.message}", {"Retry-After": str(exc.retry_after)})
    except TinytrackError as exc:
        return _response(503, f"error: {exc.message}", {"Retry-After": "1"})
    except HTTPException as exc:
        status = exc.status_code if exc.status_code < 500 else 400
        return _response(status, "error: request body too large" if status == 413 else "error")
    except Exception:
        compat.log.exception("unhandled error on %s /track/%s", request.method, endpoint)
        return _response(500, "error: internal server error")


def _endpoint(path: str, endpoint: str, summary: str) -> Any:
    @route(
        [path, path + "/"],
        http_method=["GET", "POST"],
        request_max_body_size=compat.FORM_BODY_LIMIT,
        summary=summary,
        tags=["other formats"],
        name=f"woopra-{endpoint}",
    )
    async def handler(request: Request[Any, Any, Any]) -> Response[str]:
        return await _handle(request, endpoint)

    return handler


ROUTES = [
    _endpoint("/track/ce", "ce", "Woopra: track a custom event (or page view)"),
    _endpoint("/track/identify", "identify", "Woopra: set visitor / session properties"),
    _endpoint("/track/ping", "ping", "Woopra: keep the visitor's session alive"),
]
