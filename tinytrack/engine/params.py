"""Parsing of query-string parameters (strings in, typed values out, ``InvalidParameter`` on
anything malformed). Shared by the HTTP API and the CLI so both reject the same input."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from tinytrack.engine import enrich
from tinytrack.errors import InvalidParameter
from tinytrack.models import EVENT_GROUP_BY_VALUES, GROUP_BY_VALUES

MAX_PER_PAGE = 1000
MAX_RANGE_DAYS = 730
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def parse_date(name: str, value: str) -> dt.date:
    if not _DATE.fullmatch(value):
        raise InvalidParameter(f"{name} must be a date in YYYY-MM-DD format")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidParameter(f"{name} is not a valid date: {value}") from exc


def parse_int(name: str, value: str, *, minimum: int, maximum: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidParameter(f"{name} must be a whole number between {minimum} and {maximum}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise InvalidParameter(f"{name} must be between {minimum} and {maximum}")
    return number


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidParameter(f"{name} must be true or false")


def _text(name: str, value: str, limit: int = 2048) -> str:
    if len(value) > limit:
        raise InvalidParameter(f"{name} is too long (max {limit} characters)")
    return value


def parse_hits_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.hits`` from query-string values. Unknown keys are ignored."""
    out = _range_params(params)
    if (v := params.get("country")) is not None and v != "":
        if not enrich.valid_country(v):
            raise InvalidParameter("country must be a 2-letter uppercase country code")
        out["country"] = v
    if (v := params.get("path")) is not None and v != "":
        out["path"] = _text("path", v)
    if (v := params.get("referrer")) is not None and v != "":
        out["referrer"] = _text("referrer", v)
    if (v := params.get("grouped")) is not None:
        out["grouped"] = parse_bool("grouped", v)
    if (v := params.get("group_by")) is not None:
        if v not in GROUP_BY_VALUES:
            raise InvalidParameter("group_by must be one of " + ", ".join(GROUP_BY_VALUES))
        out["group_by"] = v
    out.update(parse_page(params, max_per_page=MAX_PER_PAGE))
    return out


def _range_params(params: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if (v := params.get("start_date")) is not None:
        out["start_date"] = parse_date("start_date", v)
    if (v := params.get("end_date")) is not None:
        out["end_date"] = parse_date("end_date", v)
    if (v := params.get("time_zone")) is not None:
        if v not in ("utc", "user"):
            raise InvalidParameter("time_zone must be 'utc' or 'user'")
        out["time_zone"] = v
    return out


def _texts(params: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: _text(n, v) for n in names if (v := params.get(n)) is not None and v != ""}


def parse_events_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.events``: dates as for hits, filters ``event``,
    ``value``, ``path``, ``grouped`` and ``group_by`` (event, value or path), pages."""
    out = _range_params(params)
    out.update(_texts(params, ("event", "value", "path")))
    if (v := params.get("grouped")) is not None:
        out["grouped"] = parse_bool("grouped", v)
    if (v := params.get("group_by")) is not None:
        if v not in EVENT_GROUP_BY_VALUES:
            raise InvalidParameter("group_by must be one of " + ", ".join(EVENT_GROUP_BY_VALUES))
        out["group_by"] = v
    out.update(parse_page(params, max_per_page=MAX_PER_PAGE))
    return out


def parse_kudos_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.kudos``: dates, ``path`` and ``uid`` filters, pages."""
    out = _range_params(params)
    out.update(_texts(params, ("path", "uid")))
    out.update(parse_page(params, max_per_page=MAX_PER_PAGE))
    return out


def parse_export_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.export_csv``: ``kind`` (default hits) and dates."""
    out = _range_params(params)
    kind = params.get("kind", "hits")
    if kind not in ("hits", "events", "kudos", "visitors"):
        raise InvalidParameter("kind must be hits, events, kudos or visitors")
    out["kind"] = kind
    return out


def parse_leaderboard_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.leaderboard``: ``path`` (partial, any case), pages."""
    out: dict[str, Any] = _texts(params, ("path",))
    out.update(parse_page(params, max_per_page=MAX_PER_PAGE))
    return out


def parse_page(params: Mapping[str, str], *, max_per_page: int) -> dict[str, int]:
    out: dict[str, int] = {}
    if (v := params.get("page")) is not None:
        out["page"] = parse_int("page", v, minimum=1, maximum=1_000_000)
    if (v := params.get("per_page")) is not None:
        out["per_page"] = parse_int("per_page", v, minimum=1, maximum=max_per_page)
    return out


def check_range(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise InvalidParameter("start_date must be on or before end_date")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidParameter(f"Date range is limited to {MAX_RANGE_DAYS} days")


MAX_JOURNEYS_PER_PAGE = 50  # the seed's limit for user_journeys


def parse_journeys_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.user_journeys``: dates as for hits, pages of <= 50."""
    out = _range_params(params)
    out.update(parse_page(params, max_per_page=MAX_JOURNEYS_PER_PAGE))
    return out


def parse_sessions_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.sessions``: dates as for hits, ``visitor_hash``, pages."""
    out = _range_params(params)
    out.update(_texts(params, ("visitor_hash",)))
    out.update(parse_page(params, max_per_page=MAX_PER_PAGE))
    return out


def parse_goals_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``Engine.goals``: optional dates (default: all time)."""
    return _range_params(params)
