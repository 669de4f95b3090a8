"""The /api/v1 endpoints through the real Litestar app: the seed's own examples, status codes
and JSON keys (seed 004, "API Documentation")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import tinytrack
from tests.conftest import CHROME_ANDROID, SAFARI_MAC, Api, make_api

SITE_KEYS = {
    "id",
    "uid",
    "url",
    "label",
    "lifetime_hits",
    "lifetime_unique_hits",
    "lifetime_kudos",
    "active",
    "public",
    "created_at",
    "updated_at",
}
HIT_KEYS = {
    "id",
    "url",
    "path",
    "referrer",
    "country",
    "browser_name",
    "platform_name",
    "is_mobile",
    "source",
    "created_at",
}
PAGINATION_KEYS = {"current_page", "per_page", "total_count", "total_pages"}


@pytest.fixture(params=[True, False], ids=["fast-path", "litestar-only"])
async def api(engine: tinytrack.Engine, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """Every test here runs twice: with POST /hits answered by the fast path (as served) and
    by the Litestar handler alone, which must behave the same."""
    async for value in make_api(engine, fast_path=request.param):
        yield value


async def test_discovery_needs_no_key_and_points_to_openapi(api: Api) -> None:
    r = await api.client.get("/api/v1")
    assert r.status_code == 200
    body = r.json()
    assert body["openapi_url"].endswith("/api/v1/openapi.json")
    assert {"method": "POST", "path": "/sites/{id}/hits/batch", "access": "full_access"} in body[
        "endpoints"
    ]


async def test_openapi_is_3_1_and_generated_from_the_handlers(api: Api) -> None:
    r = await api.client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in ("/api/v1/me", "/api/v1/sites", "/api/v1/sites/{site_id}/hits"):
        assert path in paths
    body = paths["/api/v1/sites/{site_id}/hits"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HitIn"}
    assert "path" in doc["components"]["schemas"]["HitIn"]["properties"]


async def test_me_returns_account_and_key_metadata(api: Api) -> None:
    r = await api.client.get("/api/v1/me", headers=api.auth())
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "email", "is_subscribed", "created_at", "api_key"}
    assert body["api_key"]["name"] == "CLI integration"
    assert body["api_key"]["access_type"] == "read_only"
    assert set(body["api_key"]) == {"name", "access_type", "last_used_at"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing API key"),
        ({"Authorization": "Bearer tt-ro-nope"}, "Invalid API key"),
        ({"Authorization": "Basic abc"}, "Authorization header must be 'Bearer <api key>'"),
        ({"Authorization": "Bearer "}, "Authorization header must be 'Bearer <api key>'"),
        ({"Authorization": "Bearer " + "x" * 5000}, "Invalid API key"),
    ],
)
async def test_missing_or_invalid_key_is_401(
    api: Api, headers: dict[str, str], message: str
) -> None:
    for path in ("/api/v1/me", "/api/v1/sites", f"/api/v1/sites/{api.site.id}/hits"):
        r = await api.client.get(path, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"error": message}


async def test_revoked_key_is_401_at_once(api: Api) -> None:
    assert (await api.client.get("/api/v1/me", headers=api.auth())).status_code == 200
    keys = await api.engine.list_keys()
    read = next(k for k in keys if k.access_type == "read_only")
    await api.engine.revoke_key(read.id)
    r = await api.client.get("/api/v1/me", headers=api.auth())
    assert r.status_code == 401
    assert r.json() == {"error": "API key has been revoked"}


async def test_sites_list_and_one_site_have_the_seed_shape(api: Api) -> None:
    await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits", json={"path": "/a"}, headers=api.write
    )
    r = await api.client.get("/api/v1/sites", headers=api.auth())
    assert r.status_code == 200
    (site,) = r.json()["sites"]
    assert set(site) == SITE_KEYS
    assert site["uid"] == api.site.uid
    assert site["lifetime_hits"] == 1
    assert site["lifetime_unique_hits"] == 1
    assert site["active"] is True
    assert site["public"] is False
    one = await api.client.get(f"/api/v1/sites/{api.site.id}", headers=api.auth())
    assert one.status_code == 200
    assert one.json() == site


@pytest.mark.parametrize("site_id", ["999", "abc", "-1", "1.5", "9" * 40])
async def test_unknown_site_is_404(api: Api, site_id: str) -> None:
    for method, path in (
        ("GET", f"/api/v1/sites/{site_id}"),
        ("GET", f"/api/v1/sites/{site_id}/hits"),
        ("POST", f"/api/v1/sites/{site_id}/hits"),
        ("POST", f"/api/v1/sites/{site_id}/hits/batch"),
    ):
        headers = api.write if method == "POST" else api.auth()
        r = await api.client.request(method, path, headers=headers, json={"path": "/x"})
        assert r.status_code == 404, (method, path)
        assert r.json() == {"error": "Site not found"}


async def test_create_hit_seed_example(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits",
        json={"path": "/pricing", "ip_address": "8.8.8.8", "visitor_id": "user-123"},
        headers=api.write,
    )
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "created"
    assert set(body["hit"]) == HIT_KEYS | {"unique_hash", "visitor_hash"}
    hit = body["hit"]
    assert hit["url"] == "https://example.com/pricing"
    assert hit["path"] == "/pricing"
    assert hit["country"] == "US"
    assert hit["referrer"] is None
    assert hit["is_mobile"] is False
    assert hit["created_at"] == "2026-02-14T10:00:00Z"


async def test_create_hit_enriches_from_user_agent_referrer_and_utm(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits",
        json={
            "path": "blog/post?utm_source=newsletter",
            "user_agent": CHROME_ANDROID,
            "referrer": "https://www.google.com/search?q=x",
            "ip_address": "81.2.69.142",
        },
        headers=api.write,
    )
    assert r.status_code == 201
    hit = r.json()["hit"]
    assert hit["path"] == "/blog/post"
    assert hit["browser_name"] == "Chrome"
    assert hit["platform_name"] == "Android"
    assert hit["is_mobile"] is True
    assert hit["country"] == "GB"
    assert hit["source"] == "newsletter"


async def test_given_country_wins_over_ip(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits",
        json={"path": "/", "country": "PL", "ip_address": "8.8.8.8"},
        headers=api.write,
    )
    assert r.json()["hit"]["country"] == "PL"


async def test_read_only_key_cannot_write(api: Api) -> None:
    for path in (f"/api/v1/sites/{api.site.id}/hits", f"/api/v1/sites/{api.site.id}/hits/batch"):
        r = await api.client.post(path, json={"path": "/x"}, headers=api.auth())
        assert r.status_code == 403
        assert "full-access" in r.json()["error"]


@pytest.mark.parametrize(
    ("user_agent", "fragment"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.0.0 Safari/537.36",
            "HeadlessChrome",
        ),
        ("python-requests/2.31.0", "Python Requests"),
        ("curl/8.5.0", "curl"),
        ("Go-http-client/1.1", "Bot user agent"),
    ],
)
async def test_bot_hits_are_202_ignored_and_not_counted(
    api: Api, user_agent: str, fragment: str
) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits",
        json={"path": "/x", "user_agent": user_agent},
        headers=api.write,
    )
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "ignored"
    assert fragment in body["reason"]
    page = await api.engine.hits(api.site.id)
    assert page.pagination.total_count == 0


async def test_ignore_path_rule_gives_202(api: Api) -> None:
    site = await api.engine.create_site("https://other.example", ignore_paths=["/admin/*"])
    r = await api.client.post(
        f"/api/v1/sites/{site.id}/hits", json={"path": "/admin/users"}, headers=api.write
    )
    assert r.status_code == 202
    assert r.json() == {"status": "ignored", "reason": "Path matches ignore rule"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Path can't be blank"),
        ({"path": "   "}, "Path can't be blank"),
        ({"path": "/x", "country": "us"}, "Country must be a 2-letter uppercase code"),
        ({"path": "/x", "country": "USA"}, "Country must be a 2-letter uppercase code"),
        ({"path": 123}, "Expected `str | null`, got `int` - at `$.path`"),
        ({"path": "/x", "user_agent": ["a"]}, "at `$.user_agent`"),
        ({"path": "/" + "a" * 3000}, "length <= 2048"),
        ({"path": "/x", "ip_address": "1" * 100}, "length <= 64"),
        ([{"path": "/x"}], "Expected `object`, got `array`"),
    ],
)
async def test_invalid_hit_is_422_with_errors(api: Api, body: object, error: str) -> None:
    r = await api.client.post(f"/api/v1/sites/{api.site.id}/hits", json=body, headers=api.write)
    assert r.status_code == 422
    payload = r.json()
    assert payload["status"] == "error"
    assert any(error in e for e in payload["errors"]), payload
    assert payload["error"] == payload["errors"][0]


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"path": "/x",}', b"\xff\xfe", b"null", b"not json", b'"/x"']
)
async def test_malformed_json_is_422(api: Api, raw: bytes) -> None:
    for path in (f"/api/v1/sites/{api.site.id}/hits", f"/api/v1/sites/{api.site.id}/hits/batch"):
        r = await api.client.post(
            path, content=raw, headers={**api.write, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (path, raw)
        assert r.json()["status"] == "error"


async def test_oversized_bodies_are_413(api: Api) -> None:
    big = b'{"path": "/' + b"a" * (70 * 1024) + b'"}'
    r = await api.client.post(f"/api/v1/sites/{api.site.id}/hits", content=big, headers=api.write)
    assert r.status_code == 413
    assert r.json() == {"error": "Request body too large"}
    huge = b"[" + b'{"path": "/x"},' * 400_000 + b'{"path": "/x"}]'
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits/batch", content=huge, headers=api.write
    )
    assert r.status_code == 413
    assert (await api.engine.hits(api.site.id)).pagination.total_count == 0


async def test_oversized_streamed_body_without_length_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"path": "/'
        for _ in range(5):
            yield b"a" * 16 * 1024
        yield b'"}'

    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits", content=chunks(), headers=api.write
    )
    assert "content-length" not in r.request.headers
    assert (r.status_code, r.json()) == (413, {"error": "Request body too large"})
    assert (await api.engine.hits(api.site.id)).pagination.total_count == 0


async def test_batch_seed_example(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits/batch",
        json=[
            {"path": "/valid", "country": "PL"},
            {"path": "/from-ip", "ip_address": "8.8.8.8"},
            {"path": "/fallback-xx", "ip_address": "999.999.999.999"},
        ],
        headers=api.write,
    )
    assert r.status_code == 200
    assert r.json() == {
        "created_count": 3,
        "ignored_count": 0,
        "error_count": 0,
        "results": [
            {"index": 0, "status": "created"},
            {"index": 1, "status": "created"},
            {"index": 2, "status": "created"},
        ],
    }
    grouped = await api.engine.hits(api.site.id, grouped=True, group_by="country")
    assert {row["country"]: row["hit_count"] for row in grouped.grouped_hits} == {
        "PL": 1,
        "US": 1,
        "XX": 1,
    }


async def test_batch_is_partial_success(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits/batch",
        json=[
            {"path": "/ok"},
            {"path": ""},
            {"path": "/bot", "user_agent": "curl/8"},
            {"path": 5},
            "not an object",
            {"path": "/ok2", "user_agent": SAFARI_MAC},
        ],
        headers=api.write,
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["created_count"], body["ignored_count"], body["error_count"]) == (2, 1, 3)
    statuses = [row["status"] for row in body["results"]]
    assert statuses == ["created", "error", "ignored", "error", "error", "created"]
    assert body["results"][1]["errors"] == ["Path can't be blank"]
    assert body["results"][2]["reason"].startswith("Bot user agent")
    page = await api.engine.hits(api.site.id)
    assert sorted(h.path for h in page.hits) == ["/ok", "/ok2"]


async def test_batch_must_be_an_array_of_at_most_1000(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/hits/batch"
    r = await api.client.post(url, json={"path": "/x"}, headers=api.write)
    assert r.status_code == 422
    assert r.json()["errors"] == ["Body must be a top-level JSON array"]
    r = await api.client.post(url, json=[{"path": "/x"}] * 1001, headers=api.write)
    assert r.status_code == 422
    assert r.json()["errors"] == ["Batch is limited to 1000 hits"]
    r = await api.client.post(url, json=[{"path": "/x"}] * 1000, headers=api.write)
    assert r.status_code == 200
    assert r.json()["created_count"] == 1000


async def _seed_hits(api: Api) -> None:
    rows = [
        {
            "path": "/pricing",
            "country": "US",
            "referrer": "https://Google.com/x",
            "user_agent": SAFARI_MAC,
            "ip_address": "1.1.1.1",
        },
        {"path": "/pricing", "country": "US", "user_agent": SAFARI_MAC, "ip_address": "1.1.1.1"},
        {
            "path": "/pricing",
            "country": "DE",
            "user_agent": CHROME_ANDROID,
            "ip_address": "2.2.2.2",
        },
        {
            "path": "/blog",
            "country": "DE",
            "referrer": "https://news.ycombinator.com/item",
            "user_agent": CHROME_ANDROID,
            "ip_address": "2.2.2.2",
        },
    ]
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits/batch", json=rows, headers=api.write
    )
    assert r.json()["created_count"] == 4


async def test_raw_hits_have_the_seed_shape(api: Api) -> None:
    await _seed_hits(api)
    r = await api.client.get(f"/api/v1/sites/{api.site.id}/hits", headers=api.auth())
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"hits", "pagination", "filters"}
    assert all(set(hit) == HIT_KEYS for hit in body["hits"])
    assert body["pagination"] == {
        "current_page": 1,
        "per_page": 100,
        "total_count": 4,
        "total_pages": 1,
    }
    assert body["filters"] == {
        "start_date": "2026-01-15",
        "end_date": "2026-02-14",
        "time_zone": "utc",
        "country": None,
        "path": None,
        "referrer": None,
        "grouped": False,
    }
    # newest first
    assert [h["id"] for h in body["hits"]] == sorted((h["id"] for h in body["hits"]), reverse=True)


async def test_grouped_by_path_has_views_and_unique_views(api: Api) -> None:
    await _seed_hits(api)
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/hits?grouped=true&group_by=path", headers=api.auth()
    )
    assert r.status_code == 200
    body = r.json()
    assert body["grouped_hits"] == [
        {"path": "/pricing", "views": 3, "unique_views": 2},
        {"path": "/blog", "views": 1, "unique_views": 1},
    ]
    assert set(body["pagination"]) == PAGINATION_KEYS
    assert body["filters"]["grouped"] is True
    assert body["filters"]["group_by"] == "path"


async def test_unique_views_omitted_when_site_disables_unique_tracking(api: Api) -> None:
    site = await api.engine.create_site("https://nouniq.example", unique_hits=False)
    await api.client.post(f"/api/v1/sites/{site.id}/hits", json={"path": "/a"}, headers=api.write)
    r = await api.client.get(f"/api/v1/sites/{site.id}/hits?grouped=true", headers=api.auth())
    assert r.json()["grouped_hits"] == [{"path": "/a", "views": 1}]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("country", [{"country": "DE", "hit_count": 2}, {"country": "US", "hit_count": 2}]),
        (
            "browser_name",
            [
                {"browser_name": "Chrome", "hit_count": 2},
                {"browser_name": "Safari", "hit_count": 2},
            ],
        ),
        (
            "platform_name",
            [
                {"platform_name": "Android", "hit_count": 2},
                {"platform_name": "macOS", "hit_count": 2},
            ],
        ),
        (
            "referrer",
            [
                {"referrer": None, "hit_count": 2},
                {"referrer": "https://Google.com/x", "hit_count": 1},
                {"referrer": "https://news.ycombinator.com/item", "hit_count": 1},
            ],
        ),
        (
            "source",
            [
                {"source": None, "hit_count": 2},
                {"source": "google", "hit_count": 1},
                {"source": "hackernews", "hit_count": 1},
            ],
        ),
    ],
)
async def test_other_groupings_return_hit_count(
    api: Api, group_by: str, expected: list[dict[str, object]]
) -> None:
    await _seed_hits(api)
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/hits",
        params={"grouped": "true", "group_by": group_by},
        headers=api.auth(),
    )
    assert r.status_code == 200
    assert r.json()["grouped_hits"] == expected


async def test_filters_country_path_exact_referrer_partial_case_insensitive(api: Api) -> None:
    await _seed_hits(api)
    url = f"/api/v1/sites/{api.site.id}/hits"
    r = await api.client.get(url, params={"country": "DE"}, headers=api.auth())
    assert {h["country"] for h in r.json()["hits"]} == {"DE"}
    assert r.json()["filters"]["country"] == "DE"
    r = await api.client.get(url, params={"path": "/pric"}, headers=api.auth())
    assert r.json()["hits"] == []
    r = await api.client.get(url, params={"path": "/pricing"}, headers=api.auth())
    assert len(r.json()["hits"]) == 3
    r = await api.client.get(url, params={"referrer": "gOOgle"}, headers=api.auth())
    assert [h["referrer"] for h in r.json()["hits"]] == ["https://Google.com/x"]
    r = await api.client.get(url, params={"referrer": "%"}, headers=api.auth())
    assert r.json()["hits"] == []  # LIKE wildcards are literal
    r = await api.client.get(
        url, params={"grouped": "true", "group_by": "path", "country": "DE"}, headers=api.auth()
    )
    assert r.json()["grouped_hits"] == [
        {"path": "/blog", "views": 1, "unique_views": 1},
        {"path": "/pricing", "views": 1, "unique_views": 1},
    ]


async def test_pagination(api: Api) -> None:
    await api.client.post(
        f"/api/v1/sites/{api.site.id}/hits/batch",
        json=[{"path": f"/p{i}"} for i in range(25)],
        headers=api.write,
    )
    url = f"/api/v1/sites/{api.site.id}/hits"
    r = await api.client.get(url, params={"per_page": "10", "page": "3"}, headers=api.auth())
    body = r.json()
    assert len(body["hits"]) == 5
    assert body["pagination"] == {
        "current_page": 3,
        "per_page": 10,
        "total_count": 25,
        "total_pages": 3,
    }
    r = await api.client.get(
        url, params={"grouped": "true", "per_page": "10", "page": "4"}, headers=api.auth()
    )
    assert r.json()["grouped_hits"] == []
    assert r.json()["pagination"]["total_count"] == 25


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group_by": "user_agent", "grouped": "true"}, "group_by must be one of"),
        ({"group_by": "path; DROP TABLE hits"}, "group_by must be one of"),
        ({"start_date": "2026-13-01"}, "start_date is not a valid date"),
        ({"start_date": "yesterday"}, "start_date must be a date in YYYY-MM-DD format"),
        ({"end_date": "20260214"}, "end_date must be a date in YYYY-MM-DD format"),
        ({"start_date": "2026-02-10", "end_date": "2026-02-01"}, "start_date must be on or before"),
        ({"start_date": "2020-01-01", "end_date": "2026-01-01"}, "limited to 730 days"),
        ({"per_page": "1001"}, "per_page must be between 1 and 1000"),
        ({"per_page": "0"}, "per_page must be between 1 and 1000"),
        ({"per_page": "-5"}, "per_page must be a whole number"),
        ({"page": "0"}, "page must be between"),
        ({"page": "x"}, "page must be a whole number"),
        ({"time_zone": "Europe/Warsaw"}, "time_zone must be 'utc' or 'user'"),
        ({"grouped": "maybe"}, "grouped must be true or false"),
        ({"country": "usa"}, "country must be a 2-letter uppercase country code"),
        ({"referrer": "x" * 3000}, "referrer is too long"),
    ],
)
async def test_bad_parameters_are_400(api: Api, params: dict[str, str], message: str) -> None:
    r = await api.client.get(f"/api/v1/sites/{api.site.id}/hits", params=params, headers=api.auth())
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"}
    assert message in body["error"]


async def test_range_of_exactly_730_days_is_allowed(api: Api) -> None:
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/hits",
        params={"start_date": "2024-02-14", "end_date": "2026-02-13"},
        headers=api.auth(),
    )
    assert r.status_code == 200


async def test_unknown_route_and_method_are_json(api: Api) -> None:
    r = await api.client.get("/api/v1/nope")
    assert r.status_code == 404
    assert "error" in r.json()
    r = await api.client.delete("/api/v1/sites", headers=api.auth())
    assert r.status_code == 405
    assert "error" in r.json()


async def test_rate_limit_per_key_answers_429_with_retry_after(engine: object) -> None:
    import tinytrack

    assert isinstance(engine, tinytrack.Engine)
    async for api in make_api(engine, rate_limit=3):
        for _ in range(3):
            assert (await api.client.get("/api/v1/me", headers=api.auth())).status_code == 200
        r = await api.client.get("/api/v1/me", headers=api.auth())
        assert r.status_code == 429
        assert r.json() == {"error": "Rate limit exceeded"}
        assert int(r.headers["retry-after"]) >= 1
        # the limit is per key: the other key is unaffected
        assert (await api.client.get("/api/v1/me", headers=api.write)).status_code == 200


async def test_full_write_queue_answers_503_with_retry_after(api: Api) -> None:
    writer = api.engine._writer
    writer._max_pending = 1
    url = f"/api/v1/sites/{api.site.id}/hits"
    # Warm the day's salt so the first request goes straight to the queue.
    assert (await api.client.post(url, json={"path": "/w"}, headers=api.write)).status_code == 201
    async with writer.lock:  # the writer cannot commit while we hold its lock
        first = asyncio.create_task(api.client.post(url, json={"path": "/a"}, headers=api.write))
        for _ in range(200):
            if writer.pending_rows:
                break
            await asyncio.sleep(0.01)
        assert writer.pending_rows == 1
        r = await api.client.post(url, json={"path": "/b"}, headers=api.write)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert "error" in r.json()
    assert (await first).status_code == 201
    paths = {h.path for h in (await api.engine.hits(api.site.id)).hits}
    assert paths == {"/w", "/a"}


async def test_openapi_lists_the_hits_query_parameters(api: Api) -> None:
    doc = (await api.client.get("/api/v1/openapi.json")).json()
    names = {p["name"] for p in doc["paths"]["/api/v1/sites/{site_id}/hits"]["get"]["parameters"]}
    assert names >= {
        "start_date",
        "end_date",
        "time_zone",
        "country",
        "path",
        "referrer",
        "grouped",
        "group_by",
        "page",
        "per_page",
    }


async def test_time_zone_user_uses_the_sites_day_boundaries(api: Api) -> None:
    # 2026-02-14 03:30 UTC is still 2026-02-13 (22:30) in New York.
    site = await api.engine.create_site("https://ny.example", timezone="America/New_York")
    api.engine._clock.now -= 6.5 * 3600  # type: ignore[attr-defined]
    r = await api.client.post(
        f"/api/v1/sites/{site.id}/hits", json={"path": "/late"}, headers=api.write
    )
    assert r.json()["hit"]["created_at"] == "2026-02-14T03:30:00Z"
    url = f"/api/v1/sites/{site.id}/hits"
    day13 = {"start_date": "2026-02-13", "end_date": "2026-02-13"}
    user = await api.client.get(url, params={**day13, "time_zone": "user"}, headers=api.auth())
    utc = await api.client.get(url, params=day13, headers=api.auth())
    assert [h["path"] for h in user.json()["hits"]] == ["/late"]
    assert user.json()["filters"]["time_zone"] == "user"
    assert utc.json()["hits"] == []
    grouped = await api.client.get(
        url, params={**day13, "time_zone": "user", "grouped": "true"}, headers=api.auth()
    )
    assert grouped.json()["grouped_hits"] == [{"path": "/late", "views": 1, "unique_views": 1}]


async def test_key_last_used_at_is_recorded(api: Api) -> None:
    before = (await api.client.get("/api/v1/me", headers=api.auth())).json()
    assert before["api_key"]["last_used_at"] is None  # the first use is recorded after it
    await asyncio.sleep(0.05)
    keys = {k.access_type: k for k in await api.engine.list_keys()}
    assert keys["read_only"].last_used_at == "2026-02-14T10:00:00Z"
    assert keys["full_access"].last_used_at is None
