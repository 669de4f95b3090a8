"""Enrichment: paths, user agents and bots, countries, sources (pure functions, real ua-parser
and the real IP table)."""

from __future__ import annotations

import pytest

from tests.conftest import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_MAC
from tinytrack.engine import enrich


@pytest.mark.parametrize(
    ("raw", "path", "query"),
    [
        ("/pricing", "/pricing", ""),
        ("pricing", "/pricing", ""),
        ("  /a/b/  ", "/a/b/", ""),
        ("/a//b///c", "/a/b/c", ""),
        ("/p?utm_source=x&y=1#frag", "/p", "utm_source=x&y=1"),
        ("https://example.com/blog/post?ref=hn", "/blog/post", "ref=hn"),
        ("https://example.com", "/", ""),
        ("#top", "/", ""),
        ("/é/日本", "/é/日本", ""),
    ],
)
def test_normalize_path(raw: str, path: str, query: str) -> None:
    assert enrich.normalize_path(raw) == (path, query)


def test_normalize_path_caps_length() -> None:
    assert len(enrich.normalize_path("/" + "a" * 5000)[0]) == enrich.MAX_PATH


@pytest.mark.parametrize(
    ("ua", "browser", "platform", "mobile"),
    [
        (SAFARI_MAC, "Safari", "macOS", False),
        (FIREFOX_LINUX, "Firefox", "Linux", False),
        (CHROME_ANDROID, "Chrome", "Android", True),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            True,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge",
            "Windows",
            False,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            True,
        ),
    ],
)
def test_real_browsers_are_parsed_and_not_bots(
    ua: str, browser: str, platform: str, mobile: bool
) -> None:
    info = enrich.parse_ua(ua)
    assert (info.browser_name, info.platform_name, info.is_mobile) == (browser, platform, mobile)
    assert info.bot is None


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse",
        "python-requests/2.31.0",
        "Python-urllib/3.11",
        "python-httpx/0.27.0",
        "aiohttp/3.9",
        "curl/8.5.0",
        "Wget/1.21",
        "Go-http-client/2.0",
        "Java/17.0.2",
        "okhttp/4.12.0",
        "axios/1.6.7",
        "node-fetch/1.0",
        "Scrapy/2.11 (+https://scrapy.org)",
        "PostmanRuntime/7.36.0",
        "facebookexternalhit/1.1",
        "Mozilla/5.0",
    ],
)
def test_bots_headless_browsers_and_http_libraries_are_caught(ua: str) -> None:
    assert enrich.parse_ua(ua).bot is not None


def test_country_resolution_order() -> None:
    assert enrich.country_for("PL", "8.8.8.8") == "PL"
    assert enrich.country_for(None, "8.8.8.8") == "US"
    assert enrich.country_for(None, "2a00:1450:4001::1") == "IE"
    assert enrich.country_for(None, "999.999.999.999") == "XX"
    assert enrich.country_for(None, "127.0.0.1") == "XX"
    assert enrich.country_for(None, None) == "XX"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"source": "newsletter", "query": "utm_source=x", "referrer": None}, "newsletter"),
        ({"source": None, "query": "utm_source=mastodon&x=1", "referrer": None}, "mastodon"),
        ({"source": None, "query": "ref=producthunt", "referrer": None}, "producthunt"),
        ({"source": None, "query": "", "referrer": "https://www.google.com/"}, "google"),
        ({"source": None, "query": "", "referrer": "https://google.co.uk/search"}, "google"),
        ({"source": None, "query": "", "referrer": "https://news.ycombinator.com/"}, "hackernews"),
        ({"source": None, "query": "", "referrer": "https://t.co/abc"}, "twitter"),
        ({"source": None, "query": "", "referrer": "https://www.someblog.net/p"}, "someblog.net"),
        ({"source": None, "query": "", "referrer": "https://example.com/other"}, None),
        ({"source": None, "query": "", "referrer": "https://www.example.com/x"}, None),
        ({"source": None, "query": "", "referrer": "not a url"}, "not a url"),
        ({"source": None, "query": "", "referrer": None}, None),
        ({"source": "  ", "query": "", "referrer": None}, None),
    ],
)
def test_source_inference(kwargs: dict[str, str | None], expected: str | None) -> None:
    assert (
        enrich.infer_source(
            source=kwargs["source"],
            query=kwargs["query"] or "",
            referrer=kwargs["referrer"],
            site_host="example.com",
        )
        == expected
    )
