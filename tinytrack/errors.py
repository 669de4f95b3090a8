"""Exceptions raised by tinytrack.

    TinytrackError                 root: catch this to catch everything tinytrack raises
    ├── InvalidParameter           a query/CLI parameter is malformed          (HTTP 400)
    ├── ValidationFailed           a payload breaks the documented rules        (HTTP 422)
    ├── NotFound                   unknown site, key or record                  (HTTP 404)
    ├── AuthError                  missing, invalid or revoked API key          (HTTP 401)
    ├── AccessDenied               read-only key used for a write               (HTTP 403)
    ├── NotAllowed                 a browser request from a page not on the site's domain,
    │                              or for an inactive site                      (HTTP 403)
    ├── Overloaded                 the write queue is full; retry later         (HTTP 503)
    └── EngineClosed               the engine was closed (or never opened)      (HTTP 503)

The server maps these to HTTP in one table (``tinytrack.server.errors``); the CLI maps them to exit
codes in one place (``tinytrack.cli``).
"""

from __future__ import annotations


class TinytrackError(Exception):
    """Root of every error tinytrack raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(TinytrackError):
    """A query or command-line parameter is malformed."""


class ValidationFailed(TinytrackError):
    """A payload breaks the documented rules; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class NotFound(TinytrackError):
    """The site, key or record does not exist."""


class AuthError(TinytrackError):
    """The API key is missing, unknown or revoked."""


class AccessDenied(TinytrackError):
    """The API key is valid but may not do this (read-only key on a write)."""


class NotAllowed(TinytrackError):
    """A browser-side request (collector) that the site does not accept: the page is on
    another domain, or the site is not active."""


class Overloaded(TinytrackError):
    """The write queue is full; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineClosed(TinytrackError):
    """The engine is not open (closed, or shutting down)."""
