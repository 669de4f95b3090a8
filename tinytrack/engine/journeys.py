"""User journeys: built by a following commit. The writer's contract lives here already: the
statements that drop one (site, UTC day) of built journeys when a late hit arrives for it."""

from __future__ import annotations

INVALIDATE_DAY: tuple[str, ...] = (
    "DELETE FROM journeys WHERE site_id = ? AND utc_day = ?",
    "DELETE FROM journey_stats WHERE site_id = ? AND utc_day = ?",
    "DELETE FROM journey_days WHERE site_id = ? AND utc_day = ?",
)
