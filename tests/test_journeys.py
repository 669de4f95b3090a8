"""User journeys (``GET /sites/{id}/user_journeys``): built days, raw days and late hits give
exactly what a plain Python grouping of the raw ``hits`` rows gives; the HTTP shape is the
seed's."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import tinytrack
from tests.conftest import CHROME_ANDROID, FIREFOX_LINUX, SAFARI_MAC, Api, FakeClock

DAY = 86_400
# Thursday 2026-03-05 00:00 UTC. New York moves to daylight time on Sunday 2026-03-08, so one
# of its local days in the data is 23 hours long; Kolkata's midnight is 18:30 UTC.
START = int(dt.datetime(2026, 3, 5, tzinfo=dt.UTC).timestamp())
START_DAY = START // DAY
PATHS = ("/", "/blog", "/blog/hello-world", "/pricing", "/about")
REFERRERS = (None, "https://google.com/", "https://news.ycombinator.com/item?id=1")
VISITOR_IDS = tuple(f"user-{i}" for i in range(6))
IDENTITIES = (
    ("8.8.8.8", SAFARI_MAC),
    ("81.2.69.142", FIREFOX_LINUX),
    ("203.0.113.7", CHROME_ANDROID),
    ("8.8.4.4", FIREFOX_LINUX),
)
JOURNEY_KEYS = {
    "visitor_hash",
    "page_count",
    "first_hit",
    "last_hit",
    "duration_minutes",
    "pages",
    "entry_page",
    "exit_page",
    "session_duration",
    "referrer",
    "country",
    "browser",
}


# -- the reference: plain Python over the raw rows ----------------------------------------------


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_hits(db_path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT id, site_id, created_at, visitor_hash, path, referrer, country, browser_name "
            "FROM hits"
        ).fetchall()
    finally:
        conn.close()


def top(counts: dict[str, int]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return [{"path": path, "visitors": n} for path, n in ranked]


def reference(
    rows: list[tuple[Any, ...]], site_id: int, tz: str, start: dt.date, end: dt.date
) -> dict[str, Any]:
    """Every journey of the site starting in days [start, end] of ``tz``, newest first, and the
    summary and insights, straight from the definition."""
    zone = ZoneInfo(tz)
    lo = dt.datetime.combine(start, dt.time(0), zone).timestamp()
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), zone).timestamp()
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r[2], r[0])):  # (created_at, id)
        if row[1] == site_id:
            groups[(row[3], row[2] // DAY)].append(row)
    found: list[tuple[int, str, dict[str, Any]]] = []
    for (visitor, _day), hits in groups.items():
        first, last = hits[0], hits[-1]
        if not lo <= first[2] < hi:
            continue
        journey = {
            "visitor_hash": visitor,
            "page_count": len(hits),
            "first_hit": iso(first[2]),
            "last_hit": iso(last[2]),
            "duration_minutes": (last[2] - first[2]) // 60,
            "pages": [{"path": h[4]} for h in hits[:500]],
            "entry_page": first[4],
            "exit_page": last[4],
            "session_duration": last[2] - first[2],
            "referrer": first[5],
            "country": first[6],
            "browser": first[7],
        }
        found.append((-first[2], visitor, journey))
    found.sort(key=lambda f: (f[0], f[1]))
    journeys = [f[2] for f in found]
    total = len(journeys)
    multi = sum(j["page_count"] > 1 for j in journeys)
    entries: dict[str, int] = defaultdict(int)
    exits: dict[str, int] = defaultdict(int)
    for j in journeys:
        entries[j["entry_page"]] += 1
        exits[j["exit_page"]] += 1
    return {
        "user_journeys": journeys,
        "summary": {
            "total_visitors": total,
            "multi_page_visitors": multi,
            "single_page_visitors": total - multi,
            "bounce_rate": round((total - multi) / total * 100, 1) if total else 0.0,
        },
        "insights": {"top_entry_pages": top(entries), "top_exit_pages": top(exits)},
    }


async def assert_matches_reference(
    engine: tinytrack.Engine,
    db_path: Path,
    site: tinytrack.Site,
    ranges: list[tuple[dt.date, dt.date]],
) -> None:
    rows = raw_hits(db_path)
    for mode in ("utc", "user"):
        tz = site.timezone if mode == "user" else "UTC"
        for start, end in ranges:
            want = reference(rows, site.id, tz, start, end)
            every = want["user_journeys"]
            for per_page in (7, 50):
                pages = max(1, -(-len(every) // per_page))
                for page in range(1, pages + 2):  # and one past the end
                    got = tinytrack.to_builtins(
                        await engine.user_journeys(
                            site.id,
                            start_date=start,
                            end_date=end,
                            time_zone=mode,
                            page=page,
                            per_page=per_page,
                        )
                    )
                    where = (site.timezone, mode, start, end, per_page, page)
                    chunk = every[(page - 1) * per_page : page * per_page]
                    assert got["user_journeys"] == chunk, where
                    assert got["summary"] == want["summary"], where
                    assert got["insights"] == want["insights"], where
                    assert got["pagination"] == {
                        "current_page": page,
                        "per_page": per_page,
                        "total_count": len(every),
                        "total_pages": pages if every else 0,
                    }, where
                    assert got["filters"] == {
                        "start_date": start.isoformat(),
                        "end_date": end.isoformat(),
                        "time_zone": mode,
                    }


# -- random traffic -----------------------------------------------------------------------------


async def traffic(
    engine: tinytrack.Engine,
    clock: FakeClock,
    rng: random.Random,
    sites: list[tinytrack.Site],
    seen: set[tuple[int, int, str]],
    until: int,
) -> None:
    """Hits in visits of a few pages, from stable visitor ids, IP + user agent pairs and
    anonymous server calls, until the clock reaches ``until``. Some arrive as batches stamped
    with the same second, so only the hit id orders them. ``seen`` collects (site id, day,
    visitor id) of the stable visitors."""
    while clock.now < until:
        site = rng.choice(sites)
        kind = rng.random()
        who: dict[str, Any]
        if kind < 0.45:
            who = {"visitor_id": rng.choice(VISITOR_IDS)}
        elif kind < 0.9:
            ip, ua = rng.choice(IDENTITIES)
            who = {"ip_address": ip, "user_agent": ua}
        else:
            who = {}  # no identity at all: every such hit is its own visitor
        visit = []
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            visit.append(
                tinytrack.HitIn(path=rng.choice(PATHS), referrer=rng.choice(REFERRERS), **who)
            )
        for hit in visit:
            if rng.random() < 0.2:
                await engine.record_hits(site.id, [hit, hit, tinytrack.HitIn(path="/", **who)])
            else:
                await engine.record_hit(site.id, hit)
            if hit.visitor_id:
                seen.add((site.id, int(clock.now) // DAY - START_DAY, hit.visitor_id))
            clock.advance(rng.choice((0, 5, 40, 130, 900)))
        clock.advance(rng.randint(600, 4 * 3600))


def built_days(db_path: Path) -> set[tuple[int, int]]:
    conn = sqlite3.connect(db_path)
    try:
        return {(s, d - START_DAY) for s, d in conn.execute("SELECT * FROM journey_days")}
    finally:
        conn.close()


def date(offset: int) -> dt.date:
    return dt.date(2026, 3, 5) + dt.timedelta(days=offset)


async def test_journeys_equal_a_plain_grouping_of_raw_hits(
    engine: tinytrack.Engine, clock: FakeClock, db_path: Path
) -> None:
    rng = random.Random(20260305)
    ny = await engine.create_site("https://ny.example", timezone="America/New_York")
    kolkata = await engine.create_site("https://in.example", timezone="Asia/Kolkata")
    sites = [ny, kolkata]
    seen: set[tuple[int, int, str]] = set()
    clock.now = START + 1800
    ranges = [
        (date(-1), date(6)),
        (date(0), date(0)),
        (date(1), date(3)),
        (date(3), date(3)),
        (date(2), date(6)),
    ]

    # Days 0-2; then days 0 and 1 are built, day 2 (today) stays raw.
    await traffic(engine, clock, rng, sites, seen, START + 2 * DAY + 15 * 3600)
    assert await engine.build_journeys() == 4
    assert built_days(db_path) == {(ny.id, 0), (ny.id, 1), (kolkata.id, 0), (kolkata.id, 1)}
    assert await engine.build_journeys() == 0  # nothing new to build
    for site in sites:
        await assert_matches_reference(engine, db_path, site, ranges)

    # A late hit into built day 1 for a visitor of that day, before all of the day's hits:
    # it becomes that journey's entry page, and the day is read raw until rebuilt.
    now = clock.now
    clock.now = START + DAY + 1
    visitor = min(v for s, d, v in seen if (s, d) == (ny.id, 1))
    await engine.record_hit(ny.id, tinytrack.HitIn(path="/late-entry", visitor_id=visitor))
    clock.now = now
    assert (ny.id, 1) not in built_days(db_path)
    await traffic(engine, clock, rng, sites, seen, START + 5 * DAY + 9 * 3600)
    for site in sites:
        await assert_matches_reference(engine, db_path, site, ranges[:3])

    # Build everything before today (day 5): day 1 again, and days 2-4; days 5 and 6 stay raw.
    await engine.build_journeys()
    assert {d for s, d in built_days(db_path) if s == ny.id} == {0, 1, 2, 3, 4}
    await traffic(engine, clock, rng, sites, seen, START + 6 * DAY + 20 * 3600)
    for site in sites:
        await assert_matches_reference(engine, db_path, site, ranges)
        # The defaults: the last 30 days up to today, in each mode.
        for mode in ("utc", "user"):
            got = await engine.user_journeys(site.id, time_zone=mode)
            tz = site.timezone if mode == "user" else "UTC"
            end = dt.datetime.fromtimestamp(clock.now, ZoneInfo(tz)).date()
            start = end - dt.timedelta(days=30)
            assert (got.filters.start_date, got.filters.end_date) == (
                start.isoformat(),
                end.isoformat(),
            )
            want = reference(raw_hits(db_path), site.id, tz, start, end)
            assert tinytrack.to_builtins(got.summary) == want["summary"]
            assert tinytrack.to_builtins(got.user_journeys) == want["user_journeys"][:50]
    journeys = (
        await engine.user_journeys(ny.id, start_date=date(1), end_date=date(1))
    ).user_journeys
    late = [j for j in journeys if j.pages[0].path == "/late-entry"]
    assert len(late) == 1 and late[0].page_count > 1 and late[0].entry_page == "/late-entry"


async def test_pages_are_capped_but_counted(engine: tinytrack.Engine, clock: FakeClock) -> None:
    site = await engine.create_site("https://example.com")
    paths = [f"/p{i}" for i in range(520)]
    await engine.record_hits(site.id, [tinytrack.HitIn(path=p, visitor_id="v") for p in paths])
    for build in (False, True):
        if build:
            clock.advance(DAY)
            assert await engine.build_journeys() == 1
        (journey,) = (await engine.user_journeys(site.id)).user_journeys
        assert journey.page_count == 520
        assert [p.path for p in journey.pages] == paths[:500]
        assert (journey.entry_page, journey.exit_page) == ("/p0", "/p519")


async def test_a_stable_visitor_starts_a_new_journey_each_utc_day(
    engine: tinytrack.Engine, clock: FakeClock
) -> None:
    site = await engine.create_site("https://example.com")
    clock.now = START + DAY - 60  # 23:59 UTC
    for path in ("/a", "/b", "/c"):
        await engine.record_hit(site.id, tinytrack.HitIn(path=path, visitor_id="v"))
        clock.advance(40)
    page = await engine.user_journeys(site.id)
    assert [[p.path for p in j.pages] for j in page.user_journeys] == [["/c"], ["/a", "/b"]]
    assert page.summary.total_visitors == 2
    assert page.summary.bounce_rate == 50.0
    # A journey counts on the day of its first hit, with every hit of its UTC day.
    first_day = await engine.user_journeys(site.id, start_date=date(0), end_date=date(0))
    assert [j.page_count for j in first_day.user_journeys] == [2]


async def test_late_hit_after_reopen_still_invalidates_the_built_day(
    engine: tinytrack.Engine, clock: FakeClock, db_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    clock.now = START + 3600
    await engine.record_hit(site.id, tinytrack.HitIn(path="/a", visitor_id="v"))
    clock.now = START + DAY + 3600
    await engine.build_journeys()
    await engine.close()
    # A new engine learns which days are built from the database.
    reopened = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    try:
        clock.now = START + 7200
        await reopened.record_hit(site.id, tinytrack.HitIn(path="/b", visitor_id="v"))
        clock.now = START + DAY + 3600
        page = await reopened.user_journeys(site.id)
        assert [[p.path for p in j.pages] for j in page.user_journeys] == [["/a", "/b"]]
    finally:
        await reopened.close()


async def test_background_maintenance_builds_journeys(db_path: Path, clock: FakeClock) -> None:
    async with await tinytrack.Engine.open(db_path, clock=clock, maintenance=False) as first:
        site = await first.create_site("https://example.com")
        await first.record_hit(site.id, tinytrack.HitIn(path="/a", visitor_id="v"))
    clock.advance(DAY)
    async with await tinytrack.Engine.open(db_path, clock=clock) as engine:
        for _ in range(200):
            if built_days(db_path):
                break
            await asyncio.sleep(0.01)
        assert built_days(db_path) == {(site.id, clock.now // DAY - 1 - START_DAY)}
        assert (await engine.user_journeys(site.id)).summary.total_visitors == 1


async def test_engine_rejects_bad_arguments(engine: tinytrack.Engine) -> None:
    site = await engine.create_site("https://example.com")
    for kwargs in (
        {"per_page": 51},
        {"per_page": 0},
        {"page": 0},
        {"time_zone": "Europe/Warsaw"},
        {"start_date": date(1), "end_date": date(0)},
        {"start_date": date(0) - dt.timedelta(days=731), "end_date": date(0)},
    ):
        with pytest.raises(tinytrack.InvalidParameter):
            await engine.user_journeys(site.id, **kwargs)
    with pytest.raises(tinytrack.NotFound):
        await engine.user_journeys(site.id + 1)


# -- HTTP ---------------------------------------------------------------------------------------


async def test_user_journeys_seed_shape(api: Api, clock: FakeClock) -> None:
    url = f"/api/v1/sites/{api.site.id}/hits"
    clock.now = int(dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC).timestamp())
    steps = [("/", 0), ("/blog", 200), ("/blog/hello-world", 300), ("/pricing", 220)]
    for path, wait in steps:
        clock.advance(wait)
        body = {
            "path": path,
            "visitor_id": "user-123",
            "user_agent": FIREFOX_LINUX,
            "country": "DE",
            "referrer": "https://google.com" if path == "/" else None,
        }
        assert (await api.client.post(url, json=body, headers=api.write)).status_code == 201
    await api.client.post(url, json={"path": "/blog", "ip_address": "8.8.8.8"}, headers=api.write)
    clock.now = int(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp())
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/user_journeys",
        params={"start_date": "2026-01-01", "end_date": "2026-01-31", "time_zone": "user"},
        headers=api.auth(),  # a read-only key is enough
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"user_journeys", "summary", "insights", "pagination", "filters"}
    second, first = body["user_journeys"]
    assert set(first) == JOURNEY_KEYS
    assert first == {
        "visitor_hash": first["visitor_hash"],
        "page_count": 4,
        "first_hit": "2026-01-15T10:00:00Z",
        "last_hit": "2026-01-15T10:12:00Z",
        "duration_minutes": 12,
        "pages": [
            {"path": "/"},
            {"path": "/blog"},
            {"path": "/blog/hello-world"},
            {"path": "/pricing"},
        ],
        "entry_page": "/",
        "exit_page": "/pricing",
        "session_duration": 720,
        "referrer": "https://google.com",
        "country": "DE",
        "browser": "Firefox",
    }
    assert second["page_count"] == 1 and second["country"] == "US"
    assert body["summary"] == {
        "total_visitors": 2,
        "multi_page_visitors": 1,
        "single_page_visitors": 1,
        "bounce_rate": 50.0,
    }
    assert body["insights"] == {
        "top_entry_pages": [{"path": "/", "visitors": 1}, {"path": "/blog", "visitors": 1}],
        "top_exit_pages": [{"path": "/blog", "visitors": 1}, {"path": "/pricing", "visitors": 1}],
    }
    assert body["pagination"] == {
        "current_page": 1,
        "per_page": 50,
        "total_count": 2,
        "total_pages": 1,
    }
    assert body["filters"] == {
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
        "time_zone": "user",
    }
    discovery = (await api.client.get("/api/v1")).json()
    assert {"method": "GET", "path": "/sites/{id}/user_journeys", "access": "read_only"} in (
        discovery["endpoints"]
    )
    doc = (await api.client.get("/api/v1/openapi.json")).json()
    operation = doc["paths"]["/api/v1/sites/{site_id}/user_journeys"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {
        "start_date",
        "end_date",
        "time_zone",
        "page",
        "per_page",
    }


async def test_user_journeys_needs_a_key_and_a_known_site(api: Api) -> None:
    r = await api.client.get(f"/api/v1/sites/{api.site.id}/user_journeys")
    assert r.status_code == 401
    assert r.json() == {"error": "Missing API key"}
    for site_id in ("999", "abc"):
        r = await api.client.get(f"/api/v1/sites/{site_id}/user_journeys", headers=api.auth())
        assert r.status_code == 404
        assert r.json() == {"error": "Site not found"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"per_page": "51"}, "per_page must be between 1 and 50"),
        ({"per_page": "0"}, "per_page must be between 1 and 50"),
        ({"page": "0"}, "page must be between"),
        ({"page": "x"}, "page must be a whole number"),
        ({"start_date": "2026-13-01"}, "start_date is not a valid date"),
        ({"end_date": "tomorrow"}, "end_date must be a date in YYYY-MM-DD format"),
        ({"start_date": "2026-02-10", "end_date": "2026-02-01"}, "start_date must be on or before"),
        ({"start_date": "2020-01-01", "end_date": "2026-01-01"}, "limited to 730 days"),
        ({"time_zone": "bad"}, "time_zone must be 'utc' or 'user'"),
    ],
)
async def test_user_journeys_bad_parameters_are_400(
    api: Api, params: dict[str, str], message: str
) -> None:
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/user_journeys", params=params, headers=api.auth()
    )
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"}
    assert message in body["error"]


# -- today's journeys are kept between queries (journeys.RawDays) --------------------------------


async def test_kept_raw_day_follows_new_late_and_deleted_hits(
    engine: tinytrack.Engine, clock: FakeClock, db_path: Path
) -> None:
    """Queries between writes read only the new hits of an unbuilt day; what they answer must
    always equal a fresh grouping of the raw rows, also when a hit arrives out of time order or
    rows disappear behind the engine's back, and an earlier answer must not change."""
    rng = random.Random(7)
    site = await engine.create_site("https://example.com", timezone="Asia/Kolkata")
    ranges = [(date(0), date(0)), (date(-1), date(1))]
    clock.now = START + 3600
    await engine.record_hit(site.id, tinytrack.HitIn(path="/first", visitor_id="kept"))
    await traffic(engine, clock, rng, [site], set(), START + 5 * 3600)
    await assert_matches_reference(engine, db_path, site, ranges)
    before = await engine.user_journeys(site.id, start_date=date(0), end_date=date(0))
    snapshot = tinytrack.to_builtins(before)

    # New hits, some continuing the journeys already listed.
    await traffic(engine, clock, rng, [site], set(), START + 9 * 3600)
    await engine.record_hit(site.id, tinytrack.HitIn(path="/again", visitor_id="kept"))
    await assert_matches_reference(engine, db_path, site, ranges)
    assert tinytrack.to_builtins(before) == snapshot  # answers already given stay as they were

    # A hit stamped before the newest one (an import, a backdated event): regrouped.
    now = clock.now
    clock.now = START + 2 * 3600
    await engine.record_hit(site.id, tinytrack.HitIn(path="/backdated", visitor_id="kept"))
    clock.now = now
    await assert_matches_reference(engine, db_path, site, ranges)
    (kept,) = [
        j
        for j in (await engine.user_journeys(site.id, start_date=date(0))).user_journeys
        if j.entry_page == "/first"
    ]
    assert [p.path for p in kept.pages] == ["/first", "/backdated", "/again"]

    # Rows deleted by another program: the kept day no longer matches and is regrouped.
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("DELETE FROM hits WHERE id IN (SELECT id FROM hits ORDER BY id LIMIT 5)")
    finally:
        conn.close()
    await assert_matches_reference(engine, db_path, site, ranges)
    got = await engine.user_journeys(site.id, start_date=date(0), end_date=date(0))
    assert got.summary.total_visitors == len(
        reference(raw_hits(db_path), site.id, "UTC", date(0), date(0))["user_journeys"]
    )


async def test_maintenance_groups_todays_journeys_ahead_of_queries(
    engine: tinytrack.Engine, clock: FakeClock, db_path: Path
) -> None:
    busy = await engine.create_site("https://busy.example")
    quiet = await engine.create_site("https://quiet.example")
    idle = await engine.create_site("https://idle.example")  # no hits today: nothing to group
    clock.now = START + 3600
    await traffic(engine, clock, random.Random(3), [busy, quiet], set(), START + 8 * 3600)
    assert await engine.warm_journeys() == 2
    today = int(clock.now) // DAY
    kept = engine._raw_days._days  # white box: what the next query starts from
    with sqlite3.connect(db_path) as conn:
        for site in (busy, quiet):
            (hits,) = conn.execute(
                "SELECT COUNT(*) FROM hits WHERE site_id = ?", (site.id,)
            ).fetchone()
            assert kept[(site.id, today)].rows == hits > 0
    conn.close()
    assert (idle.id, today) not in kept
    await traffic(engine, clock, random.Random(4), [busy], set(), START + 12 * 3600)
    await assert_matches_reference(engine, db_path, busy, [(date(0), date(0))])
