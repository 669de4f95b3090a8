"""Pure, cheap functions that turn a raw hit into stored fields: path, user agent, bot, country,
source. They run in the request, before the row is queued for the writer."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import iptocc
from ua_parser import parse as parse_user_agent

MAX_PATH = 2048

_COUNTRY = re.compile(r"[A-Z]{2}")
_SLASHES = re.compile(r"/{2,}")


def normalize_path(raw: str) -> tuple[str, str]:
    """Return (path, query). Accepts a bare path, a path with query/fragment, or a full URL.

    The path always starts with '/', repeated slashes collapse, query and fragment are split off
    (the query feeds source detection; it is never stored as part of the path).
    """
    text = raw.strip()
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        text = parts.path + ("?" + parts.query if parts.query else "")
    text, _, _fragment = text.partition("#")
    path, _, query = text.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    if "//" in path:
        path = _SLASHES.sub("/", path)
    return path[:MAX_PATH], query


class UaInfo(NamedTuple):
    browser_name: str | None
    platform_name: str | None
    is_mobile: bool
    bot: str | None  # why this is a bot, or None


# ua-parser's families, folded so that "Mobile Safari" and "Safari" count as one browser; the
# is_mobile flag keeps the distinction.
_BROWSER_NAMES = {
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
}
_PLATFORM_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})

# Automation that ua-parser reports as an ordinary browser, and HTTP libraries / tools. Matched
# case-insensitively against the whole string. Kept specific to avoid false positives such as
# the phone brand "CUBOT".
_BOT_PATTERN = re.compile(
    r"headless|phantomjs|slimerjs|selenium|webdriver|puppeteer|playwright|cypress|"
    r"lighthouse|pagespeed|pingdom|uptimerobot|statuscake|site24x7|"
    r"(?<!cu)bot[/;)_ -]|bot$|crawler|spider|scraper|\+https?://|"
    r"python-requests|python-urllib|python/|aiohttp|httpx|urllib|"
    r"^curl/|^wget/|libwww|lwp-|go-http-client|^java/|okhttp|apache-httpclient|axios|"
    r"node-fetch|undici|^got |scrapy|httpie|postmanruntime|insomnia|guzzlehttp|"
    r"^ruby|^php|rest-client|feedfetcher|facebookexternalhit|embedly|preview|"
    r"^mozilla/5\.0$|^-$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=8192)
def parse_ua(user_agent: str) -> UaInfo:
    """Browser, platform, mobile flag and bot verdict for a user-agent string (cached)."""
    parsed = parse_user_agent(user_agent)
    family = parsed.user_agent.family if parsed.user_agent else None
    os_family = parsed.os.family if parsed.os else None
    device_family = parsed.device.family if parsed.device else None
    bot: str | None = None
    if device_family == "Spider":
        bot = f"Bot user agent ({family or 'crawler'})"
    else:
        match = _BOT_PATTERN.search(user_agent)
        if match:
            bot = f"Bot user agent ({family or match.group(0).strip()})"
    browser = _BROWSER_NAMES.get(family, family) if family and family != "Other" else None
    platform = (
        _PLATFORM_NAMES.get(os_family, os_family) if os_family and os_family != "Other" else None
    )
    is_mobile = "Mobi" in user_agent or os_family in _MOBILE_OS
    return UaInfo(browser, platform, is_mobile, bot)


NO_UA = UaInfo(None, None, False, None)


def valid_country(code: str) -> bool:
    return _COUNTRY.fullmatch(code) is not None


def country_for(country: str | None, ip_address: str | None) -> str:
    """Country resolution order from the seed: given code -> local IP lookup -> 'XX'.

    The given code is validated by the caller. The lookup is iptocc's table inside the wheel:
    no network, ~0.2 µs. (The seed's IPinfo web fallback is deliberately not used: tinytrack
    never sends visitor addresses anywhere.)
    """
    if country:
        return country
    if ip_address:
        found = iptocc.country_code(ip_address.strip())
        if isinstance(found, str) and found:
            return found
    return "XX"


# Referrer hosts that people know by a short name; anything else is reported by host.
_KNOWN_SOURCES: tuple[tuple[str, str], ...] = (
    ("google.", "google"),
    ("bing.com", "bing"),
    ("duckduckgo.com", "duckduckgo"),
    ("search.yahoo.", "yahoo"),
    ("yahoo.com", "yahoo"),
    ("yandex.", "yandex"),
    ("baidu.com", "baidu"),
    ("ecosia.org", "ecosia"),
    ("search.brave.com", "brave"),
    ("kagi.com", "kagi"),
    ("news.ycombinator.com", "hackernews"),
    ("reddit.com", "reddit"),
    ("t.co", "twitter"),
    ("twitter.com", "twitter"),
    ("x.com", "twitter"),
    ("facebook.com", "facebook"),
    ("lnkd.in", "linkedin"),
    ("linkedin.com", "linkedin"),
    ("instagram.com", "instagram"),
    ("youtube.com", "youtube"),
    ("github.com", "github"),
    ("bsky.app", "bluesky"),
)


def host_of(url: str) -> str:
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _source_from_host(host: str) -> str:
    for needle, name in _KNOWN_SOURCES:
        if host == needle or host.endswith("." + needle) or host.startswith(needle):
            return name
    return host


def infer_source(
    *, source: str | None, query: str, referrer: str | None, site_host: str
) -> str | None:
    """``source`` override -> ``utm_source`` -> ``ref`` (from the page URL) -> referrer host.

    A referrer on the site's own host (or its www. twin) is internal and gives no source.
    """
    if source and source.strip():
        return source.strip()[:256]
    if query:
        try:
            params = parse_qs(query, max_num_fields=50)
        except ValueError:
            params = {}
        for name in ("utm_source", "ref", "source"):
            values = params.get(name)
            if values and values[0].strip():
                return values[0].strip()[:256]
    if referrer:
        return referrer_source(referrer, site_host)
    return None


@functools.lru_cache(maxsize=16_384)
def referrer_source(referrer: str, site_host: str) -> str | None:
    """Source named by a referrer (cached: the same referrers recur all day)."""
    host = host_of(referrer)
    if host and host != site_host:
        return _source_from_host(host)
    return None
