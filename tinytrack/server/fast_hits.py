"""The single-hit write path, ``POST /api/v1/sites/{id}/hits``, served in front of Litestar's
router.

Why: it is the hottest request the product gets (one per page view sent by a backend), and
Litestar's per-request machinery (Request and Response objects, signature model, hooks) cost more
than everything tinytrack does for a hit: measured in-process, a trivial Litestar handler takes
~95 µs and tinytrack's whole handler ~280 µs. This layer does exactly what the Litestar handler
``api_v1.create_hit`` does - the same key check (``api_v1.check_key``), site check, body limit,
decoder, engine call and error table (``errors.error_parts``) - on the raw ASGI messages.

Every other request, and this one when the app is built with ``fast_path=False``, goes to
Litestar unchanged; ``create_hit`` stays the documented handler (OpenAPI) and the tests run the
HTTP suite against both.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from tinytrack.engine import decode_hit
from tinytrack.errors import TinytrackError
from tinytrack.models import HitCreated
from tinytrack.server import api_v1
from tinytrack.server.errors import error_parts

log = logging.getLogger("tinytrack.server")

_PATH = re.compile(r"/api/v1/sites/([^/]+)/hits")
_ENCODER = msgspec.json.Encoder()
_TOO_LARGE: tuple[int, dict[str, Any], dict[str, str]] = (
    413,
    {"error": "Request body too large"},
    {},
)


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    pass


class FastHitPath:
    """ASGI layer: POST /api/v1/sites/{id}/hits here, everything else to ``inner``."""

    def __init__(self, app: Litestar, inner: ASGIApp) -> None:
        self._app = app
        self._inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fields: dict[str, Any] = scope  # type: ignore[assignment]
        if (
            fields["type"] != "http"
            or fields.get("method") != "POST"
            or (match := _PATH.fullmatch(fields["path"])) is None
        ):
            await self._inner(scope, receive, send)
            return
        try:
            status, body, headers = await self._handle(scope, receive, match.group(1))
        except TinytrackError as exc:
            status, body, headers = error_parts(exc)
        except BodyTooLarge:
            status, body, headers = _TOO_LARGE
        except Disconnected:
            return  # nobody to answer; nothing was written
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            status, body, headers = 500, {"error": "Internal server error"}, {}
        await respond(send, status, body, headers)

    async def _handle(
        self, scope: Scope, receive: Receive, raw_site_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        authorization = None
        length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        state = self._app.state
        await api_v1.check_key(state, authorization, write=True)
        site_id = api_v1.site_id_of(raw_site_id)
        engine = api_v1.engine_of(state)
        await engine.check_site(site_id)
        hit = decode_hit(await read_body(receive, length, api_v1.SINGLE_BODY_LIMIT))
        result = await engine.record_hit(site_id, hit)
        return (201 if isinstance(result, HitCreated) else 202), result, {}


async def read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: Any,
    headers: dict[str, str],
    *,
    include_body: bool = True,
) -> None:
    """Send a whole response: ``body`` as JSON, raw ``bytes`` (with a Content-Type in
    ``headers``) or None (no body); ``include_body=False`` answers a HEAD request."""
    raw_headers: list[tuple[bytes, bytes]] = []
    if body is None:
        payload = b""
    elif isinstance(body, bytes):
        payload = body
    else:
        payload = _ENCODER.encode(body)
        raw_headers.append((b"content-type", b"application/json"))
    raw_headers.append((b"content-length", str(len(payload)).encode()))
    raw_headers += [
        (k.lower().encode(), v.encode("latin-1", "replace")) for k, v in headers.items()
    ]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": raw_headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": payload if include_body else b"",
        "more_body": False,
    }
    await send(end)
