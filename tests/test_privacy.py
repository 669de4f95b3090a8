"""No raw IP address is ever stored; unique hits reset daily; old salts are forgotten."""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

import tinytrack
from tests.conftest import FIREFOX_LINUX, SAFARI_MAC, FakeClock

KNOWN_IPS = ["203.0.113.77", "81.2.69.142", "8.8.4.4", "2a00:1450:4001:82b::200e", "2001:db8::1"]


def ip_forms(ip: str) -> list[bytes]:
    addr = ipaddress.ip_address(ip)
    forms = {ip.encode(), str(addr).encode(), addr.packed, addr.exploded.encode()}
    if addr.version == 4:
        forms.add(ip.encode("utf-16-le"))
    return sorted(forms)


async def test_no_raw_ip_in_the_database_file(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        for ip in KNOWN_IPS:
            await engine.record_hit(
                site.id, tinytrack.HitIn(path="/a", ip_address=ip, user_agent=SAFARI_MAC)
            )
        await engine.record_hits(
            site.id,
            [tinytrack.HitIn(path=f"/b{i}", ip_address=ip) for i, ip in enumerate(KNOWN_IPS)],
        )
        await engine.record_events(
            site.id,
            [
                tinytrack.EventIn(event="a.b", ip_address=ip, user_agent=SAFARI_MAC)
                for ip in KNOWN_IPS
            ],
        )
        events = await engine.events(site.id)
        assert events.pagination.total_count == len(KNOWN_IPS)
        page = await engine.hits(site.id)
        assert page.pagination.total_count == 2 * len(KNOWN_IPS)
        assert {h.country for h in page.hits} >= {"GB", "US"}  # the IPs were used...
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    blob = b"".join(p.read_bytes() for p in files)
    assert len(blob) > 10_000
    for ip in KNOWN_IPS:
        for form in ip_forms(ip):
            assert form not in blob, (ip, form)  # ...but never stored


async def test_unique_hits_reset_daily_at_midnight_utc(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        visit = tinytrack.HitIn(path="/p", ip_address="203.0.113.9", user_agent=FIREFOX_LINUX)
        first = await engine.record_hit(site.id, visit)
        clock.advance(3600)
        again = await engine.record_hit(site.id, visit)
        other_page = await engine.record_hit(
            site.id, tinytrack.HitIn(path="/q", ip_address="203.0.113.9", user_agent=FIREFOX_LINUX)
        )
        clock.advance(24 * 3600)
        next_day = await engine.record_hit(site.id, visit)
        assert isinstance(first, tinytrack.HitCreated)
        assert isinstance(again, tinytrack.HitCreated)
        assert isinstance(other_page, tinytrack.HitCreated)
        assert isinstance(next_day, tinytrack.HitCreated)
        assert first.hit.unique_hash == again.hit.unique_hash
        assert first.hit.visitor_hash == again.hit.visitor_hash == other_page.hit.visitor_hash
        assert next_day.hit.unique_hash != first.hit.unique_hash
        assert next_day.hit.visitor_hash != first.hit.visitor_hash  # not linkable across days
        grouped = await engine.hits(site.id, grouped=True, group_by="path")
        assert isinstance(grouped, tinytrack.GroupedHitsPage)
        assert {r["path"]: (r["views"], r["unique_views"]) for r in grouped.grouped_hits} == {
            "/p": (3, 2),  # unique once on each of the two days
            "/q": (1, 1),
        }


async def test_every_first_visit_in_a_big_batch_is_unique(db_path: Path, clock: FakeClock) -> None:
    """Uniqueness is decided hit by hit inside one group commit: 40 visitors (distinct
    addresses), each seen twice in one batch and again in a single hit, count 40 unique views."""
    visits = [
        tinytrack.HitIn(path="/p", ip_address=f"203.0.113.{i}", user_agent=FIREFOX_LINUX)
        for i in range(40)
    ]
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        batch = await engine.record_hits(site.id, visits + visits)
        assert batch.created_count == 80
        again = await engine.record_hit(site.id, visits[7])
        assert isinstance(again, tinytrack.HitCreated)
        grouped = await engine.hits(site.id, grouped=True, group_by="path")
        assert isinstance(grouped, tinytrack.GroupedHitsPage)
        assert grouped.grouped_hits == [{"path": "/p", "views": 81, "unique_views": 40}]
    conn = sqlite3.connect(db_path)
    try:
        flags = [row[0] for row in conn.execute("SELECT is_unique FROM hits ORDER BY id")]
    finally:
        conn.close()
    assert flags == [1] * 40 + [0] * 41


async def test_unique_state_survives_restart(db_path: Path, clock: FakeClock) -> None:
    visit = tinytrack.HitIn(path="/p", ip_address="203.0.113.9", user_agent=FIREFOX_LINUX)
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        await engine.record_hit(site.id, visit)
    async with tinytrack.open(db_path, clock=clock) as engine:
        await engine.record_hit(site.id, visit)
        grouped = await engine.hits(site.id, grouped=True)
        assert isinstance(grouped, tinytrack.GroupedHitsPage)
        assert grouped.grouped_hits == [{"path": "/p", "views": 2, "unique_views": 1}]


async def test_visitor_id_is_hashed_with_a_site_secret_and_stable(
    db_path: Path, clock: FakeClock
) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        a = await engine.create_site("https://a.example")
        b = await engine.create_site("https://b.example")
        hit = tinytrack.HitIn(path="/", visitor_id="user-123")
        r1 = await engine.record_hit(a.id, hit)
        clock.advance(3 * 86400)
        r2 = await engine.record_hit(a.id, hit)
        r3 = await engine.record_hit(b.id, hit)
    assert isinstance(r1, tinytrack.HitCreated) and isinstance(r2, tinytrack.HitCreated)
    assert isinstance(r3, tinytrack.HitCreated)
    assert r1.hit.visitor_hash == r2.hit.visitor_hash  # journeys can follow a known visitor
    assert r1.hit.visitor_hash != r3.hit.visitor_hash  # but not across sites
    blob = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert b"user-123" not in blob


async def test_salts_older_than_yesterday_are_deleted(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        for _ in range(4):
            await engine.record_hit(site.id, tinytrack.HitIn(path="/", ip_address="1.2.3.4"))
            clock.advance(86400)
    conn = sqlite3.connect(db_path)
    days = [row[0] for row in conn.execute("SELECT day FROM salts ORDER BY day")]
    conn.close()
    assert len(days) == 2 and days[1] - days[0] == 1


async def test_user_agents_are_purged_after_retention(db_path: Path, clock: FakeClock) -> None:
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com")
        await engine.record_hit(site.id, tinytrack.HitIn(path="/old", user_agent=SAFARI_MAC))
        await engine.record_event(
            site.id, tinytrack.EventIn(event="old.event", user_agent=SAFARI_MAC)
        )
        clock.advance(6 * 86400)
        await engine.record_hit(site.id, tinytrack.HitIn(path="/new", user_agent=SAFARI_MAC))
        await engine.record_event(
            site.id, tinytrack.EventIn(event="new.event", user_agent=SAFARI_MAC)
        )
        assert await engine.purge_user_agents() == 0
        clock.advance(2 * 86400)
        assert await engine.purge_user_agents() == 2
        page = await engine.hits(site.id, start_date=None)
        assert {h.path: h.browser_name for h in page.hits} == {"/old": "Safari", "/new": "Safari"}
    conn = sqlite3.connect(db_path)
    rows = dict(conn.execute("SELECT path, user_agent FROM hits").fetchall())
    events = dict(conn.execute("SELECT name, user_agent FROM events").fetchall())
    conn.close()
    assert rows == {"/old": None, "/new": SAFARI_MAC}
    assert events == {"old.event": None, "new.event": SAFARI_MAC}
