"""The public write paths browsers call, served in front of Litestar's router like the API's
single-hit POST (``fast_hits.py``): one request per page view of every tracked site makes the
collector the hottest path in the product, so it skips Litestar's per-request machinery.

    POST    /collector/{site_uid}          a page view      -> 201 created | 202 ignored
    POST    /collector/{site_uid}/events   a clicked event  -> 201 | 202
    POST    /collector/{site_uid}/kudos    a kudos press    -> 201 {"uid", "path", "count"}
    OPTIONS /collector/...                 CORS preflight   -> 204
    GET     /pixel/{site_uid}.gif?path=... tracking pixel   -> 200 image/gif, always

The body is JSON whatever the Content-Type (the script sends text/plain to stay a "simple"
cross-origin request without a preflight; ``sendBeacon`` does the same). The browser's user
agent, address and ``Origin`` come from the request. Answers carry no stored data beyond the
status; errors are the usual JSON error bodies with 4xx statuses.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from tinytrack.errors import TinytrackError, ValidationFailed
from tinytrack.models import (
    BeaconEventIn,
    BeaconKudoIn,
    HitCreated,
    Ignored,
    PageViewIn,
)
from tinytrack.server import api_v1
from tinytrack.server.errors import RateLimited, error_parts
from tinytrack.server.fast_hits import BodyTooLarge, Disconnected, read_body, respond
from tinytrack.server.ratelimit import RateLimiter

log = logging.getLogger("tinytrack.server")

BODY_LIMIT = 8 * 1024  # a page view is a few hundred bytes
_COLLECT = re.compile(r"/collector/([^/]+)(/events|/kudos)?/?")
_PIXEL = re.compile(r"/pixel/([^/]+)\.gif")
# The smallest valid transparent 1x1 GIF (43 bytes).
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_CREATED = {"status": "created"}
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "": msgspec.json.Decoder(PageViewIn),
    "/events": msgspec.json.Decoder(BeaconEventIn),
    "/kudos": msgspec.json.Decoder(BeaconKudoIn),
}


class Collector:
    """ASGI layer: the collector and pixel paths here, everything else to ``inner``."""

    def __init__(self, app: Litestar, inner: ASGIApp) -> None:
        self._app = app
        self._inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fields: dict[str, Any] = scope  # type: ignore[assignment]
        if fields["type"] == "http":
            path: str = fields["path"]
            if path.startswith("/collector/"):
                match = _COLLECT.fullmatch(path)
                if match is not None:
                    await self._collect(scope, receive, send, match.group(1), match.group(2))
                    return
            elif path.startswith("/pixel/"):
                match = _PIXEL.fullmatch(path)
                if match is not None and fields["method"] in ("GET", "HEAD"):
                    await self._pixel(scope, send, match.group(1))
                    return
        await self._inner(scope, receive, send)

    async def _collect(
        self, scope: Scope, receive: Receive, send: Send, uid: str, kind: str | None
    ) -> None:
        headers = _headers(scope)
        origin = headers.get(b"origin")
        cors = _cors(origin)
        method = _method(scope)
        if method == "OPTIONS":
            await respond(send, 204, None, {**cors, **_PREFLIGHT})
            return
        if method != "POST":
            await respond(send, 405, {"error": "Method not allowed"}, {**cors, "Allow": "POST"})
            return
        try:
            status, body = await self._store(scope, receive, headers, uid, kind or "")
        except TinytrackError as exc:
            status, body, extra = error_parts(exc)
            cors = {**cors, **extra}
        except BodyTooLarge:
            status, body = 413, {"error": "Request body too large"}
        except Disconnected:
            return
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            status, body = 500, {"error": "Internal server error"}
        await respond(send, status, body, cors)

    async def _store(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], uid: str, kind: str
    ) -> tuple[int, Any]:
        state = self._app.state
        address = state.proxies.client(scope)
        limiter: RateLimiter = state.collector_limiter
        wait = limiter.hit(address)
        if wait:
            raise RateLimited(wait)
        raw = await read_body(receive, headers.get(b"content-length"), BODY_LIMIT)
        try:
            item = _DECODERS[kind].decode(raw)
        except msgspec.ValidationError as exc:
            raise ValidationFailed([f"Invalid body: {exc}"]) from None
        except msgspec.DecodeError:
            raise ValidationFailed(["Body must be a JSON object"]) from None
        engine = api_v1.engine_of(state)
        origin = _text(headers.get(b"origin"))
        agent = _text(headers.get(b"user-agent"))
        if isinstance(item, PageViewIn):
            result: Any = await engine.collect_hit(
                uid, item, user_agent=agent, ip_address=address, origin=origin
            )
        elif isinstance(item, BeaconEventIn):
            result = await engine.collect_event(
                uid, item, user_agent=agent, ip_address=address, origin=origin
            )
        else:
            given = await engine.collect_kudo(uid, item, origin=origin)
            return (202, given) if isinstance(given, Ignored) else (201, given)
        if isinstance(result, Ignored):
            return 202, result
        return 201, _CREATED

    async def _pixel(self, scope: Scope, send: Send, uid: str) -> None:
        """Always a GIF: an RSS reader or mail client shows a broken image otherwise. What
        happened is said in a header, for whoever debugs a feed."""
        outcome = "created"
        try:
            outcome = await self._record_pixel(scope, uid)
        except TinytrackError as exc:
            outcome = f"ignored: {exc.message}"
        except Exception:
            log.exception("unhandled error on GET %s", scope["path"])
            outcome = "error"
        await respond(
            send,
            200,
            GIF,
            {
                "Content-Type": "image/gif",
                "Cache-Control": "no-store, max-age=0",
                "Cross-Origin-Resource-Policy": "cross-origin",
                "X-Tinytrack-Result": outcome,
            },
            include_body=_method(scope) != "HEAD",
        )

    async def _record_pixel(self, scope: Scope, uid: str) -> str:
        state = self._app.state
        address = state.proxies.client(scope)
        limiter: RateLimiter = state.pixel_limiter
        wait = limiter.hit(address)
        if wait:
            raise RateLimited(wait)
        query = parse_qs(scope["query_string"].decode("latin-1"), max_num_fields=20)
        path = query.get("path", [""])[0][:2048]
        headers = _headers(scope)
        result = await api_v1.engine_of(state).record_pixel(
            uid,
            path=path,
            user_agent=_text(headers.get(b"user-agent")),
            ip_address=address,
            referrer=_text(headers.get(b"referer")),
        )
        if isinstance(result, HitCreated):
            return "created"
        return f"ignored: {result.reason}"


_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def _method(scope: Scope) -> str:
    fields: dict[str, Any] = scope  # type: ignore[assignment]
    return str(fields["method"])


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1")[:2048] if value else None


def _cors(origin: bytes | None) -> dict[str, str]:
    """Any page may call the collector (the engine checks that the page is the site's); the
    answer names the caller's origin, and varies by it, so caches keep answers apart."""
    if origin:
        return {"Access-Control-Allow-Origin": origin.decode("latin-1"), "Vary": "Origin"}
    return {"Vary": "Origin"}
