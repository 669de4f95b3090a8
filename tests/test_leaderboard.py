"""The all-time leaderboard: the seed's shape, and numbers equal to plain SQL over the raw hits
(all time, including days served from the rollup pyramid's blocks and late hits into them)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

import tinytrack
from tests.conftest import Api, FakeClock

PATHS = ["/", "/blog/", "/blog/hello-world", "/Blog/Second", "/pricing", "/about", "/é"]


async def test_leaderboard_seed_shape(api: Api) -> None:
    for path in ["/blog/hello-world"] * 3 + ["/pricing"]:
        await api.engine.record_hit(api.site.id, tinytrack.HitIn(path=path, ip_address="8.8.8.8"))
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/leaderboard", params={"path": "blog"}, headers=api.auth()
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"leaderboard", "site", "pagination", "cache_info", "filters"}
    assert body["leaderboard"] == [
        {"path": "/blog/hello-world", "total_hits": 3, "unique_hits": 1, "percentage": 75.0}
    ]
    assert body["site"] == {
        "id": api.site.id,
        "uid": api.site.uid,
        "url": "https://example.com",
        "label": "My Blog",
    }
    assert body["pagination"] == {
        "current_page": 1,
        "per_page": 100,
        "total_count": 1,
        "total_pages": 1,
    }
    # Computed from always-current rollups: said so instead of pretending to cache.
    assert body["cache_info"] == {
        "cached_at": "2026-02-14T10:00:00Z",
        "expires_at": "2026-02-14T10:00:00Z",
        "always_fresh": True,
        "computed_from": "rollups",
    }
    assert body["filters"] == {"path": "blog"}


async def test_empty_site_has_an_empty_leaderboard(api: Api) -> None:
    r = await api.client.get(f"/api/v1/sites/{api.site.id}/leaderboard", headers=api.auth())
    assert r.status_code == 200
    assert r.json()["leaderboard"] == []
    assert r.json()["pagination"]["total_count"] == 0


@pytest.mark.parametrize("params", [{"per_page": "1001"}, {"page": "0"}, {"per_page": "x"}])
async def test_bad_leaderboard_parameters_are_400(api: Api, params: dict[str, str]) -> None:
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/leaderboard", params=params, headers=api.auth()
    )
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


async def test_leaderboard_needs_a_key_and_a_site(api: Api) -> None:
    assert (await api.client.get(f"/api/v1/sites/{api.site.id}/leaderboard")).status_code == 401
    r = await api.client.get("/api/v1/sites/77/leaderboard", headers=api.auth())
    assert r.status_code == 404


def raw_leaderboard(db: object, site_id: int, needle: str | None) -> list[tuple[str, int, int]]:
    with sqlite3.connect(str(db)) as conn:
        rows = conn.execute(
            "SELECT path, COUNT(*), SUM(is_unique) FROM hits WHERE site_id = ? GROUP BY path",
            (site_id,),
        ).fetchall()
    if needle is not None:
        rows = [r for r in rows if needle.lower() in r[0].lower()]
    return sorted(((r[0], r[1], r[2]) for r in rows), key=lambda r: (-r[1], r[0]))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_leaderboard_equals_plain_sql_over_raw_hits(
    engine: tinytrack.Engine, clock: FakeClock, seed: int
) -> None:
    rnd = random.Random(seed)
    site = await engine.create_site("https://example.com", timezone="Asia/Kolkata")
    other = await engine.create_site("https://other.example")
    start = clock.now
    # ~200 days of traffic, then compaction into blocks, then late hits into built blocks.
    for day in range(0, 200, rnd.choice([3, 5, 7])):
        clock.now = start + day * 86400 + rnd.randrange(86400)
        hits = [
            tinytrack.HitIn(path=rnd.choice(PATHS), ip_address=rnd.choice(["8.8.8.8", "1.1.1.1"]))
            for _ in range(rnd.randrange(1, 6))
        ]
        await engine.record_hits(site.id, hits)
        await engine.record_hit(other.id, tinytrack.HitIn(path="/blog/other-site"))
    clock.now = start + 205 * 86400
    assert await engine.compact_rollups() > 0
    for _ in range(5):
        clock.now = start + rnd.randrange(190) * 86400
        await engine.record_hit(site.id, tinytrack.HitIn(path=rnd.choice(PATHS)))
    clock.now = start + 206 * 86400

    with sqlite3.connect(engine.path) as conn:
        total = conn.execute("SELECT COUNT(*) FROM hits WHERE site_id = ?", (site.id,)).fetchone()
    for needle in (None, "blog", "BLOG", "é", "%", "_"):
        expected = raw_leaderboard(engine.path, site.id, needle)
        page = await engine.leaderboard(site.id, path=needle, per_page=1000)
        got = [(r.path, r.total_hits, r.unique_hits) for r in page.leaderboard]
        assert got == expected, needle
        assert page.pagination.total_count == len(expected)
        for row in page.leaderboard:
            assert row.percentage == round(row.total_hits * 100 / total[0], 2)
    # Pages slice the same order.
    first = await engine.leaderboard(site.id, per_page=2, page=1)
    second = await engine.leaderboard(site.id, per_page=2, page=2)
    full = raw_leaderboard(engine.path, site.id, None)
    assert [r.path for r in first.leaderboard + second.leaderboard] == [r[0] for r in full[:4]]


async def test_all_time_totals_are_built_for_an_older_database(
    db_path: Path, clock: FakeClock
) -> None:
    """A file from before the all-time totals (schema 4) gets them from its daily rollups when
    a newer tinytrack opens it, and they stay exact as hits keep coming."""
    engine = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    site = await engine.create_site("https://example.com")
    for i, path in enumerate(PATHS * 3):
        clock.advance(3600 * (i % 5))
        await engine.record_hit(site.id, tinytrack.HitIn(path=path, ip_address="8.8.8.8"))
    await engine.close()
    with sqlite3.connect(db_path) as conn:  # back to what schema 4 held
        conn.execute("DELETE FROM hit_rollup_blocks WHERE level = 9")
        conn.execute("DROP INDEX events_revenue")  # schema 6
        conn.execute("PRAGMA user_version = 4")
    conn.close()

    engine = await tinytrack.Engine.open(db_path, clock=clock, maintenance=False)
    try:
        for extra in ([], [PATHS[-1]] * 7):
            for path in extra:
                await engine.record_hit(site.id, tinytrack.HitIn(path=path))
            page = await engine.leaderboard(site.id, per_page=1000)
            got = [(r.path, r.total_hits, r.unique_hits) for r in page.leaderboard]
            assert got == raw_leaderboard(db_path, site.id, None)
            assert got[0][0] == PATHS[-1] or not extra
    finally:
        await engine.close()
