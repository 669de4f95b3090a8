"""Rollup dimensions: the whitelist that maps a ``group_by`` name to a rollup code and a hits
column. Identifiers in SQL come only from here."""

from __future__ import annotations

from typing import Final

# code -> hits column. Code 0 is the site total (value '').
DIMENSIONS: Final[dict[str, tuple[int, str]]] = {
    "path": (1, "path"),
    "country": (2, "country"),
    "referrer": (3, "referrer"),
    "browser_name": (4, "browser_name"),
    "platform_name": (5, "platform_name"),
    "source": (6, "source"),
}
TOTAL: Final = 0

# Events share the rollup table under their own codes: code -> events column. Code 10 is the
# site's event total (value '').
EVENT_DIMENSIONS: Final[dict[str, tuple[int, str]]] = {
    "event": (11, "name"),
    "value": (12, "value"),
    "path": (13, "path"),
}
EVENT_TOTAL: Final = 10
ALL_CODES: Final = (
    TOTAL,
    *(code for code, _ in DIMENSIONS.values()),
    EVENT_TOTAL,
    *(code for code, _ in EVENT_DIMENSIONS.values()),
)


UPSERT_ROLLUP: Final = """
INSERT INTO hit_rollups (site_id, dim, utc_day, local_day, value, hits, uniques)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site_id, dim, utc_day, local_day, value)
DO UPDATE SET hits = hits + excluded.hits, uniques = uniques + excluded.uniques
"""


def dimension(group_by: str) -> tuple[int, str]:
    """(rollup code, hits column) for a whitelisted group_by; KeyError otherwise."""
    return DIMENSIONS[group_by]


def event_dimension(group_by: str) -> tuple[int, str]:
    """(rollup code, events column) for a whitelisted event group_by; KeyError otherwise."""
    return EVENT_DIMENSIONS[group_by]
