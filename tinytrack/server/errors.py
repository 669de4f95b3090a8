"""The one table mapping errors to HTTP responses. Every error body is JSON with an ``error``
key (the seed's "typical error payload"); 422s also carry ``status`` and ``errors`` as the
seed's write endpoints document. No traceback ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from tinytrack.errors import (
    AccessDenied,
    AuthError,
    EngineClosed,
    InvalidParameter,
    NotAllowed,
    NotFound,
    Overloaded,
    TinytrackError,
    ValidationFailed,
)

log = logging.getLogger("tinytrack.server")


class RateLimited(TinytrackError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Rate limit exceeded")
        self.retry_after = retry_after


_STATUS: dict[type[TinytrackError], int] = {
    InvalidParameter: 400,
    AuthError: 401,
    AccessDenied: 403,
    NotAllowed: 403,
    NotFound: 404,
    ValidationFailed: 422,
    RateLimited: 429,
    Overloaded: 503,
    EngineClosed: 503,
}


def error_response(
    code: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    return Response({"error": message, **extra}, status_code=code, headers=headers)


def error_parts(exc: TinytrackError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for a tinytrack error: the one mapping, shared by the
    Litestar handlers and the fast hit path."""
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
    if isinstance(exc, ValidationFailed):
        return 422, {"error": exc.errors[0], "status": "error", "errors": exc.errors}, {}
    if isinstance(exc, RateLimited | Overloaded):
        return status, {"error": exc.message}, {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, AuthError):
        return 401, {"error": exc.message}, {"WWW-Authenticate": "Bearer"}
    return status, {"error": exc.message}, {}


def tinytrack_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, TinytrackError)
    status, body, headers = error_parts(exc)
    return Response(body, status_code=status, headers=headers or None)


def http_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 413:
        return error_response(413, "Request body too large")
    if status >= 500:
        return internal_error(_, exc)
    detail = exc.detail or "Bad request"
    if status == 400 and "Validation failed" in detail:
        # Litestar's own parameter validation; say which parameter, not the internals.
        fields = [str(e.get("key")) for e in (exc.extra or []) if isinstance(e, dict)]
        detail = "Invalid parameter" + (": " + ", ".join(fields) if fields else "")
    return error_response(status, detail, headers=exc.headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    TinytrackError: tinytrack_error,
    HTTPException: http_error,
    Exception: internal_error,
}
