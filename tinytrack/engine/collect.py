"""Rules for what browsers send (the embed script's collector and the tracking pixel): which
pages a site accepts, what of a page's URL and referrer is kept, and which pixel fetches come
from feed readers or mail clients. Pure functions: no I/O."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tinytrack.engine import enrich
from tinytrack.engine.ingest import SITE_INACTIVE, SiteInfo
from tinytrack.errors import NotAllowed

FOREIGN_PAGE = "Page is not on this site's domain"
UNKNOWN_PAGE = "Page URL or Origin header required"

# Query parameters that say where a visit came from; every other parameter of a page URL is
# dropped before storing (query strings carry search terms, tokens, e-mail addresses...).
CAMPAIGN_PARAMS = frozenset(
    {"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "ref", "source"}
)


def check_page(site: SiteInfo, page_url: str | None, origin: str | None) -> None:
    """Raise ``NotAllowed`` unless the site is active and both the page URL and the browser's
    ``Origin`` (each when present; at least one must be) are on the site's host or its
    ``www.`` twin. The port is not compared: a site is its domain."""
    if not site.active:
        raise NotAllowed(SITE_INACTIVE)
    seen = [value for value in (page_url, origin) if value and value != "null"]
    if not seen:
        raise NotAllowed(UNKNOWN_PAGE)
    for value in seen:
        if enrich.host_of(value).lower() != site.host.lower():
            raise NotAllowed(FOREIGN_PAGE)


def page_url(raw: str | None) -> str | None:
    """The page URL as stored: scheme, host, path and campaign parameters only."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw.strip())
        kept = [(k, v) for k, v in parse_qsl(parts.query) if k in CAMPAIGN_PARAMS]
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(kept), ""))


def referrer_url(raw: str | None) -> str | None:
    """A referrer as stored: without its query string and fragment (another site's query is
    none of our business: it may hold search terms or session ids)."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class Reader(NamedTuple):
    """A feed reader or mail client recognised from a pixel request's user agent."""

    name: str  # stored as the hit's browser_name
    source: str  # "rss" or "email"


_READERS: tuple[tuple[re.Pattern[str], Reader], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), Reader(name, source))
    for pattern, name, source in (
        (r"feedly", "Feedly", "rss"),
        (r"inoreader", "Inoreader", "rss"),
        (r"newsblur", "NewsBlur", "rss"),
        (r"theoldreader|the old reader", "The Old Reader", "rss"),
        (r"feedbin", "Feedbin", "rss"),
        (r"netnewswire", "NetNewsWire", "rss"),
        (r"miniflux", "Miniflux", "rss"),
        (r"freshrss", "FreshRSS", "rss"),
        (r"tiny tiny rss|tt-rss", "Tiny Tiny RSS", "rss"),
        (r"reeder", "Reeder", "rss"),
        (r"bazqux", "BazQux", "rss"),
        (r"feedspot", "Feedspot", "rss"),
        (r"feeder\.co|feeder/", "Feeder", "rss"),
        (r"newsify", "Newsify", "rss"),
        (r"readwise", "Readwise Reader", "rss"),
        (r"feedburner", "FeedBurner", "rss"),
        (r"googleimageproxy", "Gmail", "email"),
        (r"yahoomailproxy", "Yahoo Mail", "email"),
        (r"ms-office|microsoft outlook|outlook-", "Outlook", "email"),
        (r"thunderbird", "Thunderbird", "email"),
    )
)


def feed_reader(user_agent: str | None) -> Reader | None:
    """The feed reader or mail client behind a pixel fetch, if it is a known one. These fetch
    on behalf of people, so their hits count even though many of them look like bots."""
    if not user_agent:
        return None
    for pattern, reader in _READERS:
        if pattern.search(user_agent):
            return reader
    return None
