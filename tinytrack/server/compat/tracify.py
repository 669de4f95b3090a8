"""Tracify's server-side events API (seed 001): ``POST /api/v1/events`` with
``{"events": [...]}`` (1 to 500 events, body at most 2 MiB).

- The key: ``Authorization: Bearer <key>`` or a ``tracify-token: <key>`` header, a tinytrack
  full-access key. Each event's ``customer_site_id`` names its site: an alias given to the site
  (e.g. the CSID existing code sends), its uid or its id.
- ``identity_data`` (anonymized identifier -> type 1 e-mail, 2 session, 3 IP, 4 user agent; 3 and
  4 required) becomes the visitor: the e-mail hash if given, else the session hash, else IP and
  user-agent hashes together, hashed once more with the site's secret. Nothing of it is stored.
- ``datetime`` (``%Y-%m-%d %H:%M:%S``, UTC) is when it happened (default: now; a future time
  counts as now). ``type``: ``pageview`` is a hit (``url`` required); ``productview``,
  ``addtocart``, ``purchase`` and ``conversion`` are events named ``tracify.<type>``.
- ``data``: ``origin`` (required) and ``Referer``; ``purchase`` needs ``order_id``, ``conversion``
  ``conversion_id``, both ``currency`` (3-letter ISO 4217 code) and ``amount``, which become the
  event's revenue. An order id is recorded once per site, a conversion id too (as order id
  ``conversion:<id>``): sending one again answers ``duplicate`` and stores nothing. ``ITEMn`` /
  ``AMTn`` / ``QTYn`` line items and every other key (the URL parameters, ``trc_*``, ``utm_*``;
  also accepted as a ``url_parameters`` object) are kept as event properties; the URL
  parameters are also put back on the stored URL (``utm_source`` gives the source) as campaign
  data, page views included.

Answers: ``200 {"success": true, "received": N, "accepted": A, "duplicates": D, "ignored": I,
"rejected": R, "results": [{"index": i, "status": "created" | "duplicate" | "ignored" | "error",
"id": ..., "errors": [...]}]}`` — an invalid event is reported in its result and the valid
ones are stored; ``400`` with the same body when every event was invalid. Errors of the whole
request are ``{"success": false, "error": ...}``: ``400`` malformed body or over 500 events,
``401`` missing, invalid, revoked or read-only key, ``413`` body too large, ``429`` over the
API's per-key rate limit (``Retry-After``), ``503`` overloaded (``Retry-After``). As in
Tracify's own conversion example, a trailing comma before ``}`` or ``]`` is tolerated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException

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

MAX_EVENTS = 500
_STATUSES = ("created", "duplicate", "ignored", "error")
BODY_LIMIT = 2 * 1024 * 1024
TYPES = ("pageview", "productview", "addtocart", "purchase", "conversion")
KNOWN = {"referer", "origin", "order_id", "conversion_id", "currency", "amount", "url_parameters"}
_LINE_ITEM = re.compile(r"(ITEM|AMT|QTY)\d{1,4}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_IDENTITY_KEY = re.compile(r"[0-9A-Za-z]{1,128}")


class _Error(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"success": False, "error": message}, status_code=status, headers=headers)


def strip_trailing_commas(raw: bytes) -> bytes:
    """``{"a": 1,}`` -> ``{"a": 1}``: commas directly before ``}`` / ``]`` outside strings."""
    out = bytearray()
    in_string = escaped = False
    pending: int | None = None  # index in out of a comma that may be trailing
    for byte in raw:
        if in_string:
            out.append(byte)
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
            continue
        if byte in b" \t\r\n":
            out.append(byte)
            continue
        if byte in b"}]" and pending is not None:
            del out[pending]
        pending = None
        if byte == 0x22:
            in_string = True
        elif byte == 0x2C:
            pending = len(out)
        out.append(byte)
    return bytes(out)


def _decode_body(raw: bytes) -> list[Any]:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        try:
            data = msgspec.json.decode(strip_trailing_commas(raw))
        except msgspec.DecodeError:
            raise _Error(400, 'Body must be JSON: {"events": [...]}') from None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        raise _Error(400, "Body must be a JSON object with a non-empty 'events' array")
    if len(events) > MAX_EVENTS:
        raise _Error(400, f"At most {MAX_EVENTS} events per request")
    return events


def _text(value: Any, name: str, errors: list[str], limit: int = 1024) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append(f"{name} must be a string")
        return None
    text = str(value).strip()
    if len(text) > limit:
        errors.append(f"{name} is longer than {limit} characters")
        return None
    return text


def _visitor(identity: Any, errors: list[str]) -> str | None:
    """The visitor identifier from ``identity_data``: type 1, else 2, else 3 + 4."""
    if not isinstance(identity, dict) or not identity:
        errors.append("identity_data is required (an object of anonymized id -> type 1-4)")
        return None
    by_type: dict[int, str] = {}
    for key, kind in identity.items():
        if not isinstance(kind, int) or isinstance(kind, bool) or not 1 <= kind <= 4:
            errors.append("identity_data values must be 1, 2, 3 or 4")
            return None
        if not _IDENTITY_KEY.fullmatch(key):
            errors.append("identity_data keys must be anonymized (hashed) identifiers")
            return None
        by_type.setdefault(kind, key.lower())
    if 3 not in by_type or 4 not in by_type:
        errors.append("identity_data needs the anonymized IP address (3) and user agent (4)")
        return None
    if 1 in by_type:
        return "tracify:1:" + by_type[1]
    if 2 in by_type:
        return "tracify:2:" + by_type[2]
    return f"tracify:34:{by_type[3]}:{by_type[4]}"


def _when(value: Any, errors: list[str]) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATETIME.fullmatch(value.strip()):
        errors.append("datetime must be formatted %Y-%m-%d %H:%M:%S (UTC)")
        return None
    try:
        moment = dt.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        errors.append("datetime is not a valid date and time")
        return None
    return int(moment.replace(tzinfo=dt.UTC).timestamp())


def _with_parameters(url: str | None, parameters: dict[str, str]) -> str | None:
    """The landing URL with its URL parameters put back (campaign data)."""
    if url is None or not parameters:
        return url
    from urllib.parse import urlencode

    joined = url + ("&" if "?" in url else "?") + urlencode(parameters)
    return joined if len(joined) <= 2048 else url


def _event(raw: Any) -> tuple[str | None, TrackIn | None, list[str]]:
    """(customer_site_id, the event as a TrackIn, errors)."""
    errors: list[str] = []
    if not isinstance(raw, dict):
        return None, None, ["an event must be a JSON object"]
    site = _text(raw.get("customer_site_id"), "customer_site_id", errors, 200)
    if not site:
        errors.append("customer_site_id is required")
    kind = raw.get("type")
    if kind not in TYPES:
        errors.append("type must be one of " + ", ".join(TYPES))
    url = _text(raw.get("url"), "url", errors, 2048)
    if url is not None and not url.lower().startswith(("http://", "https://")):
        errors.append("url must be a full URL (https://domain/path)")
    if kind == "pageview" and not url:
        errors.append("url is required for pageview events")
    visitor = _visitor(raw.get("identity_data"), errors)
    at = _when(raw.get("datetime"), errors)
    data = raw.get("data")
    if not isinstance(data, dict):
        errors.append("data is required (an object with at least 'origin')")
        data = {}
    fields = {str(k): v for k, v in data.items()}
    lowered = {k.lower(): k for k in fields}

    def get(name: str) -> Any:  # Tracify spells "Referer" capitalised: keys in any case
        return fields.get(lowered.get(name, name))

    origin = _text(get("origin"), "data.origin", errors, 2048)
    if not origin:
        errors.append("data.origin is required")
    referer = _text(get("referer"), "data.Referer", errors, 2048)
    parameters: dict[str, str] = {}
    nested = get("url_parameters")
    if nested is not None and not isinstance(nested, dict):
        errors.append("data.url_parameters must be an object")
        nested = None
    properties: dict[str, Any] = {"origin": origin} if origin else {}
    for key, value in [*fields.items(), *((nested or {}).items())]:
        low = key.lower()
        if low in KNOWN:
            continue
        text = _text(value, f"data.{key}", errors)
        if text is None or not key or len(key) > 64:
            if key and len(key) > 64:
                errors.append(f"data keys must have at most 64 characters ({key[:20]}...)")
            continue
        properties[key] = text
        if not _LINE_ITEM.fullmatch(key):
            parameters[key] = text
    fields_out: dict[str, Any] = {
        "visitor_id": visitor,
        "at": at,
        "url": _with_parameters(url, parameters),
        "path": url,
        "referrer": referer,
    }
    if kind in ("purchase", "conversion"):
        id_name = "order_id" if kind == "purchase" else "conversion_id"
        given = _text(get(id_name), f"data.{id_name}", errors, 200)
        if not given:
            errors.append(f"data.{id_name} is required for {kind} events")
        currency = _text(get("currency"), "data.currency", errors, 3)
        if not currency or not _CURRENCY.fullmatch(currency):
            errors.append("data.currency is required: a 3-letter ISO 4217 code such as EUR")
        amount = _text(get("amount"), "data.amount", errors, 32)
        if not amount:
            errors.append(f"data.amount is required for {kind} events")
        if given:
            properties[id_name] = given
        fields_out.update(
            order_id=given if kind == "purchase" else f"conversion:{given}",
            revenue=amount,
            currency=currency,
        )
    if kind == "pageview":
        fields_out["kind"] = "pageview"
    else:
        fields_out.update(kind="event", event=f"tracify.{kind}", properties=properties or None)
    if errors:
        return site, None, errors
    try:
        return site, compat.track_in(**fields_out), []
    except ValidationFailed as exc:
        return site, None, exc.errors


def _result(index: int, outcome: Tracked | ValidationFailed | str) -> dict[str, Any]:
    if isinstance(outcome, str):
        return {"index": index, "status": "error", "errors": [outcome]}
    if isinstance(outcome, ValidationFailed):
        return {"index": index, "status": "error", "errors": outcome.errors}
    out: dict[str, Any] = {"index": index, "status": outcome.status, "id": outcome.id}
    if outcome.reason:
        out["reason"] = outcome.reason
    return out


async def _handle(request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.app.state
    header = request.headers.get("authorization")
    try:
        token = compat.bearer(header) if header else request.headers.get("tracify-token")
        key = await compat.full_access_key(state, (token or "").strip() or None)
    except (AuthError, AccessDenied) as exc:
        raise _Error(401, f"unauthorized: {exc.message}") from None
    wait = state.limiter.hit(key.id)
    if wait:
        raise _Error(429, "Rate limit exceeded", {"Retry-After": str(wait)})
    raw_events = _decode_body(await request.body())
    engine = compat.engine_of(state)
    outcomes: dict[int, Tracked | ValidationFailed | str] = {}
    by_site: dict[int, list[tuple[int, TrackIn]]] = defaultdict(list)
    for index, raw in enumerate(raw_events):
        site_name, item, errors = _event(raw)
        if errors or item is None or site_name is None:
            outcomes[index] = ValidationFailed(errors or ["invalid event"])
            continue
        try:
            by_site[await engine.find_site(site_name)].append((index, item))
        except NotFound:
            outcomes[index] = "customer_site_id names no site"
    for site_id, entries in by_site.items():
        results = await engine.track_many(site_id, [item for _, item in entries])
        for (index, _item), result in zip(entries, results, strict=True):
            outcomes[index] = result
    shown = [_result(i, outcomes[i]) for i in range(len(raw_events))]
    count = {s: sum(1 for r in shown if r["status"] == s) for s in _STATUSES}
    body = {
        "success": count["error"] < len(shown),
        "received": len(shown),
        "accepted": count["created"],
        "duplicates": count["duplicate"],
        "ignored": count["ignored"],
        "rejected": count["error"],
        "results": shown,
    }
    return Response(body, status_code=400 if count["error"] == len(shown) else 200)


@post(
    "/api/v1/events",
    summary="Tracify: server-side events (pageview, productview, addtocart, purchase, conversion)",
    tags=["other formats"],
    request_max_body_size=BODY_LIMIT,
    status_code=200,
)
async def tracify_events(request: Request[Any, Any, Any]) -> Response[Any]:
    try:
        return await _handle(request)
    except _Error as exc:
        return _error(exc.status, exc.message, exc.headers or None)
    except HTTPException as exc:
        if exc.status_code == 413:
            return _error(413, "Request body too large")
        return _error(400, exc.detail or "Bad request")
    except Overloaded as exc:
        return _error(503, exc.message, {"Retry-After": str(exc.retry_after)})
    except TinytrackError as exc:
        return _error(503, exc.message, {"Retry-After": "1"})
    except Exception:
        compat.log.exception("unhandled error on POST /api/v1/events")
        return _error(500, "Internal server error")


ROUTES = [tracify_events]
