"""Shared pieces of the browser tests: real headless Chromium (Debian's, driven by Playwright),
a real tinytrack server and a small test site served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tinytrack.testing import RunningServer

CHROMIUM = "/usr/bin/chromium"
# The flags the machine notes give for a closed network: without the background-networking
# ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Headless Chromium says "HeadlessChrome" in its user agent, which tinytrack rightly counts as a
# bot; the tests browse as the desktop Chrome this really is.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)

T = TypeVar("T")


@dataclass
class DemoSite:
    """A static site on 127.0.0.1 whose pages a test writes into ``pages`` (path -> HTML).
    Unknown paths under a prefix in ``fallbacks`` get that prefix's page (an SPA's routes)."""

    port: int = 0
    pages: dict[str, str] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextlib.contextmanager
def serve_site() -> Iterator[DemoSite]:
    site = DemoSite()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            body = site.pages.get(path)
            if body is None:
                body = next((p for pre, p in site.fallbacks.items() if path.startswith(pre)), None)
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()


def page(script: str, body: str = "", title: str = "test page") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<script src='{script}' defer></script></head><body>{body}</body></html>"
    )


def embed_url(server: RunningServer, options: str = "", *, minified: bool = False) -> str:
    tail = "/min.js" if minified else ".js"
    return f"{server.base_url}/embed/{server.site_uid}{tail}" + (f"?{options}" if options else "")


def api_get(server: RunningServer, endpoint: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.api}/sites/{server.site_id}/{endpoint}",
        params=params,
        headers={"Authorization": f"Bearer {server.read_key}"},
    )
    response.raise_for_status()
    return response.json()


def site_info(server: RunningServer) -> Any:
    response = httpx.get(
        f"{server.api}/sites/{server.site_id}",
        headers={"Authorization": f"Bearer {server.read_key}"},
    )
    response.raise_for_status()
    return response.json()


def api_post(server: RunningServer, endpoint: str, body: Any) -> Any:
    response = httpx.post(
        f"{server.api}/sites/{server.site_id}/{endpoint}",
        json=body,
        headers={"Authorization": f"Bearer {server.full_key}"},
    )
    response.raise_for_status()
    return response.json()


def hits(server: RunningServer) -> list[dict[str, Any]]:
    """Every stored hit, oldest first."""
    found: list[dict[str, Any]] = api_get(server, "hits", per_page=1000)["hits"]
    return sorted(found, key=lambda h: h["id"])


def events(server: RunningServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api_get(server, "events", per_page=1000)["events"]
    return sorted(found, key=lambda e: e["id"])


def wait_for(probe: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll until ``probe()`` is truthy (browser requests are asynchronous); fail after
    ``timeout`` seconds with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s (last value: {value!r})"
            return value
        time.sleep(0.05)


def wait_for_rows(
    fetch: Callable[[RunningServer], list[dict[str, Any]]], server: RunningServer, count: int
) -> list[dict[str, Any]]:
    """Poll ``fetch(server)`` (``hits`` or ``events``) until it returns ``count`` rows."""

    def probe() -> list[dict[str, Any]] | None:
        rows = fetch(server)
        return rows if len(rows) == count else None

    found = wait_for(probe)
    assert found is not None
    return found


def settle() -> None:
    """Give a browser time to send anything it would (wrongly) send twice: used before
    asserting that something happened exactly once."""
    time.sleep(0.8)
