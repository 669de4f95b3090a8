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


class HitIn(Struct, kw_only=True):
    """One page view, as POSTed to ``/api/v1/sites/{id}/hits`` (every field as in the seed).

    ``path`` is optional here only so that a missing path gets the documented message
    ("Path can't be blank") instead of a decoder error.
    """

    path: Url | None = None
    url: Url | None = None
    referrer: Url | None = None
    user_agent: UserAgent | None = None
    visitor_id: ShortText | None = None
    ip_address: IpText | None = None
    country: CountryText | None = None
    source: ShortText | None = None


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


# ---------------------------------------------------------------------------------------------
# Write results


class HitCreated(Struct, kw_only=True):
    status: Literal["created"]
    hit: CreatedHit


class Ignored(Struct, kw_only=True):
    status: Literal["ignored"]
    reason: str


HitResult = HitCreated | Ignored


class BatchRowResult(Struct, kw_only=True, omit_defaults=True):
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
