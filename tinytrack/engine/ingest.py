"""Validate and enrich one incoming hit, event or kudo into the row to store (pure: no I/O, no
clock)."""

from __future__ import annotations

import fnmatch
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import msgspec

from tinytrack.engine import clock, enrich, privacy
from tinytrack.engine.writer import EventRow, HitRow
from tinytrack.errors import ValidationFailed
from tinytrack.models import EventIn, HitIn, Ignored, KudoIn


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What ingestion needs to know about a site (includes the secret: never serialised)."""

    id: int
    uid: str
    url: str
    label: str | None
    host: str
    timezone: str
    active: bool
    unique_hits: bool
    ignore_paths: tuple[str, ...]
    secret: bytes

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")


PATH_BLANK = "Path can't be blank"
BAD_COUNTRY = "Country must be a 2-letter uppercase code (for example US, PL, XX)"
IGNORED_PATH = "Path matches ignore rule"
SITE_INACTIVE = "Site is not active"
EVENT_BLANK = "Event can't be blank"
EVENT_FORMAT = "Event must be 'category.action' format (2+ dot-separated segments)"
EVENT_IGNORED = "Event matched ignore rules"
BAD_REVENUE = "Revenue must be a decimal number with at most 6 decimal places"
MAX_REVENUE = Decimal(10) ** 12
UID_BLANK = "Uid can't be blank"


def validate(hit: HitIn) -> None:
    errors: list[str] = []
    if hit.path is None or not hit.path.strip():
        errors.append(PATH_BLANK)
    if hit.country is not None and not enrich.valid_country(hit.country):
        errors.append(BAD_COUNTRY)
    if errors:
        raise ValidationFailed(errors)


def valid_event_name(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and all(part.strip() for part in parts)


def revenue_micros(value: float | str) -> int:
    """Revenue as an exact integer number of millionths; ``ValueError`` when unusable."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(BAD_REVENUE) from None
    if not amount.is_finite() or abs(amount) >= MAX_REVENUE:
        raise ValueError(BAD_REVENUE)
    micros = amount * 1_000_000
    if micros != micros.to_integral_value():
        raise ValueError(BAD_REVENUE)
    return int(micros)


def validate_event(event: EventIn) -> None:
    errors: list[str] = []
    name = event.event.strip() if event.event else ""
    if not name:
        errors.append(EVENT_BLANK)
    elif not valid_event_name(name):
        errors.append(EVENT_FORMAT)
    if event.country is not None and not enrich.valid_country(event.country):
        errors.append(BAD_COUNTRY)
    if event.revenue is not None:
        try:
            revenue_micros(event.revenue)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValidationFailed(errors)


def ignored_path(site: SiteInfo, path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, rule) for rule in site.ignore_paths)


class _Context(NamedTuple):
    """What hits and events derive alike from the request's fields."""

    ua: str | None
    info: enrich.UaInfo
    url: str | None
    referrer: str | None
    source: str | None
    country: str
    who: str  # the visitor identity fed to the hashes (holds the IP: never stored)
    visitor_hash: str


def _context(
    site: SiteInfo, item: HitIn | EventIn, query: str, salt: bytes, reader: str | None = None
) -> _Context | Ignored:
    """User agent (bots are ``Ignored``), URL, referrer, source, country and visitor identity;
    ``query`` is the page's query string from the path, if any (it feeds source detection).
    ``reader`` names a feed reader or mail client (pixel hits): it is stored as the browser and
    the user agent is not treated as a bot."""
    ua = item.user_agent.strip() if item.user_agent else None
    info = enrich.parse_ua(ua) if ua else enrich.NO_UA
    if reader is not None:
        info = info._replace(browser_name=reader, bot=None)
    if info.bot:
        return Ignored(status="ignored", reason=info.bot)
    url = item.url.strip() if item.url and item.url.strip() else None
    if not query and url and "?" in url:
        query = url.partition("?")[2].partition("#")[0]
    referrer = item.referrer.strip() if item.referrer and item.referrer.strip() else None
    source = enrich.infer_source(
        source=item.source, query=query, referrer=referrer, site_host=site.host
    )
    if item.visitor_id and item.visitor_id.strip():
        who = "v:" + item.visitor_id.strip()
        visitor_hash = privacy.stable_visitor_hash(site.secret, site.id, who)
    else:
        who = privacy.identity(item.ip_address, ua)
        visitor_hash = privacy.visitor_hash(salt, site.id, who)
    country = enrich.country_for(item.country, item.ip_address)
    return _Context(ua, info, url, referrer, source, country, who, visitor_hash)


def prepare_hit(
    site: SiteInfo, hit: HitIn, *, now: int, salt: bytes, reader: str | None = None
) -> HitRow | Ignored:
    """Everything done in the request: raises ``ValidationFailed``; returns ``Ignored`` for a
    bot, an ignored path or an inactive site; otherwise the row to store. The IP address goes
    into the hashes and the country lookup and nowhere else."""
    validate(hit)
    assert hit.path is not None
    if not site.active:
        return Ignored(status="ignored", reason=SITE_INACTIVE)
    path, query = enrich.normalize_path(hit.path)
    if site.ignore_paths and ignored_path(site, path):
        return Ignored(status="ignored", reason=IGNORED_PATH)
    ctx = _context(site, hit, query, salt, reader)
    if isinstance(ctx, Ignored):
        return ctx
    # Positional: keyword construction of a NamedTuple costs ~1 µs per hit.
    return HitRow(
        site.id,
        now,
        path,
        ctx.url,
        ctx.referrer,
        ctx.source,
        ctx.country,
        ctx.info.browser_name,
        ctx.info.platform_name,
        int(ctx.info.is_mobile),
        ctx.ua,
        privacy.unique_hash(salt, site.id, path, ctx.who),
        ctx.visitor_hash,
        now // clock.SECONDS_PER_DAY,
        clock.local_day(site.timezone, now),
    )


def prepare_event(site: SiteInfo, event: EventIn, *, now: int, salt: bytes) -> EventRow | Ignored:
    """Like ``prepare_hit`` for an event: same enrichment, bot filter and hashing; the path is
    optional; an ignored path answers the seed's "Event matched ignore rules"."""
    validate_event(event)
    assert event.event is not None
    if not site.active:
        return Ignored(status="ignored", reason=SITE_INACTIVE)
    path: str | None = None
    query = ""
    if event.path is not None and event.path.strip():
        path, query = enrich.normalize_path(event.path)
        if site.ignore_paths and ignored_path(site, path):
            return Ignored(status="ignored", reason=EVENT_IGNORED)
    ctx = _context(site, event, query, salt)
    if isinstance(ctx, Ignored):
        return ctx
    name = event.event.strip()
    revenue = revenue_micros(event.revenue) if event.revenue is not None else None
    properties = msgspec.json.encode(event.properties).decode() if event.properties else None
    return EventRow(
        site.id,
        now,
        name,
        event.value,
        path,
        ctx.url,
        ctx.referrer,
        ctx.source,
        ctx.country,
        ctx.info.browser_name,
        ctx.info.platform_name,
        int(ctx.info.is_mobile),
        ctx.ua,
        privacy.event_unique_hash(salt, site.id, name, ctx.who),
        ctx.visitor_hash,
        properties,
        revenue,
        event.currency if revenue is not None else None,
        event.order_id.strip() if event.order_id and event.order_id.strip() else None,
        now // clock.SECONDS_PER_DAY,
        clock.local_day(site.timezone, now),
    )


def prepare_kudo(site: SiteInfo, kudo: KudoIn) -> tuple[str, str] | Ignored:
    """(path, uid) of a valid kudo, ``Ignored`` for an ignored path or inactive site."""
    errors: list[str] = []
    if kudo.path is None or not kudo.path.strip():
        errors.append(PATH_BLANK)
    if kudo.custom_uid is not None and not kudo.custom_uid.strip():
        errors.append(UID_BLANK)
    if errors:
        raise ValidationFailed(errors)
    assert kudo.path is not None
    if not site.active:
        return Ignored(status="ignored", reason=SITE_INACTIVE)
    path, _query = enrich.normalize_path(kudo.path)
    if site.ignore_paths and ignored_path(site, path):
        return Ignored(status="ignored", reason=IGNORED_PATH)
    uid = kudo.custom_uid.strip() if kudo.custom_uid else new_kudo_uid()
    return path, uid


def new_kudo_uid() -> str:
    return secrets.token_urlsafe(12)
