"""Small presentation helpers for the dashboard: the traffic chart as inline SVG (no chart
library, no JavaScript needed), period-over-period change, flags, referrer kinds."""

from __future__ import annotations

from html import escape
from typing import Any

from tinytrack.engine.enrich import host_of
from tinytrack.models import Traffic

WIDTH, HEIGHT, PAD = 800, 220, 24
MOBILE_PLATFORMS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})


def svg(traffic: Traffic) -> str:
    """Bars of hits with unique hits inside them, one per bucket; each bar carries its numbers
    (a <title> for hovering, data- attributes for scripts and tests)."""
    points = traffic.points
    top = max((p.hits for p in points), default=0) or 1
    slot = (WIDTH - PAD) / max(len(points), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 20}" role="img" '
        f'aria-label="Hits and unique hits per {traffic.bucket}" preserveAspectRatio="none">',
        f'<text class="axis" x="0" y="12">{top:,}</text>',
        f'<line class="grid" x1="{PAD}" y1="{PAD}" x2="{WIDTH}" y2="{PAD}"/>',
        f'<line class="grid" x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>',
    ]
    usable = HEIGHT - PAD
    for i, p in enumerate(points):
        x = PAD + i * slot + (slot - bar) / 2
        h = usable * p.hits / top
        u = usable * p.unique_hits / top
        label = escape(p.label)
        parts.append(
            f'<g class="bucket" data-label="{label}" data-hits="{p.hits}" '
            f'data-unique="{p.unique_hits}"><title>{label}: {p.hits:,} hits, '
            f"{p.unique_hits:,} unique</title>"
            f'<rect class="hits" x="{x:.1f}" y="{HEIGHT - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}"/><rect class="uniques" x="{x:.1f}" y="{HEIGHT - u:.1f}" '
            f'width="{bar:.1f}" height="{u:.1f}"/></g>'
        )
    if points:
        parts.append(
            f'<text class="axis" x="{PAD}" y="{HEIGHT + 16}">{escape(points[0].label)}</text>'
        )
        parts.append(
            f'<text class="axis end" x="{WIDTH}" y="{HEIGHT + 16}" text-anchor="end">'
            f"{escape(points[-1].label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def change(now: int, before: int) -> str:
    """ "+12%" / "-3%" / "new" / "±0%" against the previous period."""
    if before == 0:
        return "new" if now else "±0%"
    pct = round((now - before) * 100 / before)
    return f"{pct:+d}%" if pct else "±0%"


def flag(code: str) -> str:
    if len(code) != 2 or not code.isalpha() or code.upper() == "XX":
        return "\U0001f3f3"  # a white flag: unknown
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())


def referrers(
    rows: list[dict[str, Any]], site_url: str, show_internal: bool
) -> list[dict[str, Any]]:
    """Grouped referrer rows with their kind: direct (none), internal (the site's own host or
    its www. twin) or external; internal ones dropped unless asked for."""
    site_host = host_of(site_url)
    out = []
    for row in rows:
        value = row.get("referrer")
        if not value:
            kind = "direct"
        elif host_of(value) == site_host:
            kind = "internal"
        else:
            kind = "external"
        if kind == "internal" and not show_internal:
            continue
        out.append({**row, "kind": kind})
    return out


def mobile_share(platforms: list[dict[str, Any]]) -> int | None:
    """Percent of hits from mobile platforms (iOS, Android, ...), or None without data."""
    total = sum(int(row["hit_count"]) for row in platforms)
    if not total:
        return None
    mobile = sum(
        int(r["hit_count"]) for r in platforms if r.get("platform_name") in MOBILE_PLATFORMS
    )
    return round(mobile * 100 / total)
