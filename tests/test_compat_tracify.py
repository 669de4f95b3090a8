"""Tracify's server-side events API (seed 001) at POST /api/v1/events: the seed's five example
payloads through the real app (its conversion example's trailing comma included), identity
without anything reversible stored, de-duplicated purchases and conversions, per-event errors."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tinytrack
from tests.compat_support import counts, rows
from tests.conftest import Api, make_api
from tinytrack.errors import Overloaded

CSID = "00000000-0000-0000-0000-000000000000"
IDENTITY = {
    "d6c77f0e3e6c1c276c2e9e6e7e1d8d0a5b4e7c7e3f1e7e7e5d8f7e2e7d5a5d7e": 1,
    "b4e6a7c8d9e0f1d2c3b4a5e6f7e8d9c0b1a2d3e4f5d6c7e8a9b0c1d2e3f4d5c6": 2,
    "e7d6c5b4a3b2c1d0e9f8e7d6c5b4a3d2e1f0d9c8b7a6e5d4c3b2a1d0e9f8c7b6": 3,
    "a5b4c3d2e1f0e9d8c7b6a5d4c3b2e1d0c9b8a7d6e5f4c3b2a1d0e9f8c7b6a5d4": 4,
}
URL = "https://www.yourwebsite.com/your-full-path-here"
CAMPAIGN = {
    "trc_mcmp_id": "1111111111111111111",
    "trc_mag_id": "2222222222222222222",
    "trc_mad_id": "3333333333333333333",
    "utm_medium": "paid",
    "utm_source": "fb",
}


def example(kind: str, when: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "events": [
            {
                "url": URL,
                "customer_site_id": CSID,
                "identity_data": IDENTITY,
                "datetime": when,
                "type": kind,
                "data": data,
            }
        ]
    }


PAGEVIEW = example(
    "pageview",
    "2024-06-21 12:36:37",
    {
        "Referer": "https://www.referringwebsite.com",
        "origin": "https://www.yourwebsite.com",
        **CAMPAIGN,
    },
)
PRODUCTVIEW = example(
    "productview",
    "2024-06-21 12:36:40",
    {
        "Referer": "https://www.referringwebsite.com",
        "origin": "https://www.yourwebsite.com",
        **CAMPAIGN,
    },
)
ADDTOCART = example("addtocart", "2024-06-21 12:36:40", {"origin": "https://www.yourwebsite.com"})
PURCHASE = example(
    "purchase",
    "2024-06-21 12:36:40",
    {
        "origin": "https://www.yourwebsite.com",
        "order_id": "123456789",
        "currency": "EUR",
        "amount": "100.00",
        "ITEM1": "Name of Product 1",
        "AMT1": "25",
        "QTY1": "2",
        "ITEM2": "Name of Product 2",
        "AMT2": "50",
        "QTY2": "1",
    },
)
# The seed's conversion example, byte for byte as far as JSON goes: it ends its data object
# with a trailing comma ("amount": "100.00", }).
CONVERSION_TEXT = """{
    "events": [
        {
            "url": "https://www.yourwebsite.com/your-full-path-here",
            "customer_site_id": "00000000-0000-0000-0000-000000000000",
            "identity_data": {
                "d6c77f0e3e6c1c276c2e9e6e7e1d8d0a5b4e7c7e3f1e7e7e5d8f7e2e7d5a5d7e": 1,
                "b4e6a7c8d9e0f1d2c3b4a5e6f7e8d9c0b1a2d3e4f5d6c7e8a9b0c1d2e3f4d5c6": 2,
                "e7d6c5b4a3b2c1d0e9f8e7d6c5b4a3d2e1f0d9c8b7a6e5d4c3b2a1d0e9f8c7b6": 3,
                "a5b4c3d2e1f0e9d8c7b6a5d4c3b2e1d0c9b8a7d6e5f4c3b2a1d0e9f8c7b6a5d4": 4
            },
            "datetime": "2024-06-21 12:36:40",
            "type": "conversion",
            "data": {
                "origin": "https://www.yourwebsite.com",
                "conversion_id": "123456789",
                "currency": "EUR",
                "amount": "100.00",
            }
        }
    ]
}"""
AT = 1718973400  # 2024-06-21 12:36:40 UTC


@pytest.fixture
async def tracify(api: Api) -> Api:
    await api.engine.add_site_alias(api.site.id, CSID)
    return api


async def send(api: Api, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return await api.client.post(
        "/api/v1/events",
        content=content,
        headers={
            "Content-Type": "application/json",
            **(headers or {"tracify-token": api.full_key}),
        },
    )


def events(api: Api) -> list[tuple[Any, ...]]:
    return rows(
        api.engine.path,
        "SELECT name, created_at, path, url, source, referrer, properties, revenue_micros, "
        "currency, order_id, visitor_hash FROM events ORDER BY id",
    )


def ok(r: Any, status: str = "created") -> None:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert [x["status"] for x in body["results"]] == [status]


async def test_seed_pageview(tracify: Api) -> None:
    r = await send(tracify, PAGEVIEW, {"Authorization": f"Bearer {tracify.full_key}"})
    ok(r)
    assert r.json() == {
        "success": True,
        "received": 1,
        "accepted": 1,
        "duplicates": 0,
        "ignored": 0,
        "rejected": 0,
        "results": [{"index": 0, "status": "created", "id": 1}],
    }
    (hit,) = rows(
        tracify.engine.path,
        "SELECT created_at, path, url, source, referrer, visitor_hash FROM hits",
    )
    assert hit[:5] == (
        AT - 3,
        "/your-full-path-here",
        URL + "?trc_mcmp_id=1111111111111111111&trc_mag_id=2222222222222222222"
        "&trc_mad_id=3333333333333333333&utm_medium=paid&utm_source=fb",
        "fb",
        "https://www.referringwebsite.com",
    )
    # Nothing of identity_data is stored: not the keys, not the raw types.
    for key in IDENTITY:
        assert key.encode() not in Path(tracify.engine.path).read_bytes()
        wal = Path(str(tracify.engine.path) + "-wal")
        assert not wal.exists() or key.encode() not in wal.read_bytes()


async def test_seed_productview_and_addtocart(tracify: Api) -> None:
    ok(await send(tracify, PRODUCTVIEW))
    ok(await send(tracify, ADDTOCART))
    stored = events(tracify)
    assert [(e[0], e[1], e[2]) for e in stored] == [
        ("tracify.productview", AT, "/your-full-path-here"),
        ("tracify.addtocart", AT, "/your-full-path-here"),
    ]
    assert json.loads(stored[0][6]) == {"origin": "https://www.yourwebsite.com", **CAMPAIGN}
    assert (stored[0][4], stored[0][5]) == ("fb", "https://www.referringwebsite.com")
    assert stored[1][5] is None  # the add-to-cart example has no Referer
    assert json.loads(stored[1][6]) == {"origin": "https://www.yourwebsite.com"}
    assert stored[0][10] == stored[1][10]  # one visitor, from the identity data


async def test_seed_purchase_is_recorded_once(tracify: Api) -> None:
    ok(await send(tracify, PURCHASE))
    again = await send(tracify, PURCHASE)
    ok(again, "duplicate")
    assert again.json()["duplicates"] == 1
    ((name, at, _p, _u, _s, _r, props, micros, currency, order, _v),) = events(tracify)
    assert (name, at, micros, currency, order) == (
        "tracify.purchase",
        AT,
        100_000_000,
        "EUR",
        "123456789",
    )
    assert json.loads(props) == {
        "origin": "https://www.yourwebsite.com",
        "order_id": "123456789",
        "ITEM1": "Name of Product 1",
        "AMT1": "25",
        "QTY1": "2",
        "ITEM2": "Name of Product 2",
        "AMT2": "50",
        "QTY2": "1",
    }


async def test_seed_conversion_with_its_trailing_comma_is_recorded_once(tracify: Api) -> None:
    ok(await send(tracify, PURCHASE))
    r = await send(tracify, CONVERSION_TEXT)
    ok(r)  # the same id as the purchase's, but a conversion id: its own
    ok(await send(tracify, CONVERSION_TEXT), "duplicate")
    stored = events(tracify)
    assert [(e[0], e[7], e[8], e[9]) for e in stored] == [
        ("tracify.purchase", 100_000_000, "EUR", "123456789"),
        ("tracify.conversion", 100_000_000, "EUR", "conversion:123456789"),
    ]
    grouped = await tracify.client.get(
        f"/api/v1/sites/{tracify.site.id}/events",
        params={"grouped": "true", "start_date": "2024-06-21", "end_date": "2024-06-21"},
        headers=tracify.auth(),
    )
    assert sorted((g["event"], g["revenue"]) for g in grouped.json()["grouped_events"]) == [
        ("tracify.conversion", [{"currency": "EUR", "amount": 100.0, "count": 1}]),
        ("tracify.purchase", [{"currency": "EUR", "amount": 100.0, "count": 1}]),
    ]


async def test_one_request_with_every_example(tracify: Api) -> None:
    batch = {
        "events": [
            *PAGEVIEW["events"],
            *PRODUCTVIEW["events"],
            *ADDTOCART["events"],
            *PURCHASE["events"],
            *PURCHASE["events"],  # the same order twice in one request: stored once
            *json.loads(CONVERSION_TEXT.replace('"100.00",\n', '"100.00"\n'))["events"],
        ]
    }
    r = await send(tracify, batch)
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]] == [
        "created",
        "created",
        "created",
        "created",
        "duplicate",
        "created",
    ]
    assert counts(tracify.engine.path)["hits"] == 1
    assert counts(tracify.engine.path)["events"] == 4


def calc_group(dt: str) -> str:
    """The seed's Python anonymization sample (``calcGroup``), as given."""
    digest = hashlib.sha256(dt.encode()).hexdigest()
    group = digest[:-5]
    return hashlib.sha256(group.encode()).hexdigest()


async def test_seed_anonymization_sample_makes_the_identity(tracify: Api) -> None:
    """identity_data built with the seed's ``calcGroup``: the e-mail (1), the session id from
    ``"192.168.1.1|Mozilla/5.0"`` (2), the IP (3) and the user agent (4). The e-mail is the
    visitor across devices; without it, the session id is."""

    def identity(ip: str, ua: str, email: str | None = None) -> dict[str, int]:
        out = {calc_group(f"{ip}|{ua}"): 2, calc_group(ip): 3, calc_group(ua): 4}
        return {calc_group(email): 1, **out} if email else out

    sent = [
        (PAGEVIEW, identity("192.168.1.1", "Mozilla/5.0", "billy@billy.com")),
        (ADDTOCART, identity("10.0.0.7", "Safari/605.1.15", "billy@billy.com")),
        (ADDTOCART, identity("192.168.1.1", "Mozilla/5.0")),
    ]
    for payload, ids in sent:
        body = copy.deepcopy(payload)
        body["events"][0]["identity_data"] = ids
        ok(await send(tracify, body))
    ((hit_visitor,),) = rows(tracify.engine.path, "SELECT visitor_hash FROM hits")
    event_visitors = [e[10] for e in events(tracify)]
    assert event_visitors[0] == hit_visitor != event_visitors[1]
    # Neither the anonymized identifiers nor what they were made from are stored.
    files = [Path(tracify.engine.path), Path(str(tracify.engine.path) + "-wal")]
    stored = b"".join(f.read_bytes() for f in files if f.exists())
    for _payload, ids in sent:
        for key in ids:
            assert key.encode() not in stored
    for raw in (b"billy@billy.com", b"192.168.1.1", b"10.0.0.7"):
        assert raw not in stored


async def test_url_parameters_object_and_identity_fallbacks(tracify: Api) -> None:
    body = copy.deepcopy(ADDTOCART)
    event = body["events"][0]
    event["data"]["url_parameters"] = {"utm_source": "newsletter", "gclid": "abc"}
    event["identity_data"] = {"aa11": 3, "bb22": 4}
    ok(await send(tracify, body))
    event["identity_data"] = {"cc33": 2, "aa11": 3, "bb22": 4}
    ok(await send(tracify, body))
    event["identity_data"] = {"bb22": 4, "aa11": 3}
    ok(await send(tracify, body))
    stored = events(tracify)
    assert stored[0][3] == URL + "?utm_source=newsletter&gclid=abc"
    assert stored[0][4] == "newsletter"
    assert json.loads(stored[0][6]) == {
        "origin": "https://www.yourwebsite.com",
        "utm_source": "newsletter",
        "gclid": "abc",
    }
    assert stored[0][10] == stored[2][10] != stored[1][10]  # IP + UA, then the session id


async def test_per_event_errors_keep_the_valid_events(tracify: Api) -> None:
    good = ADDTOCART["events"][0]
    bad_purchase = copy.deepcopy(PURCHASE["events"][0])
    del bad_purchase["data"]["order_id"]
    bad_purchase["data"]["currency"] = "euro"
    cases = [
        good,
        bad_purchase,
        {**good, "type": "refund"},
        {**good, "customer_site_id": "11111111-1111-1111-1111-111111111111"},
        {**good, "identity_data": {"aa": 3}},
        {**good, "identity_data": {"aa": 5, "bb": 4}},
        {**good, "identity_data": {"not hashed@example.com": 3, "bb": 4}},
        {**good, "datetime": "21.06.2024 12:36"},
        {**good, "datetime": "2024-02-30 12:00:00"},
        {**good, "data": {}},
        {**good, "data": {"origin": "x", "nested": {"a": 1}}},
        {**good, "url": "/relative"},
        {**{k: v for k, v in good.items() if k != "url"}, "type": "pageview"},
        "not an object",
    ]
    r = await send(tracify, {"events": cases})
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, len(cases) - 1)
    results = body["results"]
    assert results[0]["status"] == "created"
    assert results[1]["errors"] == [
        "data.order_id is required for purchase events",
        "data.currency is longer than 3 characters",
        "data.currency is required: a 3-letter ISO 4217 code such as EUR",
    ]
    expected = [
        "type must be one of",
        "customer_site_id names no site",
        "identity_data needs the anonymized IP address (3) and user agent (4)",
        "identity_data values must be 1, 2, 3 or 4",
        "identity_data keys must be anonymized",
        "datetime must be formatted %Y-%m-%d %H:%M:%S (UTC)",
        "datetime is not a valid date and time",
        "data.origin is required",
        "data.nested must be a string",
        "url must be a full URL",
        "url is required for pageview events",
        "an event must be a JSON object",
    ]
    for result, start in zip(results[2:], expected, strict=True):
        assert result["status"] == "error"
        assert result["errors"][0].startswith(start), result
    assert counts(tracify.engine.path)["events"] == 1


async def test_all_events_invalid_is_400_and_stores_nothing(tracify: Api) -> None:
    bad = copy.deepcopy(PURCHASE)
    bad["events"][0]["data"]["amount"] = "lots"
    before = counts(tracify.engine.path)
    r = await send(tracify, bad)
    assert r.status_code == 400
    assert r.json()["success"] is False
    assert r.json()["results"][0]["errors"] == [
        "Revenue must be a decimal number with at most 6 decimal places"
    ]
    assert counts(tracify.engine.path) == before


async def test_conversion_without_its_required_fields_is_rejected(tracify: Api) -> None:
    """``conversion_id``, ``currency`` and ``amount`` are "Required for ... conversion events"."""
    body = json.loads(CONVERSION_TEXT.replace('"100.00",\n', '"100.00"\n'))
    data = body["events"][0]["data"]
    del data["conversion_id"], data["currency"], data["amount"]
    r = await send(tracify, body)
    assert r.status_code == 400
    assert r.json()["results"] == [
        {
            "index": 0,
            "status": "error",
            "errors": [
                "data.conversion_id is required for conversion events",
                "data.currency is required: a 3-letter ISO 4217 code such as EUR",
                "data.amount is required for conversion events",
            ],
        }
    ]
    assert counts(tracify.engine.path) == {t: 0 for t in counts(tracify.engine.path)}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"tracify-token": "tt-fa-wrong"}, 401),
        ({"Authorization": "Basic abc"}, 401),
        (None, 200),
    ],
)
async def test_keys(tracify: Api, headers: dict[str, str] | None, status: int) -> None:
    r = await tracify.client.post(
        "/api/v1/events",
        json=ADDTOCART,
        headers=headers if headers is not None else {"tracify-token": tracify.full_key},
    )
    assert r.status_code == status
    if status == 401:
        assert r.json()["success"] is False and r.json()["error"].startswith("unauthorized")


async def test_read_only_key_is_refused(tracify: Api) -> None:
    r = await send(tracify, ADDTOCART, {"tracify-token": tracify.read_key})
    assert r.status_code == 401
    assert counts(tracify.engine.path)["events"] == 0


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"{nope", 400, "Body must be JSON"),
        (b"[]", 400, "non-empty 'events' array"),
        (b'{"events": {}}', 400, "non-empty 'events' array"),
        (b'{"events": []}', 400, "non-empty 'events' array"),
        (json.dumps({"events": [{}] * 501}).encode(), 400, "At most 500 events per request"),
        (b'{"events": ["' + b"x" * (3 * 1024 * 1024) + b'"]}', 413, "Request body too large"),
    ],
)
async def test_malformed_requests(tracify: Api, content: bytes, status: int, error: str) -> None:
    r = await tracify.client.post(
        "/api/v1/events",
        content=content,
        headers={"tracify-token": tracify.full_key, "Content-Type": "application/json"},
    )
    assert r.status_code == status
    assert r.json()["success"] is False
    assert error in r.json()["error"]
    assert counts(tracify.engine.path) == {t: 0 for t in counts(tracify.engine.path)}


async def test_site_by_uid_or_id(api: Api) -> None:
    for name in (api.site.uid, str(api.site.id)):
        body = copy.deepcopy(ADDTOCART)
        body["events"][0]["customer_site_id"] = name
        ok(await send(api, body))


@pytest.fixture
async def limited(engine: tinytrack.Engine) -> AsyncIterator[Api]:
    async for value in make_api(engine, rate_limit=2):
        await value.engine.add_site_alias(value.site.id, CSID)
        yield value


async def test_rate_limit_is_429_with_retry_after(limited: Api) -> None:
    statuses = [(await send(limited, ADDTOCART)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = await send(limited, ADDTOCART)
    assert r.json() == {"success": False, "error": "Rate limit exceeded"}
    assert int(r.headers["retry-after"]) >= 1
    assert counts(limited.engine.path)["events"] == 2


async def test_overloaded_is_503_with_retry_after(
    tracify: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(*_args: Any, **_kwargs: Any) -> Any:
        raise Overloaded("Too many writes queued; retry shortly", retry_after=2)

    monkeypatch.setattr(tracify.engine, "track_many", full)
    r = await send(tracify, PURCHASE)
    assert r.status_code == 503
    assert r.json() == {"success": False, "error": "Too many writes queued; retry shortly"}
    assert r.headers["retry-after"] == "2"
