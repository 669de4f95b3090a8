"""Time: an injectable clock, UTC day numbers and site-local day boundaries."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tinytrack.errors import InvalidParameter

Clock = Callable[[], float]
"""Returns the current time as Unix seconds. Tests pass their own to pin "now"."""

SECONDS_PER_DAY = 86_400
_EPOCH = dt.date(1970, 1, 1)


def system_clock() -> float:
    return time.time()


@functools.lru_cache(maxsize=4096)
def iso(ts: int | float) -> str:
    """Unix seconds -> '2026-02-13T14:22:00Z' (the API's timestamp format). Cached: every hit
    answered within the same second formats the same stamp (strftime costs ~10 µs)."""
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def day_from_number(number: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=number)


def utc_day(ts: int | float) -> int:
    return int(ts) // SECONDS_PER_DAY


@functools.lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidParameter(f"Unknown time zone: {name!r}") from exc


def check_timezone(name: str) -> str:
    if not name or len(name) > 64:
        raise InvalidParameter(f"Unknown time zone: {name!r}")
    zone(name)
    return name


@functools.lru_cache(maxsize=65_536)
def local_midnight(tz_name: str, day: int) -> int:
    """Unix seconds of the first instant of local day ``day`` (a day number) in ``tz_name``.

    A midnight skipped by a DST change maps to the first instant that exists that day.
    """
    if tz_name == "UTC":
        return day * SECONDS_PER_DAY
    local = dt.datetime.combine(day_from_number(day), dt.time(0), tzinfo=zone(tz_name))
    return int(local.timestamp())


def local_day(tz_name: str, ts: int) -> int:
    """The site-local day number containing ``ts``, defined by ``local_midnight`` boundaries.

    Defined from the same boundaries the raw-row queries use, so rollups and raw SQL agree even
    on days a DST change repeats or skips midnight.
    """
    if tz_name == "UTC":
        return ts // SECONDS_PER_DAY
    guess = day_number(dt.datetime.fromtimestamp(ts, zone(tz_name)).date())
    if ts < local_midnight(tz_name, guess):
        return guess - 1
    if ts >= local_midnight(tz_name, guess + 1):
        return guess + 1
    return guess


def today(tz_name: str, now: float) -> dt.date:
    return day_from_number(local_day(tz_name, int(now)))


def period_start(period: str, today: dt.date) -> dt.date:
    """First day of the dashboard's named periods ending ``today``: ``24h`` (yesterday and
    today), ``7d``, ``12m`` (the 12 calendar months up to this one) or ``30d`` (the default).
    Here, not in the server, so the engine can warm the ranges the dashboard asks for."""
    if period == "24h":
        return today - dt.timedelta(days=1)
    if period == "7d":
        return today - dt.timedelta(days=6)
    if period == "12m":
        return (today.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
    return today - dt.timedelta(days=29)
