"""Wire types shared by the engine, the HTTP API and the library (msgspec Structs).

Input structs carry size limits so a hostile payload is rejected while decoding, before any work is
done. Output structs mirror the JSON shapes of the Tinylytics API documentation (seed 004) key for
key; the server serialises exactly what the engine returns, so library and HTTP results are equal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Url = Annotated[str, Meta(max_length=2048)]
ShortText = Annotated[str, Meta(max_length=256)]
UserAgent = Annotated[str, Meta(max_length=1024)]
IpText = Annotated[str, Meta(max_length=64)]
CountryText = Annotated[str, Meta(max_length=8)]

AccessType = Literal["read_only", "full_access"]
TimeZoneMode = Literal["utc", "user"]
GroupBy = Literal["path", "country", "referrer", "browser_name", "platform_name", "source"]
GROUP_BY_VALUES: tuple[GroupBy, ...] = (
    "path",
    "country",
    "referrer",
    "browser_name",
    "platform_name",
    "source",
)


# ---------------------------------------------------------------------------------------------
# Inputs


class HitIn(Struct, kw_only=True, gc=False):
    """One page view, as POSTed to ``/api/v1/sites/{id}/hits`` (every field as in the seed).

    ``path`` is optional here only so that a missing path gets the documented message
    ("Path can't be blank") instead of a decoder error. ``gc=False``: only strings inside, so
    no reference cycle is possible, and a 1,000-hit batch no longer feeds the garbage
    collector 1,000 objects to count and walk.
    """

    path: Url | None = None
    url: Url | None = None
    referrer: Url | None = None
    user_agent: UserAgent | None = None
    visitor_id: ShortText | None = None
    ip_address: IpText | None = None
    country: CountryText | None = None
    source: ShortText | None = None


EventValue = Annotated[str, Meta(max_length=1024)]
PropertyKey = Annotated[str, Meta(min_length=1, max_length=64)]
PropertyValue = Annotated[str, Meta(max_length=1024)] | int | float | bool | None
Properties = Annotated[dict[PropertyKey, PropertyValue], Meta(max_length=50)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]


class EventIn(Struct, kw_only=True):
    """One event, as POSTed to ``/api/v1/sites/{id}/events`` (fields as in the seed).

    ``properties``, ``revenue``, ``currency`` and ``order_id`` are tinytrack extensions used by
    the other tools' formats: flat properties (no nesting), revenue as a number or decimal
    string with a 3-letter currency, and an order id recorded at most once per site.
    """

    event: ShortText | None = None
    value: EventValue | None = None
    path: Url | None = None
    url: Url | None = None
    referrer: Url | None = None
    user_agent: UserAgent | None = None
    visitor_id: ShortText | None = None
    ip_address: IpText | None = None
    country: CountryText | None = None
    source: ShortText | None = None
    properties: Properties | None = None
    revenue: float | Annotated[str, Meta(max_length=32)] | None = None
    currency: Currency | None = None
    order_id: ShortText | None = None


class KudoIn(Struct, kw_only=True):
    """One kudo, as POSTed to ``/api/v1/sites/{id}/kudos``."""

    path: Url | None = None
    custom_uid: Annotated[str, Meta(max_length=128)] | None = None


class PageViewIn(Struct, kw_only=True):
    """A page view as the embed script sends it to ``/collector/{site_uid}``. The browser's
    user agent, address and ``Origin`` come from the request, never from the body."""

    path: Url | None = None
    url: Url | None = None
    referrer: Url | None = None


class BeaconEventIn(Struct, kw_only=True):
    """A clicked ``data-tinylytics-event`` element, sent to ``/collector/{site_uid}/events``."""

    event: ShortText | None = None
    value: EventValue | None = None
    path: Url | None = None
    url: Url | None = None


class BeaconKudoIn(Struct, kw_only=True):
    """A kudos button press, sent to ``/collector/{site_uid}/kudos``."""

    path: Url | None = None
    url: Url | None = None


# ---------------------------------------------------------------------------------------------
# Records


class Site(Struct, kw_only=True):
    id: int
    uid: str
    url: str
    label: str | None
    timezone: str
    public: bool
    active: bool
    unique_hits: bool
    ignore_paths: list[str]
    lifetime_hits: int
    lifetime_unique_hits: int
    lifetime_kudos: int
    created_at: str
    updated_at: str


class ApiKey(Struct, kw_only=True):
    id: int
    name: str
    access_type: AccessType
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class NewApiKey(Struct, kw_only=True):
    """A freshly created key. ``token`` is shown this once; only its hash is stored."""

    key: ApiKey
    token: str


class Hit(Struct, kw_only=True):
    id: int
    url: str
    path: str
    referrer: str | None
    country: str
    browser_name: str | None
    platform_name: str | None
    is_mobile: bool
    source: str | None
    created_at: str


class CreatedHit(Struct, kw_only=True):
    id: int
    url: str
    path: str
    referrer: str | None
    country: str
    browser_name: str | None
    platform_name: str | None
    is_mobile: bool
    source: str | None
    unique_hash: str
    visitor_hash: str
    created_at: str


class CreatedEvent(Struct, kw_only=True):
    id: int
    event: str
    value: str | None
    url: str | None
    path: str | None
    referrer: str | None
    country: str
    source: str | None
    unique_hash: str
    visitor_hash: str
    created_at: str


class Event(Struct, kw_only=True):
    """An event as listed by ``GET /sites/{id}/events`` (no hashes, as for hits)."""

    id: int
    event: str
    value: str | None
    url: str | None
    path: str | None
    referrer: str | None
    country: str
    browser_name: str | None
    platform_name: str | None
    is_mobile: bool
    source: str | None
    properties: dict[str, Any] | None
    revenue: float | None
    currency: str | None
    order_id: str | None
    created_at: str


class Kudo(Struct, kw_only=True):
    id: int
    uid: str
    path: str
    created_at: str


# ---------------------------------------------------------------------------------------------
# Write results


class HitCreated(Struct, kw_only=True):
    status: Literal["created"]
    hit: CreatedHit


class Ignored(Struct, kw_only=True):
    status: Literal["ignored"]
    reason: str


HitResult = HitCreated | Ignored


class EventCreated(Struct, kw_only=True):
    status: Literal["created"]
    event: CreatedEvent


EventResult = EventCreated | Ignored


class KudoCreated(Struct, kw_only=True):
    status: Literal["created"]
    kudo: Kudo


KudoResult = KudoCreated | Ignored


class KudoDeleted(Struct, kw_only=True):
    status: Literal["deleted"]
    uid: str


class BatchRowResult(Struct, kw_only=True, omit_defaults=True, gc=False):
    # gc=False as for HitIn: a batch answer holds 1,000 of these, and they hold no cycles.
    index: int
    status: Literal["created", "ignored", "error"]
    id: int | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    errors: list[str] | UnsetType = UNSET


class BatchResult(Struct, kw_only=True):
    created_count: int
    ignored_count: int
    error_count: int
    results: list[BatchRowResult]


# ---------------------------------------------------------------------------------------------
# Queries


class Pagination(Struct, kw_only=True):
    current_page: int
    per_page: int
    total_count: int
    total_pages: int


class HitFilters(Struct, kw_only=True, omit_defaults=True):
    start_date: str
    end_date: str
    time_zone: TimeZoneMode
    country: str | None
    path: str | None
    referrer: str | None
    grouped: bool
    group_by: GroupBy | UnsetType = UNSET


class HitsPage(Struct, kw_only=True):
    hits: list[Hit]
    pagination: Pagination
    filters: HitFilters


class GroupedHitsPage(Struct, kw_only=True):
    # Rows are dicts because the key of the grouped value changes with group_by
    # ({"path": ..., "views": ...} or {"country": ..., "hit_count": ...}), as in the seed.
    grouped_hits: list[dict[str, Any]]
    pagination: Pagination
    filters: HitFilters


EventGroupBy = Literal["event", "value", "path"]
EVENT_GROUP_BY_VALUES: tuple[EventGroupBy, ...] = ("event", "value", "path")


class EventFilters(Struct, kw_only=True, omit_defaults=True):
    start_date: str
    end_date: str
    time_zone: TimeZoneMode
    event: str | None
    value: str | None
    path: str | None
    grouped: bool
    group_by: EventGroupBy | UnsetType = UNSET


class EventsPage(Struct, kw_only=True):
    events: list[Event]
    pagination: Pagination
    filters: EventFilters


class GroupedEventsPage(Struct, kw_only=True):
    # {"event": ..., "event_count": n, "unique_count": u}; the first key follows group_by.
    grouped_events: list[dict[str, Any]]
    pagination: Pagination
    filters: EventFilters


class KudoFilters(Struct, kw_only=True):
    start_date: str
    end_date: str
    time_zone: TimeZoneMode
    path: str | None
    uid: str | None


class KudosPage(Struct, kw_only=True):
    kudos: list[Kudo]
    pagination: Pagination
    filters: KudoFilters


class LeaderboardRow(Struct, kw_only=True):
    path: str
    total_hits: int
    unique_hits: int
    percentage: float


class SiteRef(Struct, kw_only=True):
    id: int
    uid: str
    url: str
    label: str | None


class CacheInfo(Struct, kw_only=True):
    """The seed's leaderboard is cached for an hour; tinytrack's is computed from rollups that
    every read first brings up to date, so it is never stale: ``cached_at`` and
    ``expires_at`` are the moment of the answer, and ``always_fresh`` says so."""

    cached_at: str
    expires_at: str
    always_fresh: bool
    computed_from: str


class LeaderboardFilters(Struct, kw_only=True):
    path: str | None


class LeaderboardPage(Struct, kw_only=True):
    leaderboard: list[LeaderboardRow]
    site: SiteRef
    pagination: Pagination
    cache_info: CacheInfo
    filters: LeaderboardFilters


class JourneyPage(Struct, kw_only=True):
    path: str


class UserJourney(Struct, kw_only=True):
    visitor_hash: str
    page_count: int
    first_hit: str
    last_hit: str
    duration_minutes: int
    pages: list[JourneyPage]
    entry_page: str
    exit_page: str
    session_duration: int
    referrer: str | None
    country: str | None
    browser: str | None
    # The visitor's properties (other tools' formats, e.g. Woopra cv_*); left out when none.
    properties: dict[str, Any] | UnsetType = UNSET


class JourneySummary(Struct, kw_only=True):
    total_visitors: int
    multi_page_visitors: int
    single_page_visitors: int
    bounce_rate: float


class PathVisitors(Struct, kw_only=True):
    path: str
    visitors: int


class JourneyInsights(Struct, kw_only=True):
    top_entry_pages: list[PathVisitors]
    top_exit_pages: list[PathVisitors]


class JourneyFilters(Struct, kw_only=True):
    start_date: str
    end_date: str
    time_zone: TimeZoneMode


class UserJourneysPage(Struct, kw_only=True):
    user_journeys: list[UserJourney]
    summary: JourneySummary
    insights: JourneyInsights
    pagination: Pagination
    filters: JourneyFilters


class ApiKeyInfo(Struct, kw_only=True):
    name: str
    access_type: AccessType
    last_used_at: str | None


class Me(Struct, kw_only=True):
    id: int
    email: str | None
    is_subscribed: bool
    created_at: str
    api_key: ApiKeyInfo


def to_builtins(value: Any) -> Any:
    """Plain JSON-ready Python objects (what the HTTP API would send) for any struct above."""
    return msgspec.to_builtins(value)


# ---------------------------------------------------------------------------------------------
# Browser widgets: each answer holds only what its widget shows.


class KudoGiven(Struct, kw_only=True):
    """Answer to a kudos button press: the kudo's uid (remembered by the browser) and the
    path's new count."""

    uid: str
    path: str
    count: int


class WidgetHits(Struct, kw_only=True):
    """The hit counter: the site's lifetime hits (unique hits when asked for and the site
    tracks them) and the same for each requested path."""

    unique: bool
    hits: int
    paths: dict[str, int]


class WidgetKudos(Struct, kw_only=True):
    kudos: dict[str, int]


class WidgetCountries(Struct, kw_only=True):
    """Country codes that have visited, alphabetical (unknown ``XX`` left out)."""

    countries: list[str]


class Health(Struct, kw_only=True, omit_defaults=True):
    """``GET /healthz``: can the database take a write right now?"""

    status: Literal["ok", "error"]
    database: Literal["writable", "not writable"]
    version: str
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# Dashboard

Period = Literal["24h", "7d", "30d", "12m", "custom"]


class TrafficPoint(Struct, kw_only=True):
    label: str  # "2026-02-14T10:00" (hour), "2026-02-14" (day) or "2026-02" (month)
    hits: int
    unique_hits: int


class Traffic(Struct, kw_only=True):
    """Hits over time in the site's time zone, with the totals of the period before."""

    period: Period
    bucket: Literal["hour", "day", "month"]
    start: str
    end: str
    points: list[TrafficPoint]
    hits: int
    unique_hits: int
    previous_hits: int
    previous_unique_hits: int


# ---------------------------------------------------------------------------------------------
# CSV import

ExportKind = Literal["hits", "events", "kudos", "visitors"]


class RejectedRow(Struct, kw_only=True):
    """A row ``import_csv`` refused: the file line it starts on, and why."""

    line: int
    reason: str


class ImportReport(Struct, kw_only=True):
    """What ``import_csv`` did: data rows read, stored, skipped as already present, and
    rejected (``rejected_count``; ``rejected`` lists the first 1,000 with line numbers and
    reasons). ``rows == imported + duplicates + rejected_count``."""

    kind: ExportKind
    rows: int
    imported: int
    duplicates: int
    rejected_count: int
    rejected: list[RejectedRow]


# ---------------------------------------------------------------------------------------------
# Other tools' tracking formats (tinytrack.server.compat) all go through ``Engine.track``.

TrackKind = Literal["pageview", "event", "goal", "visit", "ping"]
GoalName = Annotated[str, Meta(min_length=1, max_length=200)]
# An order's line items are one property each (Tracify ITEMn / AMTn / QTYn): room for ~60.
TrackProperties = Annotated[dict[PropertyKey, PropertyValue], Meta(max_length=200)]


class TrackIn(Struct, kw_only=True):
    """One thing a visitor did, as another tool's format says it (see ``Engine.track``).

    ``kind``: ``pageview`` (a hit: ``path`` required), ``event`` (``event`` required),
    ``goal`` (a completion of ``goal``: a goal's number, or a name, created when new; optional
    ``revenue``; counted once per session, revenue may be added later), ``visit`` (only
    visitor / session properties) or ``ping`` (keeps the visitor's open session alive).

    Who: ``session_id`` (an existing session: its visitor), else ``visitor_id`` (hashed with the
    site's secret), else ``ip_address`` + ``user_agent`` (hashed with the daily salt). When:
    ``at`` (Unix seconds; default now; a future time counts as now). ``session_timeout``
    (seconds) keeps sessions: the visitor's session covering ``at`` goes on, else one starts.
    ``referrer_once``: the referrer is kept only on a session's first action.
    """

    kind: TrackKind = "event"
    event: ShortText | None = None
    value: EventValue | None = None
    path: Url | None = None
    url: Url | None = None
    referrer: Url | None = None
    user_agent: UserAgent | None = None
    ip_address: IpText | None = None
    country: CountryText | None = None
    source: ShortText | None = None
    properties: TrackProperties | None = None
    revenue: float | Annotated[str, Meta(max_length=32)] | None = None
    currency: Currency | None = None
    order_id: ShortText | None = None
    goal: GoalName | None = None
    visitor_id: ShortText | None = None
    session_id: Annotated[int, Meta(ge=1)] | None = None
    at: Annotated[int, Meta(ge=0)] | None = None
    session_timeout: Annotated[int, Meta(ge=1)] | None = None
    referrer_once: bool = False
    visitor_properties: Properties | None = None
    session_properties: Properties | None = None


class Tracked(Struct, kw_only=True, omit_defaults=True):
    """What ``Engine.track`` did.

    ``created``: a hit, event or goal completion was stored (``id`` is its hit / event id);
    ``updated``: revenue was added to a goal completion that had none, or (``visit``,
    ``ping``) properties or the session were updated; ``duplicate``: the order id or the
    session's goal completion was already recorded (``id`` = the first); ``ignored``: bot,
    ignore rule, inactive site, or a ping with no open session (``reason`` says which).
    """

    status: Literal["created", "updated", "duplicate", "ignored"]
    kind: TrackKind
    id: int | None = None
    reason: str | None = None
    session_id: int | None = None
    visitor_hash: str | None = None
    goal_id: int | None = None


class RevenueTotal(Struct, kw_only=True):
    """Revenue of a group of events in one currency (``None``: sent without a currency)."""

    currency: str | None
    amount: float
    count: int


class Goal(Struct, kw_only=True):
    """A goal and its completions (events named ``event``) in the chosen range."""

    id: int
    name: str
    event: str
    completions: int
    revenue: list[RevenueTotal]
    created_at: str


class GoalsPage(Struct, kw_only=True):
    goals: list[Goal]


class SessionRecord(Struct, kw_only=True):
    """A visitor's session: ``actions`` counts its page views and events; it is over once
    ``timeout`` seconds pass after ``last_seen_at`` with nothing new (``active`` says whether
    that moment is still ahead)."""

    id: int
    visitor_hash: str
    started_at: str
    last_seen_at: str
    timeout: int
    active: bool
    actions: int
    referrer: str | None
    properties: dict[str, Any] | None
    visitor_properties: dict[str, Any] | None


class SessionFilters(Struct, kw_only=True):
    start_date: str
    end_date: str
    time_zone: TimeZoneMode
    visitor_hash: str | None


class SessionsPage(Struct, kw_only=True):
    sessions: list[SessionRecord]
    pagination: Pagination
    filters: SessionFilters
