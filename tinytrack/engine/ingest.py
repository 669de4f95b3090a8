"""Validate and enrich one incoming hit into a ``HitRow`` (pure: no I/O, no clock)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tinytrack.engine import clock, enrich, privacy
from tinytrack.engine.writer import HitRow
from tinytrack.errors import ValidationFailed
from tinytrack.models import HitIn, Ignored


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What ingestion needs to know about a site (includes the secret: never serialised)."""

    id: int
    uid: str
    url: str
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


def validate(hit: HitIn) -> None:
    errors: list[str] = []
    if hit.path is None or not hit.path.strip():
        errors.append(PATH_BLANK)
    if hit.country is not None and not enrich.valid_country(hit.country):
        errors.append(BAD_COUNTRY)
    if errors:
        raise ValidationFailed(errors)


def ignored_path(site: SiteInfo, path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, rule) for rule in site.ignore_paths)


def prepare_hit(site: SiteInfo, hit: HitIn, *, now: int, salt: bytes) -> HitRow | Ignored:
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
    ua = hit.user_agent.strip() if hit.user_agent else None
    info = enrich.parse_ua(ua) if ua else enrich.NO_UA
    if info.bot:
        return Ignored(status="ignored", reason=info.bot)
    url = hit.url.strip() if hit.url and hit.url.strip() else None
    if not query and url and "?" in url:
        query = url.partition("?")[2].partition("#")[0]
    referrer = hit.referrer.strip() if hit.referrer and hit.referrer.strip() else None
    source = enrich.infer_source(
        source=hit.source, query=query, referrer=referrer, site_host=site.host
    )
    if hit.visitor_id and hit.visitor_id.strip():
        who = "v:" + hit.visitor_id.strip()
        visitor_hash = privacy.stable_visitor_hash(site.secret, site.id, who)
    else:
        who = privacy.identity(hit.ip_address, ua)
        visitor_hash = privacy.visitor_hash(salt, site.id, who)
    # Positional: keyword construction of a NamedTuple costs ~1 µs per hit.
    return HitRow(
        site.id,
        now,
        path,
        url,
        referrer,
        source,
        enrich.country_for(hit.country, hit.ip_address),
        info.browser_name,
        info.platform_name,
        int(info.is_mobile),
        ua,
        privacy.unique_hash(salt, site.id, path, who),
        visitor_hash,
        now // clock.SECONDS_PER_DAY,
        clock.local_day(site.timezone, now),
    )
