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


def dimension(group_by: str) -> tuple[int, str]:
    """(rollup code, hits column) for a whitelisted group_by; KeyError otherwise."""
    return DIMENSIONS[group_by]
