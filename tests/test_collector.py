"""The browser side over HTTP, through the real app: collector, pixel, embed scripts and widget
endpoints, with the inputs a browser would never send as well as those it does. (What the
script itself does in a browser is in test_browser.py.)"""

from __future__ import annotations

import gzip
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import tinytrack
from tests.conftest import CHROME_ANDROID, FIREFOX_LINUX, FakeClock
from tinytrack.config import Settings
from tinytrack.server.app import create_app
from tinytrack.server.collector import GIF
from tinytrack.server.embed import script

PAGE = "https://example.com/blog/post"


@dataclass
class Browserish:
    client: httpx.AsyncClient
    engine: tinytrack.Engine
    site: tinytrack.Site

    async def view(
        self,
        body: object = None,
        *,
        origin: str | None = "https://example.com",
        kind: str = "",
        **headers: str,
    ) -> httpx.Response:
        sent = {"User-Agent": FIREFOX_LINUX, "Content-Type": "text/plain", **headers}
        if origin is not None:
            sent["Origin"] = origin
        content = body if isinstance(body, bytes) else httpx_json(body)
        return await self.client.post(
            f"/collector/{self.site.uid}{kind}", content=content, headers=sent
        )

    async def hits(self) -> list[tinytrack.Hit]:
        return (await self.engine.hits(self.site.id, per_page=1000)).hits


def httpx_json(body: object) -> bytes:
    import json

    return json.dumps({"path": "/blog/post", "url": PAGE} if body is None else body).encode()


async def make_browserish(
    engine: tinytrack.Engine, *, per_minute: int = 0, client: str = "8.8.4.4"
) -> AsyncIterator[Browserish]:
    site = await engine.create_site("https://example.com")
    app = create_app(engine, settings=Settings(rate_limit=0, collector_rate_limit=per_minute))
    transport = httpx.ASGITransport(app=app, client=(client, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://stats.test") as c:
        yield Browserish(c, engine, site)


@pytest.fixture
async def browser(engine: tinytrack.Engine) -> AsyncIterator[Browserish]:
    async for value in make_browserish(engine):
        yield value


# -- collector: what is accepted --------------------------------------------------------------


async def test_page_view_is_stored_with_request_context(browser: Browserish) -> None:
    r = await browser.view(
        {
            "path": "/blog/post",
            "url": "https://www.example.com/blog/post?utm_source=mastodon&email=a@b.c#top",
            "referrer": "https://search.example/?q=private+question",
        }
    )
    assert (r.status_code, r.json()) == (201, {"status": "created"})
    assert r.headers["access-control-allow-origin"] == "https://example.com"
    assert "Origin" in r.headers["vary"]
    (hit,) = await browser.hits()
    assert hit.path == "/blog/post"
    assert hit.url == "https://www.example.com/blog/post?utm_source=mastodon"
    assert hit.referrer == "https://search.example/"
    assert hit.source == "mastodon"
    assert (hit.browser_name, hit.platform_name) == ("Firefox", "Linux")
    assert hit.country == "US"  # from the client address 8.8.4.4's lookup, not stored


@pytest.mark.parametrize(
    ("url", "origin", "status"),
    [
        (PAGE, "https://example.com", 201),
        ("https://www.example.com/x", "https://www.example.com", 201),  # the www. twin
        ("http://example.com:8080/x", "http://example.com:8080", 201),  # any port
        (PAGE, None, 201),  # no Origin (some beacons): the page URL decides
        (None, "https://example.com", 201),  # no page URL: the Origin decides
        ("https://evil.test/x", "https://evil.test", 403),
        ("https://blog.example.com/x", "https://blog.example.com", 403),  # another host
        ("https://example.com.evil.test/x", "https://example.com.evil.test", 403),
        (PAGE, "https://evil.test", 403),  # a page URL copied from the real site
        ("https://evil.test/x", "https://example.com", 403),
        (None, None, 403),
        (None, "null", 403),  # sandboxed iframes and file:// pages send Origin: null
    ],
)
async def test_only_pages_on_the_sites_domain_are_recorded(
    browser: Browserish, url: str | None, origin: str | None, status: int
) -> None:
    body = {"path": "/x"} if url is None else {"path": "/x", "url": url}
    r = await browser.view(body, origin=origin)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]
    assert len(await browser.hits()) == (1 if status == 201 else 0)


async def test_inactive_site_records_nothing(browser: Browserish) -> None:
    await browser.engine.update_site(browser.site.id, active=False)
    r = await browser.view()
    assert (r.status_code, r.json()) == (403, {"error": "Site is not active"})
    await browser.engine.update_site(browser.site.id, active=True)
    assert (await browser.view()).status_code == 201
    assert len(await browser.hits()) == 1


async def test_bots_and_ignored_paths_are_answered_202(browser: Browserish) -> None:
    await browser.engine.update_site(browser.site.id, ignore_paths=["/admin/*"])
    headless = FIREFOX_LINUX.replace("Firefox", "HeadlessChrome")
    r = await browser.view(**{"User-Agent": headless})
    assert r.status_code == 202 and r.json()["status"] == "ignored"
    r = await browser.view({"path": "/admin/users", "url": "https://example.com/admin/users"})
    assert r.json() == {"status": "ignored", "reason": "Path matches ignore rule"}
    assert await browser.hits() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 422),
        (b"not json", 422),
        (b"[1, 2]", 422),
        (b'{"path": 5}', 422),
        (b'{"path": "/x", "url": "' + b"a" * 3000 + b'"}', 422),
        (b"\xff\xfe\x00garbage", 422),
        (b'{"path": "/x"}' + b" " * 9000, 413),
    ],
)
async def test_malformed_bodies_get_a_json_4xx(
    browser: Browserish, body: bytes, status: int
) -> None:
    r = await browser.view(body)
    assert r.status_code == status
    assert r.json()["error"]
    assert await browser.hits() == []


async def test_unknown_site_and_wrong_methods(browser: Browserish) -> None:
    r = await browser.client.post("/collector/nosuchsite", content=b"{}")
    assert (r.status_code, r.json()) == (404, {"error": "Site not found"})
    r = await browser.client.get(f"/collector/{browser.site.uid}")
    assert r.status_code == 405 and r.json()["error"] and r.headers["allow"] == "POST"


async def test_cors_preflight(browser: Browserish) -> None:
    r = await browser.client.options(
        f"/collector/{browser.site.uid}/events",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://example.com"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"].lower() == "content-type"


async def test_collector_rate_limit_per_client_address(engine: tinytrack.Engine) -> None:
    async for browser in make_browserish(engine, per_minute=25):
        for _ in range(25):
            assert (await browser.view()).status_code == 201
        r = await browser.view()
        assert r.status_code == 429
        assert r.json() == {"error": "Rate limit exceeded"}
        assert int(r.headers["retry-after"]) >= 1
        assert len(await browser.hits()) == 25
    # Another address has its own allowance.
    site = (await engine.list_sites())[0]
    app = create_app(engine, settings=Settings(collector_rate_limit=25))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://stats.test") as other:
        r = await other.post(
            f"/collector/{site.uid}",
            content=httpx_json(None),
            headers={"Origin": "https://example.com", "User-Agent": FIREFOX_LINUX},
        )
        assert r.status_code == 201


# -- collector: events and kudos --------------------------------------------------------------


async def test_events_from_the_page(browser: Browserish) -> None:
    r = await browser.view(
        {"event": "button->click", "value": "pricing", "path": "/pricing", "url": PAGE},
        kind="/events",
    )
    assert (r.status_code, r.json()) == (201, {"status": "created"})
    page = await browser.engine.events(browser.site.id)
    (event,) = page.events  # type: ignore[union-attr]
    assert (event.event, event.value, event.path) == ("button.click", "pricing", "/pricing")
    r = await browser.view({"event": "click", "url": PAGE}, kind="/events")
    assert r.status_code == 422
    assert r.json()["errors"] == [
        "Event must be 'category.action' format (2+ dot-separated segments)"
    ]
    r = await browser.view(
        {"event": "a.b", "url": "https://evil.test/"}, kind="/events", origin="https://evil.test"
    )
    assert r.status_code == 403


async def test_kudos_from_the_page(browser: Browserish) -> None:
    first = await browser.view({"path": "/post", "url": PAGE}, kind="/kudos")
    second = await browser.view({"path": "/post", "url": PAGE}, kind="/kudos")
    assert first.status_code == second.status_code == 201
    assert first.json()["count"] == 1 and second.json()["count"] == 2
    assert first.json()["uid"] != second.json()["uid"]
    assert await browser.engine.kudo_count(browser.site.id, "/post") == 2
    r = await browser.view({"url": PAGE}, kind="/kudos")
    assert (r.status_code, r.json()["errors"]) == (422, ["Path can't be blank"])
    r = await browser.view(
        {"path": "/post", "url": "https://evil.test/"}, kind="/kudos", origin="https://evil.test"
    )
    assert r.status_code == 403
    assert await browser.engine.kudo_count(browser.site.id, "/post") == 2


# -- pixel ------------------------------------------------------------------------------------


def assert_gif(r: httpx.Response) -> None:
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/gif"
    assert r.headers["cache-control"].startswith("no-store")
    body = r.content
    assert body == GIF and body[:6] == b"GIF89a" and body.endswith(b";")
    assert struct.unpack("<HH", body[6:10]) == (1, 1)  # logical screen 1x1


async def test_pixel_records_a_hit(browser: Browserish) -> None:
    r = await browser.client.get(
        f"/pixel/{browser.site.uid}.gif",
        params={"path": "/rss/first-post"},
        headers={"User-Agent": CHROME_ANDROID},
    )
    assert_gif(r)
    assert r.headers["x-tinytrack-result"] == "created"
    (hit,) = await browser.hits()
    assert (hit.path, hit.source, hit.browser_name, hit.is_mobile) == (
        "/rss/first-post",
        "pixel",
        "Chrome",
        True,
    )


@pytest.mark.parametrize(
    ("agent", "name", "source"),
    [
        (
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers; "
            "like FeedFetcher-Google)",
            "Feedly",
            "rss",
        ),
        ("Mozilla/5.0 (compatible; inoreader.com; 3 subscribers)", "Inoreader", "rss"),
        (
            "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1/x",
            "NewsBlur",
            "rss",
        ),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            "Gmail",
            "email",
        ),
    ],
)
async def test_pixel_recognises_feed_readers_and_mail_proxies(
    browser: Browserish, agent: str, name: str, source: str
) -> None:
    r = await browser.client.get(
        f"/pixel/{browser.site.uid}.gif?path=/feed/post", headers={"User-Agent": agent}
    )
    assert_gif(r)
    (hit,) = await browser.hits()
    assert (hit.browser_name, hit.source) == (name, source)


@pytest.mark.parametrize(
    ("target", "agent"),
    [
        ("/pixel/nosuchsite.gif?path=/x", FIREFOX_LINUX),
        ("/pixel/{uid}.gif", FIREFOX_LINUX),  # no path: counted for "/"
        ("/pixel/{uid}.gif?path=", FIREFOX_LINUX),
        ("/pixel/{uid}.gif?path=%00%ff%fe&path=/second", FIREFOX_LINUX),
        ("/pixel/{uid}.gif?path=" + "x" * 5000, FIREFOX_LINUX),
        ("/pixel/{uid}.gif?%%%===&&&", FIREFOX_LINUX),
        ("/pixel/{uid}.gif?path=/x", "Googlebot/2.1 (+http://www.google.com/bot.html)"),
        ("/pixel/{uid}.gif?path=/x", ""),
    ],
)
async def test_pixel_is_a_gif_whatever_the_input(
    browser: Browserish, target: str, agent: str
) -> None:
    r = await browser.client.get(target.format(uid=browser.site.uid), headers={"User-Agent": agent})
    assert_gif(r)


async def test_pixel_head_and_rate_limit(engine: tinytrack.Engine) -> None:
    async for browser in make_browserish(engine, per_minute=1):  # pixels get 10x: 10/min
        url = f"/pixel/{browser.site.uid}.gif?path=/x"
        head = await browser.client.head(url, headers={"User-Agent": FIREFOX_LINUX})
        assert head.status_code == 200 and head.content == b""
        for _ in range(12):
            assert_gif(await browser.client.get(url, headers={"User-Agent": FIREFOX_LINUX}))
        assert len(await browser.hits()) == 10  # the HEAD counted too


# -- scripts ----------------------------------------------------------------------------------


async def test_embed_scripts_are_served_with_caching_headers(browser: Browserish) -> None:
    uid = browser.site.uid
    for url in (f"/embed/{uid}.js", f"/embed/{uid}/min.js", "/widgets/v1.js", "/widgets/v1.min.js"):
        r = await browser.client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.headers["cache-control"].startswith("public, max-age=")
        assert r.headers["x-content-type-options"] == "nosniff"
        again = await browser.client.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    full = (await browser.client.get(f"/embed/{uid}.js")).content
    small = (await browser.client.get(f"/embed/{uid}/min.js")).content
    assert len(small) < len(full) and b"tinytrack embed script" not in small
    for url in ("/embed/nosuchsite.js", "/embed/nosuchsite/min.js", f"/embed/{uid}.css"):
        r = await browser.client.get(url)
        assert r.status_code == 404 and r.json()["error"]


def test_core_script_stays_within_its_size_budget() -> None:
    """The core page-view tracker is at most 2 KB gzipped (widgets are a separate file)."""
    core = script("embed", minified=True).body
    assert len(gzip.compress(core, 9)) <= 2048
    assert b"tinylytics_kudos" not in core  # widget code is not in the core


# -- widget endpoints -------------------------------------------------------------------------


async def test_widget_endpoints_reveal_only_counts(browser: Browserish, clock: FakeClock) -> None:
    engine, site = browser.engine, browser.site
    rows = [
        tinytrack.HitIn(path="/a", country="US", visitor_id="v1"),
        tinytrack.HitIn(path="/a", country="US", visitor_id="v1"),
        tinytrack.HitIn(path="/b", country="DE", visitor_id="v2"),
        tinytrack.HitIn(path="/b", country="XX", visitor_id="v3"),
    ]
    await engine.record_hits(site.id, rows)
    await engine.create_kudo(site.id, tinytrack.KudoIn(path="/a"))
    base = f"/widgets/{site.uid}"
    r = await browser.client.get(f"{base}/hits", params=[("path", "/a"), ("path", "/c")])
    assert r.json() == {"unique": False, "hits": 4, "paths": {"/a": 2, "/c": 0}}
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["cache-control"] == "no-store"
    r = await browser.client.get(f"{base}/hits", params={"path": "/a", "unique": "true"})
    assert r.json() == {"unique": True, "hits": 3, "paths": {"/a": 1}}
    r = await browser.client.get(f"{base}/kudos", params=[("path", "/a"), ("path", "/b")])
    assert r.json() == {"kudos": {"/a": 1, "/b": 0}}
    r = await browser.client.get(f"{base}/countries")
    assert r.json() == {"countries": ["DE", "US"]}
    # A site that does not track unique hits shows totals even when asked for uniques.
    await engine.update_site(site.id, unique_hits=False)
    r = await browser.client.get(f"{base}/hits", params={"unique": "true"})
    assert r.json() == {"unique": False, "hits": 4, "paths": {}}


async def test_widget_endpoint_errors(browser: Browserish) -> None:
    r = await browser.client.get("/widgets/nosuchsite/hits")
    assert r.status_code == 404 and r.json() == {"error": "Site not found"}
    assert r.headers["access-control-allow-origin"] == "*"
    many = [("path", f"/p{i}") for i in range(51)]
    r = await browser.client.get(f"/widgets/{browser.site.uid}/kudos", params=many)
    assert r.status_code == 400 and "50" in r.json()["error"]
    r = await browser.client.get(f"/widgets/{browser.site.uid}/hits", params={"unique": "maybe"})
    assert r.status_code == 400 and r.json()["error"]


async def test_no_raw_ip_from_browser_requests_in_the_database(
    db_path: Path, clock: FakeClock
) -> None:
    address = "81.2.69.142"
    async with tinytrack.open(db_path, clock=clock) as engine:
        async for browser in make_browserish(engine, client=address):
            assert (await browser.view()).status_code == 201
            await browser.view({"event": "a.b", "url": PAGE}, kind="/events")
            await browser.client.get(f"/pixel/{browser.site.uid}.gif?path=/p")
    data = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())
    assert address.encode() not in data
