"""Clicky's "logging data from an internal script" (seed 000): ``GET|POST /in.php``.

Parameters, URL-encoded in the query string or a form body, arrays PHP-style (``custom[k]``):

- ``site_id`` (the tinytrack site id, or an alias given to the site) and ``sitekey_admin`` (a
  tinytrack full-access API key) are required, and ``ip_address`` or ``session_id`` (without
  either, the address of the connecting machine is used, as Clicky does).
- An action: ``href`` (required), ``title``, ``type`` (``pageview``, ``download``,
  ``outbound``, ``click``; anything else is a page view), ``ref`` (kept only on the first action
  of a session), ``ua`` (parsed like any user agent). A page view is a hit (path from
  ``href``; ``title`` is not stored: hits have none); the others are events named
  ``clicky.download`` / ``clicky.outbound`` / ``clicky.click`` with ``value`` = ``href`` and
  property ``title``.
- ``type=custom`` with ``custom[name]=value``: properties of the session and of its visitor.
- ``type=goal`` with ``goal[id]`` (a goal's number, or a name: a new goal "on the fly") and
  ``goal[revenue]``: a goal completion, once per session; revenue sent later is added to a
  completion that had none.

Every action continues the visitor's session (30 minutes of inactivity end it) or starts one;
sessions have ids (``GET /api/v1/sites/{id}/sessions``) that ``session_id`` names later, even
long after the session ended. Clicky's in.php answers nothing: tinytrack answers ``200`` with an
empty body (``X-Tinytrack-Result`` / ``X-Tinytrack-Session`` headers say what happened). Errors
are ``text/plain`` "error: ...": ``400`` malformed, ``403`` missing, invalid or read-only
``sitekey_admin``, ``404`` unknown site, session or goal number, ``413`` body over 64 KiB,
``429`` over the API's per-key rate limit, ``503`` overloaded.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.exceptions import HTTPException

from tinytrack.engine import sessions as engine_sessions
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
from tinytrack.server.errors import RateLimited

ACTION_TYPES = ("pageview", "download", "outbound", "click")
MAX_TITLE = 1024


def _text_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        body,
        status_code=status,
        media_type="text/plain",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise compat.Answer(400, f"{name} is required")
    return value


async def _site_and_key(request: Request[Any, Any, Any], params: dict[str, str]) -> int:
    state = request.app.state
    site_name = _required(params, "site_id")
    token = params.get("sitekey_admin", "").strip()
    if not token:
        raise compat.Answer(403, "sitekey_admin is required")
    try:
        key = await compat.full_access_key(state, token)
    except (AuthError, AccessDenied):
        message = "invalid sitekey_admin (a full-access API key is needed)"
        raise compat.Answer(403, message) from None
    wait = state.limiter.hit(key.id)
    if wait:
        raise compat.Answer(429, "rate limit exceeded", {"Retry-After": str(wait)})
    try:
        return await compat.engine_of(state).find_site(site_name)
    except NotFound:
        raise compat.Answer(404, "unknown site_id") from None


def _who(request: Request[Any, Any, Any], params: dict[str, str]) -> dict[str, Any]:
    """Visitor fields: the session named by ``session_id``, else the address given (or the
    caller's) and user agent."""
    out: dict[str, Any] = {}
    raw_session = params.get("session_id", "").strip()
    if raw_session:
        if not raw_session.isascii() or not raw_session.isdigit() or len(raw_session) > 18:
            raise compat.Answer(400, "session_id must be a number")
        out["session_id"] = int(raw_session)
    ip = compat.ip_or_none(params.get("ip_address"), "ip_address")
    if ip is None and "session_id" not in out:
        ip = compat.client_address(request)
    out["ip_address"] = ip
    ua = params.get("ua", "").strip()
    out["user_agent"] = ua or None
    if "session_id" not in out:
        out["session_timeout"] = engine_sessions.DEFAULT_TIMEOUT
    return out


def _action(params: dict[str, str]) -> dict[str, Any]:
    href = _required(params, "href")
    kind = params.get("type", "").strip().lower()
    if kind not in ACTION_TYPES:
        kind = "pageview"
    title = params.get("title", "").strip()[:MAX_TITLE] or None
    web = href.lower().startswith(("http://", "https://"))
    fields: dict[str, Any] = {"referrer": params.get("ref", "").strip() or None}
    fields["referrer_once"] = True
    if kind == "pageview":
        fields.update(kind="pageview", path=href, url=href if web else None)
        return fields
    fields.update(
        kind="event",
        event=f"clicky.{kind}",
        value=href,
        path=href if href.startswith("/") else None,
        url=href if web else None,
        properties={"title": title} if title else None,
    )
    return fields


def _headers(result: Tracked) -> dict[str, str]:
    outcome = result.status + (f": {result.reason}" if result.reason else "")
    headers = {"X-Tinytrack-Result": outcome}
    if result.session_id is not None:
        headers["X-Tinytrack-Session"] = str(result.session_id)
    return headers


async def _log(request: Request[Any, Any, Any]) -> Response[str]:
    params = await compat.request_params(request)
    site_id = await _site_and_key(request, params)
    fields = _who(request, params)
    kind = params.get("type", "").strip().lower()
    if kind == "custom":
        custom = compat.bracketed(params, "custom")
        if not custom:
            raise compat.Answer(400, "custom[...] is required for type=custom")
        # Custom data belongs to the session and, through it, to its visitor.
        fields.update(kind="visit", visitor_properties=custom, session_properties=custom)
    elif kind == "goal":
        goal = compat.bracketed(params, "goal")
        spec = goal.get("id", "").strip()
        if not spec:
            raise compat.Answer(400, "goal[id] is required for type=goal")
        revenue = goal.get("revenue", "").strip()
        fields.update(kind="goal", goal=spec, revenue=revenue or None)
    else:
        fields.update(_action(params))
    item = compat.track_in(**fields)
    result = await compat.engine_of(request.app.state).track(site_id, item)
    return _text_response(200, "", _headers(result))


@route(
    "/in.php",
    http_method=["GET", "POST"],
    request_max_body_size=compat.FORM_BODY_LIMIT,
    summary="Clicky internal-script logging (site_id, sitekey_admin, ip_address/session_id)",
    tags=["other formats"],
    include_in_schema=True,
)
async def clicky_in(request: Request[Any, Any, Any]) -> Response[str]:
    try:
        return await _log(request)
    except compat.Answer as answer:
        return _text_response(answer.status, f"error: {answer.message}", answer.headers)
    except ValidationFailed as exc:
        return _text_response(400, "error: " + "; ".join(exc.errors))
    except InvalidParameter as exc:
        return _text_response(400, f"error: {exc.message}")
    except NotFound as exc:
        return _text_response(404, f"error: {exc.message.lower()}")
    except RateLimited as exc:
        return _text_response(
            429, "error: rate limit exceeded", {"Retry-After": str(exc.retry_after)}
        )
    except Overloaded as exc:
        return _text_response(503, f"error: {exc.message}", {"Retry-After": str(exc.retry_after)})
    except TinytrackError as exc:
        return _text_response(503, f"error: {exc.message}", {"Retry-After": "1"})
    except HTTPException as exc:
        message = "request body too large" if exc.status_code == 413 else "bad request"
        return _text_response(
            exc.status_code if exc.status_code < 500 else 400, f"error: {message}"
        )
    except Exception:
        compat.log.exception("unhandled error on %s /in.php", request.method)
        return _text_response(500, "error: internal server error")


ROUTES = [clicky_in]
