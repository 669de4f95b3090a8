"""Other tools' tracking formats, at the paths and with the parameters those tools document, so
existing tracking code only changes its host name:

    GET|POST /in.php                                Clicky internal-script logging   (clicky.py)
    GET|POST /track/ce | /track/identify | /track/ping   Woopra HTTP tracking API    (woopra.py)
    POST     /api/v1/websites/{id}/track[/batch]    Web Analyzer measurement protocol
                                                                                (webanalyzer.py)
    POST     /api/v1/events                         Tracify server-side events      (tracify.py)

Each module validates its own wire format, answers in that tool's documented shape (errors too)
and maps the request onto ``Engine.track`` / ``track_many``: it owns no storage. The helpers
here are what they share: parameter parsing (with PHP-style ``name[key]`` arrays), strict
conversion into the engine's ``TrackIn``, and API-key checks without the API's error shape.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.datastructures import State

from tinytrack.errors import AccessDenied, AuthError, ValidationFailed
from tinytrack.models import ApiKey, TrackIn
from tinytrack.server.api_v1 import engine_of as engine_of

log = logging.getLogger("tinytrack.server")

MAX_FIELDS = 200  # parameters per request: Woopra says "no limit"; a bound keeps parsing cheap
FORM_BODY_LIMIT = 64 * 1024
FULL_ACCESS_NEEDED = "This endpoint requires a full-access API key"


class Answer(Exception):
    """Raised inside a dialect's handler to answer at once with ``status`` (and headers), in
    that dialect's own shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_pairs(raw: str | bytes) -> list[tuple[str, str]]:
    """``a=1&b[c]=2`` -> pairs (blank values kept); ``ValidationFailed`` past ``MAX_FIELDS``."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise ValidationFailed([f"At most {MAX_FIELDS} parameters per request"]) from None


async def request_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The query string's parameters, then (POST) a URL-encoded form body's, or a JSON object
    body's top-level values; a later value of the same name wins."""
    pairs = parse_pairs(request.scope.get("query_string", b""))
    if request.method == "POST":
        body = await request.body()
        kind = request.headers.get("content-type", "").lower()
        if "json" in kind and body.strip():
            try:
                data = msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise ValidationFailed(["Body must be a JSON object or a form"]) from None
            if not isinstance(data, dict):
                raise ValidationFailed(["Body must be a JSON object or a form"])
            if len(data) > MAX_FIELDS:
                raise ValidationFailed([f"At most {MAX_FIELDS} parameters per request"])
            pairs += [(str(k), _text(v)) for k, v in data.items() if v is not None]
        elif body:
            pairs += parse_pairs(body)
    return dict(pairs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValidationFailed(["Parameters must be strings, numbers or booleans"])


def bracketed(params: Mapping[str, str], name: str) -> dict[str, str]:
    """PHP-style array parameters: ``custom[username]=billy`` -> ``{"username": "billy"}``."""
    start = name + "["
    return {
        k[len(start) : -1]: v for k, v in params.items() if k.startswith(start) and k[-1:] == "]"
    }


def track_in(**fields: Any) -> TrackIn:
    """A ``TrackIn`` checked against its constraints (lengths, sizes, currency...): direct
    construction would skip them. ``ValidationFailed`` names the offending field."""
    try:
        return msgspec.convert({k: v for k, v in fields.items() if v is not None}, TrackIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([str(exc)]) from None


def ip_or_none(text: str | None, name: str) -> str | None:
    """A syntactically valid IP address, or None when not given; ``ValidationFailed`` else."""
    if text is None or not text.strip():
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValidationFailed([f"{name} is not a valid IP address"]) from None


def client_address(request: Request[Any, Any, Any]) -> str | None:
    address: str | None = request.app.state.proxies.client(request.scope)
    return address


async def full_access_key(state: State, token: str | None) -> ApiKey:
    """The full-access key ``token`` names (``AuthError`` / ``AccessDenied`` otherwise; each
    dialect turns those into its own answer). Rate limits are the caller's."""
    key = await engine_of(state).authenticate(token)
    if key.access_type != "full_access":
        raise AccessDenied(FULL_ACCESS_NEEDED)
    return key


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None if absent); another
    scheme raises ``AuthError``."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("Authorization header must be 'Bearer <api key>'")
    return value.strip()


def event_name(name: str, category: str) -> str:
    """A name in tinytrack's ``category.action`` form: kept when it already is one, else put
    under ``category`` (``bark`` -> ``woopra.bark``)."""
    text = name.strip()
    parts = text.split(".")
    if len(parts) >= 2 and all(part.strip() for part in parts):
        return text
    return f"{category}.{text}"
