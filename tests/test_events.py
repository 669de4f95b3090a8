"""Events through the real app: the seed's examples for POST /events and /events/batch, the
read endpoint (raw and grouped), errors, and grouped rollups equal to plain SQL on raw rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import CHROME_ANDROID, SAFARI_MAC, Api, FakeClock
from tests.test_rollups_equal_raw import local_bounds

CREATED_EVENT_KEYS = {
    "id",
    "event",
    "value",
    "url",
    "path",
    "referrer",
    "country",
    "source",
    "unique_hash",
    "visitor_hash",
    "created_at",
}


async def test_create_event_seed_example(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events",
        json={
            "event": "signup.started",
            "value": "pricing",
            "ip_address": "8.8.8.8",
            "visitor_id": "user-123",
        },
        headers=api.write,
    )
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "created"
    assert set(body["event"]) == CREATED_EVENT_KEYS
    event = body["event"]
    assert (event["event"], event["value"], event["country"]) == ("signup.started", "pricing", "US")
    assert event["url"] is None and event["path"] is None
    assert event["created_at"] == "2026-02-14T10:00:00Z"
    assert "8.8.8.8" not in r.text


async def test_event_with_path_gets_site_url_and_enrichment(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events",
        json={
            "event": "file.download",
            "path": "guides/pricing.pdf?utm_source=newsletter",
            "referrer": "https://news.ycombinator.com/item?id=1",
            "user_agent": SAFARI_MAC,
        },
        headers=api.write,
    )
    assert r.status_code == 201
    event = r.json()["event"]
    assert event["path"] == "/guides/pricing.pdf"
    assert event["url"] == "https://example.com/guides/pricing.pdf"
    assert event["source"] == "newsletter"
    listed = await api.client.get(f"/api/v1/sites/{api.site.id}/events", headers=api.auth())
    row = listed.json()["events"][0]
    assert (row["browser_name"], row["platform_name"], row["is_mobile"]) == (
        "Safari",
        "macOS",
        False,
    )


async def test_event_batch_seed_example(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events/batch",
        json=[
            {"event": "signup.started", "value": "pricing", "country": "PL"},
            {"event": "signup.completed", "ip_address": "8.8.8.8"},
            {"event": "signup.cancelled", "ip_address": "999.999.999.999"},
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
    listed = await api.client.get(f"/api/v1/sites/{api.site.id}/events", headers=api.auth())
    countries = {e["event"]: e["country"] for e in listed.json()["events"]}
    assert countries == {"signup.started": "PL", "signup.completed": "US", "signup.cancelled": "XX"}


async def test_event_batch_is_partial_success(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events/batch",
        json=[
            {"event": "ok.one"},
            {"event": "bad"},
            {"event": "bot.visit", "user_agent": "curl/8.5.0"},
            {"event": 5},
            {"event": "ok.two", "path": "/x"},
        ],
        headers=api.write,
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["created_count"], body["ignored_count"], body["error_count"]) == (2, 1, 2)
    assert [x["status"] for x in body["results"]] == [
        "created",
        "error",
        "ignored",
        "error",
        "created",
    ]
    page = await api.engine.events(api.site.id)
    assert isinstance(page, tinytrack.EventsPage)
    assert sorted(e.event for e in page.events) == ["ok.one", "ok.two"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"event": "click"}, "Event must be 'category.action' format (2+ dot-separated segments)"),
        ({"event": "a."}, "Event must be 'category.action' format (2+ dot-separated segments)"),
        ({"event": ".b"}, "Event must be 'category.action' format (2+ dot-separated segments)"),
        ({"event": "   "}, "Event can't be blank"),
        ({"value": "x"}, "Event can't be blank"),
        ({"event": "a.b", "country": "usa"}, "Country must be a 2-letter uppercase code"),
        ({"event": "a.b", "revenue": "ten"}, "Revenue must be a decimal number"),
        ({"event": "a.b", "revenue": "0.0000001"}, "Revenue must be a decimal number"),
        ({"event": "a.b", "currency": "euro", "revenue": 1}, "Expected `str` matching regex"),
        (
            {"event": "a.b", "properties": {"nested": {"x": 1}}},
            "Expected `bool | int | float | str | null`",
        ),
        ({"event": ["a.b"]}, "Expected `str | null`, got `array`"),
        ({"event": "a.b", "value": "v" * 1025}, "Expected `str` of length <= 1024"),
    ],
)
async def test_invalid_event_is_422_with_errors(api: Api, body: object, error: str) -> None:
    r = await api.client.post(f"/api/v1/sites/{api.site.id}/events", json=body, headers=api.write)
    assert r.status_code == 422
    data = r.json()
    assert data["status"] == "error"
    assert data["errors"][0].startswith(error)
    assert data["error"] == data["errors"][0]


async def test_event_writes_need_a_full_access_key(api: Api) -> None:
    for path, body in (("events", {"event": "a.b"}), ("events/batch", [{"event": "a.b"}])):
        r = await api.client.post(
            f"/api/v1/sites/{api.site.id}/{path}", json=body, headers=api.auth()
        )
        assert r.status_code == 403
        assert "error" in r.json()
        r = await api.client.post(f"/api/v1/sites/{api.site.id}/{path}", json=body)
        assert r.status_code == 401
    r = await api.client.post("/api/v1/sites/999/events", json={"event": "a.b"}, headers=api.write)
    assert r.status_code == 404
    assert r.json() == {"error": "Site not found"}


async def test_ignored_events_are_202_and_not_stored(api: Api) -> None:
    site = await api.engine.create_site("https://other.example", ignore_paths=["/admin/*"])
    url = f"/api/v1/sites/{site.id}/events"
    r = await api.client.post(url, json={"event": "a.b", "path": "/admin/x"}, headers=api.write)
    assert (r.status_code, r.json()) == (
        202,
        {"status": "ignored", "reason": "Event matched ignore rules"},
    )
    r = await api.client.post(
        url, json={"event": "a.b", "user_agent": "python-requests/2.32"}, headers=api.write
    )
    assert r.status_code == 202
    assert r.json()["status"] == "ignored"
    page = await api.engine.events(site.id)
    assert isinstance(page, tinytrack.EventsPage)
    assert page.pagination.total_count == 0


async def test_order_id_deduplicates_and_revenue_is_exact(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/events"
    order = {
        "event": "checkout.completed",
        "order_id": "A-1001",
        "revenue": "19.99",
        "currency": "EUR",
        "properties": {"plan": "pro", "seats": 3, "trial": False},
    }
    first = await api.client.post(url, json=order, headers=api.write)
    assert first.status_code == 201
    again = await api.client.post(url, json=order, headers=api.write)
    assert again.status_code == 202
    assert again.json() == {"status": "ignored", "reason": "Order id has already been recorded"}
    batch = await api.client.post(
        url + "/batch",
        json=[
            order,
            {**order, "order_id": "A-1002", "revenue": 0.1},
            {**order, "order_id": "A-1002"},
        ],
        headers=api.write,
    )
    assert [x["status"] for x in batch.json()["results"]] == ["ignored", "created", "ignored"]
    listed = (await api.client.get(url, headers=api.auth())).json()["events"]
    assert [(e["order_id"], e["revenue"], e["currency"]) for e in listed] == [
        ("A-1002", 0.1, "EUR"),
        ("A-1001", 19.99, "EUR"),
    ]
    assert listed[1]["properties"] == {"plan": "pro", "seats": 3, "trial": False}
    with sqlite3.connect(api.engine.path) as conn:
        micros = conn.execute("SELECT SUM(revenue_micros) FROM events").fetchone()[0]
    assert micros == 20_090_000


async def test_read_events_raw_grouped_and_filtered(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/events"
    bodies: list[dict[str, Any]] = [
        {"event": "file.download", "value": "guide.pdf", "path": "/docs", "ip_address": "8.8.8.8"},
        {"event": "file.download", "value": "guide.pdf", "path": "/docs", "ip_address": "8.8.8.8"},
        {"event": "file.download", "value": "deck.pdf", "path": "/", "user_agent": CHROME_ANDROID},
        {"event": "button.click", "path": "/"},
    ]
    r = await api.client.post(url + "/batch", json=bodies, headers=api.write)
    assert r.json()["created_count"] == 4

    raw = (await api.client.get(url, headers=api.auth())).json()
    assert set(raw) == {"events", "pagination", "filters"}
    assert raw["pagination"]["total_count"] == 4
    assert raw["filters"] == {
        "start_date": "2026-01-15",
        "end_date": "2026-02-14",
        "time_zone": "utc",
        "event": None,
        "value": None,
        "path": None,
        "grouped": False,
    }

    grouped = (await api.client.get(url, params={"grouped": "true"}, headers=api.auth())).json()
    assert grouped["grouped_events"] == [
        {"event": "file.download", "event_count": 3, "unique_count": 2},
        {"event": "button.click", "event_count": 1, "unique_count": 1},
    ]
    assert grouped["filters"]["group_by"] == "event"
    by_value = (
        await api.client.get(
            url,
            params={"grouped": "true", "group_by": "value", "event": "file.download"},
            headers=api.auth(),
        )
    ).json()
    assert by_value["grouped_events"] == [
        {"value": "guide.pdf", "event_count": 2, "unique_count": 1},
        {"value": "deck.pdf", "event_count": 1, "unique_count": 1},
    ]
    by_path = (
        await api.client.get(
            url, params={"grouped": "true", "group_by": "path"}, headers=api.auth()
        )
    ).json()
    assert {g["path"]: g["event_count"] for g in by_path["grouped_events"]} == {"/docs": 2, "/": 2}
    only_root = (await api.client.get(url, params={"path": "/"}, headers=api.auth())).json()
    assert sorted(e["event"] for e in only_root["events"]) == ["button.click", "file.download"]


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "country", "grouped": "true"},
        {"per_page": "1001"},
        {"page": "0"},
        {"start_date": "2026-02-30"},
        {"start_date": "2023-01-01", "end_date": "2026-01-01"},
        {"time_zone": "Europe/Warsaw"},
        {"grouped": "maybe"},
    ],
)
async def test_bad_event_query_parameters_are_400(api: Api, params: dict[str, str]) -> None:
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/events", params=params, headers=api.auth()
    )
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


async def test_openapi_and_discovery_list_the_event_endpoints(api: Api) -> None:
    doc = (await api.client.get("/api/v1/openapi.json")).json()
    post = doc["paths"]["/api/v1/sites/{site_id}/events"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventIn"
    }
    names = {p["name"] for p in doc["paths"]["/api/v1/sites/{site_id}/events"]["get"]["parameters"]}
    assert {"event", "value", "path", "grouped", "group_by", "per_page"} <= names
    endpoints = (await api.client.get("/api/v1")).json()["endpoints"]
    assert {"method": "POST", "path": "/sites/{id}/events/batch", "access": "full_access"} in (
        endpoints
    )


# -- grouped events from rollups equal plain SQL over the raw rows -------------------------------

START = dt.datetime(2026, 3, 26, 0, 0, tzinfo=dt.UTC)
event_strategy = st.fixed_dictionaries(
    {
        "hour": st.integers(0, 24 * 12 - 1),
        "event": st.sampled_from(["a.b", "file.download", "x.y.z"]),
        "value": st.sampled_from([None, "one", "two"]),
        "path": st.sampled_from([None, "/", "/p"]),
        "ip": st.sampled_from([None, "8.8.8.8", "81.2.69.142"]),
        "copies": st.integers(1, 2),
    }
)
COLUMNS = {"event": "name", "value": "value", "path": "path"}


async def check_events(
    db: Path, tz: str, items: list[dict[str, Any]], late: list[dict[str, Any]]
) -> None:
    clock = FakeClock(START.timestamp())
    async with tinytrack.open(db, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone=tz)

        async def record(item: dict[str, Any]) -> None:
            clock.now = START.timestamp() + item["hour"] * 3600
            event = tinytrack.EventIn(
                event=item["event"], value=item["value"], path=item["path"], ip_address=item["ip"]
            )
            result = await engine.record_events(site.id, [event] * item["copies"])
            assert result.created_count == item["copies"]

        for item in sorted(items, key=lambda i: i["hour"]):
            await record(item)
        # Build the rollup pyramid's blocks, then add late events into built blocks.
        clock.now = START.timestamp() + 20 * 86400
        await engine.compact_rollups()
        for item in late:
            await record(item)
        clock.now = START.timestamp() + 20 * 86400
        for first, last in ((0, 15), (2, 9), (4, 4)):
            start = START.date() + dt.timedelta(days=first)
            end = START.date() + dt.timedelta(days=last)
            for mode in ("utc", "user"):
                lo, hi = local_bounds("UTC" if mode == "utc" else tz, start, end)
                for group_by, column in COLUMNS.items():
                    page = await engine.events(
                        site.id,
                        start_date=start,
                        end_date=end,
                        time_zone=mode,  # type: ignore[arg-type]
                        grouped=True,
                        group_by=group_by,  # type: ignore[arg-type]
                        per_page=1000,
                    )
                    assert isinstance(page, tinytrack.GroupedEventsPage)
                    with sqlite3.connect(db) as conn:
                        expected = {
                            r[0]: (r[1], r[2])
                            for r in conn.execute(
                                f"SELECT {column}, COUNT(*), SUM(is_unique) FROM events "
                                "WHERE site_id = ? AND created_at >= ? AND created_at < ? "
                                "GROUP BY 1",
                                (site.id, lo, hi),
                            )
                        }
                    got = {
                        g[group_by]: (g["event_count"], g["unique_count"])
                        for g in page.grouped_events
                    }
                    assert got == expected, (group_by, mode, start, end)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tz=st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York", "Pacific/Kiritimati"]),
    items=st.lists(event_strategy, min_size=1, max_size=30),
    late=st.lists(event_strategy, max_size=5),
)
def test_grouped_events_equal_raw_sql(
    tz: str, items: list[dict[str, Any]], late: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(check_events(Path(tmp) / "t.db", tz, items, late))
