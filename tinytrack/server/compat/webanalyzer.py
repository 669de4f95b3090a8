"""Web Analyzer App's measurement protocol (seed 002):
``POST /api/v1/websites/{website_id}/track`` and ``.../track/batch``.

- ``Authorization: Bearer <key>``: a tinytrack full-access key. ``website_id``: the site id (or
  an alias given to the site).
- An event: ``name`` (required, at most 128 characters), ``payload`` (flat object, at most 10
  keys, values at most 255 characters; numbers and booleans are cast to strings), ``visitor_id``
  (a UUID, hashed with the site's secret: the same ``visitor_id`` sent to tinytrack's own API is
  the same visitor), ``url``, ``referrer``. It becomes an event named ``webanalyzer.<name>`` (a
  name already in ``category.action`` form is kept) with the payload as its properties; a
  payload ``amount`` that is a decimal number becomes the event's revenue, in ``currency`` when
  that is a 3-letter code.
- A batch holds 1 to 25 events and is all-or-nothing: one invalid event rejects the request.

Answers: ``200 {"ok": true, "event_id": N}`` / ``{"ok": true, "processed": N, "event_ids":
[...]}``; errors ``{"ok": false, "error": code, "message": ...}``: ``400 validation_error``,
``401 unauthorized`` (missing, invalid, revoked or read-only key), ``404 website_not_found``,
``413 validation_error`` (body over 64 KiB), ``429 rate_limit_exceeded`` with ``Retry-After`` and
``retry_after`` (60 requests per minute per key by default: ``track_rate_limit``), ``503
server_error`` with ``Retry-After`` when the write queue is full. An event tinytrack ignores (a
path matching the site's ignore rules, an inactive site) is still answered ``200`` with its
``event_id`` as ``null``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from msgspec import Meta, Struct

from tinytrack.engine import ingest
from tinytrack.errors import (
    AccessDenied,
    AuthError,
    NotFound,
    Overloaded,
    TinytrackError,
    ValidationFailed,
)
from tinytrack.models import Tracked, TrackIn
from tinytrack.server import compat

MAX_BATCH = 25
MAX_PAYLOAD_KEYS = 10
MAX_PAYLOAD_VALUE = 255
BODY_LIMIT = 64 * 1024
_CURRENCY = re.compile(r"[A-Z]{3}")

PayloadValue = str | int | float | bool | None


class EventBody(Struct, kw_only=True, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    payload: Annotated[dict[str, PayloadValue], Meta(max_length=MAX_PAYLOAD_KEYS)] | None = None
    visitor_id: str | None = None
    url: Annotated[str, Meta(max_length=2048)] | None = None
    referrer: Annotated[str, Meta(max_length=2048)] | None = None


class BatchBody(Struct, kw_only=True):
    events: Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=MAX_BATCH)]


class _Error(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _error(exc: _Error) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error": exc.code, "message": exc.message}
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        body["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    return Response(body, status_code=exc.status, headers=headers or None)


def _invalid(message: str) -> _Error:
    return _Error(400, "validation_error", message)


async def _authorize(request: Request[Any, Any, Any], website_id: str) -> int:
    state = request.app.state
    try:
        key = await compat.full_access_key(
            state, compat.bearer(request.headers.get("authorization"))
        )
    except AuthError as exc:
        raise _Error(401, "unauthorized", exc.message) from None
    except AccessDenied as exc:
        raise _Error(401, "unauthorized", exc.message) from None
    wait = state.track_limiter.hit(key.id)
    if wait:
        raise _Error(429, "rate_limit_exceeded", "Too many requests", retry_after=wait)
    try:
        return await compat.engine_of(state).find_site(website_id)
    except NotFound:
        raise _Error(404, "website_not_found", "Website not found") from None


def _decode(raw: bytes | msgspec.Raw, where: str = "") -> EventBody:
    try:
        return msgspec.json.decode(raw, type=EventBody)
    except msgspec.ValidationError as exc:
        raise _invalid(f"{where}{exc}") from None
    except msgspec.DecodeError:
        raise _invalid(f"{where}Body must be a JSON object") from None


def _payload_text(value: PayloadValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _item(event: EventBody, where: str = "") -> TrackIn:
    """The event as a ``TrackIn``; ``_Error`` (400) for anything the protocol forbids."""
    payload: dict[str, str] = {}
    for key, value in (event.payload or {}).items():
        if value is None:
            continue
        text = _payload_text(value)
        if len(text) > MAX_PAYLOAD_VALUE:
            raise _invalid(
                f"{where}payload.{key[:64]} is longer than {MAX_PAYLOAD_VALUE} characters"
            )
        if not key or len(key) > 64:
            raise _invalid(f"{where}payload keys must have 1 to 64 characters")
        payload[key] = text
    visitor = (event.visitor_id or "").strip() or None  # an empty form field: no visitor
    if visitor is not None and not _is_uuid(visitor):
        raise _invalid(f"{where}visitor_id must be a UUID")
    revenue, currency = _revenue(payload)
    try:
        return compat.track_in(
            kind="event",
            event=compat.event_name(event.name, "webanalyzer"),
            properties=payload or None,
            visitor_id=visitor.lower() if visitor else None,
            url=event.url,
            path=_path_of(event.url),
            referrer=event.referrer,
            revenue=revenue,
            currency=currency,
        )
    except ValidationFailed as exc:
        raise _invalid(where + "; ".join(exc.errors)) from None


def _is_uuid(text: str) -> bool:
    return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", text) is not None


def _path_of(url: str | None) -> str | None:
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return url if url and url.startswith("/") else None


def _revenue(payload: dict[str, str]) -> tuple[str | None, str | None]:
    """(revenue, currency) from a payload's ``amount`` / ``currency`` when usable as revenue
    (a decimal number with at most 6 decimals); otherwise they stay plain properties."""
    amount = payload.get("amount", "").strip()
    try:
        ingest.revenue_micros(amount)
    except ValueError:
        return None, None
    currency = payload.get("currency", "").strip().upper()
    return amount, currency if _CURRENCY.fullmatch(currency) else None


async def _record(
    request: Request[Any, Any, Any], site_id: int, items: list[TrackIn], batch: bool
) -> list[int | None]:
    """Record all events or none (one invalid event rejects the request); their ids (None for
    an ignored one)."""
    engine = compat.engine_of(request.app.state)
    try:
        results = await engine.track_many(site_id, items, atomic=True)
    except ValidationFailed as exc:
        parts = [e.partition(": ") for e in exc.errors]  # "<index>: <message>"
        shown = [f"events[{i}]: {m}" if batch else m for i, _, m in parts]
        raise _invalid("; ".join(shown)) from None
    return [r.id if isinstance(r, Tracked) and r.status != "ignored" else None for r in results]


async def _guard(request: Request[Any, Any, Any], work: Any) -> Response[dict[str, Any]]:
    try:
        return Response(await work())
    except _Error as exc:
        return _error(exc)
    except HTTPException as exc:
        if exc.status_code == 413:
            return _error(_Error(413, "validation_error", "Request body too large"))
        return _error(_invalid(exc.detail or "Bad request"))
    except (Overloaded, TinytrackError) as exc:
        retry = exc.retry_after if isinstance(exc, Overloaded) else 1
        return _error(_Error(503, "server_error", exc.message, retry_after=retry))
    except Exception:
        compat.log.exception("unhandled error on POST %s", request.url.path)
        return _error(_Error(500, "server_error", "Internal server error"))


@post(
    "/api/v1/websites/{website_id:str}/track",
    summary="Web Analyzer: track one server-side event",
    tags=["other formats"],
    request_max_body_size=BODY_LIMIT,
    status_code=200,
)
async def track_one(
    request: Request[Any, Any, Any], website_id: FromPath[str]
) -> Response[dict[str, Any]]:
    async def work() -> dict[str, Any]:
        site_id = await _authorize(request, website_id)
        item = _item(_decode(await request.body()))
        (event_id,) = await _record(request, site_id, [item], batch=False)
        return {"ok": True, "event_id": event_id}

    return await _guard(request, work)


@post(
    "/api/v1/websites/{website_id:str}/track/batch",
    summary="Web Analyzer: track up to 25 server-side events",
    tags=["other formats"],
    request_max_body_size=BODY_LIMIT,
    status_code=200,
)
async def track_batch(
    request: Request[Any, Any, Any], website_id: FromPath[str]
) -> Response[dict[str, Any]]:
    async def work() -> dict[str, Any]:
        site_id = await _authorize(request, website_id)
        raw = await request.body()
        try:
            batch = msgspec.json.decode(raw, type=BatchBody)
        except msgspec.ValidationError as exc:
            raise _invalid(f"events: 1 to {MAX_BATCH} event objects are required ({exc})") from None
        except msgspec.DecodeError:
            raise _invalid("Body must be a JSON object with an 'events' array") from None
        items = [
            _item(_decode(one, f"events[{i}]: "), f"events[{i}]: ")
            for i, one in enumerate(batch.events)
        ]
        ids = await _record(request, site_id, items, batch=True)
        return {"ok": True, "processed": len(ids), "event_ids": ids}

    return await _guard(request, work)


ROUTES = [track_one, track_batch]
