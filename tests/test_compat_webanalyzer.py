"""Web Analyzer App's measurement protocol (seed 002) at /api/v1/websites/{id}/track[/batch]:
every request example of the seed through the real app, what was stored and answered, and the
documented errors (400 validation_error, 401 unauthorized, 404 website_not_found, 429)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import tinytrack
from tests.compat_support import counts, rows
from tests.conftest import Api
from tinytrack.config import Settings
from tinytrack.errors import Overloaded
from tinytrack.server.app import create_app

VISITOR = "550e8400-e29b-41d4-a716-446655440000"
OTHER_VISITOR = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


async def post(api: Api, body: Any, *, batch: bool = False, key: str | None = None) -> Any:
    path = f"/api/v1/websites/{api.site.id}/track" + ("/batch" if batch else "")
    return await api.client.post(
        path,
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {key or api.full_key}",
            "Content-Type": "application/json",
        },
    )


def stored(api: Api) -> list[tuple[Any, ...]]:
    return rows(
        api.engine.path,
        "SELECT id, name, properties, url, path, revenue_micros, currency, visitor_hash "
        "FROM events ORDER BY id",
    )


# The seed's request bodies, in the order they appear (Stripe, form, CRM, e-mail, IoT, linking,
# PHP cURL, Node, Python, Ruby, retry, idempotent webhook), each with what it stores.
SEED_BODIES: list[tuple[dict[str, Any], str, dict[str, str], int | None]] = [
    (
        {
            "name": "purchase",
            "visitor_id": None,  # $session['metadata']['visitor_id'] ?? null
            "payload": {
                "order_id": "cs_test_a1b2c3",
                "amount": "49.99",  # number_format($session['amount_total'] / 100, 2)
                "currency": "EUR",
                "customer": "buyer@example.com",
            },
            "url": None,
        },
        "webanalyzer.purchase",
        {
            "order_id": "cs_test_a1b2c3",
            "amount": "49.99",
            "currency": "EUR",
            "customer": "buyer@example.com",
        },
        49_990_000,
    ),
    (
        {"name": "form_submit", "visitor_id": "", "payload": {"form": "contact", "subject": "Hi"}},
        "webanalyzer.form_submit",
        {"form": "contact", "subject": "Hi"},
        None,
    ),
    (
        {
            "name": "lead_created",
            "payload": {"lead_id": 42, "source": "website", "company": "Acme", "value": "5000"},
        },
        "webanalyzer.lead_created",
        {"lead_id": "42", "source": "website", "company": "Acme", "value": "5000"},
        None,
    ),
    (
        {"name": "email_open", "payload": {"campaign_id": "spring", "recipient": "a@b.c"}},
        "webanalyzer.email_open",
        {"campaign_id": "spring", "recipient": "a@b.c"},
        None,
    ),
    (
        {
            "name": "sensor_reading",
            "payload": {"sensor_id": "s-7", "temperature": "21.5", "humidity": "40"},
        },
        "webanalyzer.sensor_reading",
        {"sensor_id": "s-7", "temperature": "21.5", "humidity": "40"},
        None,
    ),
    (
        {"name": "purchase", "visitor_id": VISITOR, "payload": {"order_id": "evt_1"}},
        "webanalyzer.purchase",
        {"order_id": "evt_1"},
        None,
    ),
    (
        {"name": "server_action", "payload": {"action": "user_registered", "email": "u@e.com"}},
        "webanalyzer.server_action",
        {"action": "user_registered", "email": "u@e.com"},
        None,
    ),
    (
        {"name": "signup", "payload": {"plan": "free", "source": "organic"}},
        "webanalyzer.signup",
        {"plan": "free", "source": "organic"},
        None,
    ),
    (
        {
            "name": "invoice_paid",
            "payload": {"invoice_id": "INV-2024-001", "amount": "149.99", "currency": "USD"},
        },
        "webanalyzer.invoice_paid",
        {"invoice_id": "INV-2024-001", "amount": "149.99", "currency": "USD"},
        149_990_000,
    ),
    (
        {"name": "subscription_renewed", "payload": {"plan": "pro", "amount": "14.99"}},
        "webanalyzer.subscription_renewed",
        {"plan": "pro", "amount": "14.99"},
        14_990_000,
    ),
    (
        {"name": "server_retry", "payload": {"attempt": 1}},
        "webanalyzer.server_retry",
        {"attempt": "1"},
        None,
    ),
    (
        {"name": "purchase", "payload": {"order_id": "pi_3"}},
        "webanalyzer.purchase",
        {"order_id": "pi_3"},
        None,
    ),
]


async def test_seed_single_event_example(api: Api) -> None:
    body = {
        "name": "purchase",
        "payload": {"order_id": "ORD-1234", "amount": "49.99", "currency": "USD", "plan": "pro"},
        "visitor_id": VISITOR,
        "url": "https://example.com/checkout",
    }
    r = await post(api, body)
    assert r.status_code == 200
    event_id = r.json()["event_id"]
    assert r.json() == {"ok": True, "event_id": event_id}
    ((stored_id, name, props, url, path, micros, currency, visitor),) = stored(api)
    assert (stored_id, name, url, path, micros, currency) == (
        event_id,
        "webanalyzer.purchase",
        "https://example.com/checkout",
        "/checkout",
        49_990_000,
        "USD",
    )
    assert json.loads(props) == body["payload"]
    # The same visitor_id sent to tinytrack's own API is the same visitor.
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events",
        json={"event": "a.b", "visitor_id": VISITOR},
        headers=api.write,
    )
    assert r.json()["event"]["visitor_hash"] == visitor
    listed = await api.client.get(
        f"/api/v1/sites/{api.site.id}/events",
        params={"event": "webanalyzer.purchase"},
        headers=api.auth(),
    )
    (event,) = listed.json()["events"]
    assert (event["properties"], event["revenue"], event["currency"]) == (
        body["payload"],
        49.99,
        "USD",
    )


async def test_seed_batch_example(api: Api) -> None:
    body = {
        "events": [
            {
                "name": "purchase",
                "payload": {"order_id": "ORD-1001", "amount": "29.99"},
                "visitor_id": VISITOR,
            },
            {
                "name": "purchase",
                "payload": {"order_id": "ORD-1002", "amount": "59.99"},
                "visitor_id": OTHER_VISITOR,
            },
            {"name": "signup", "payload": {"source": "landing_page", "plan": "free"}},
        ]
    }
    r = await post(api, body, batch=True)
    assert r.status_code == 200
    ids = [row[0] for row in stored(api)]
    assert r.json() == {"ok": True, "processed": 3, "event_ids": ids}
    assert [(row[1], row[5]) for row in stored(api)] == [
        ("webanalyzer.purchase", 29_990_000),
        ("webanalyzer.purchase", 59_990_000),
        ("webanalyzer.signup", None),
    ]
    hashes = [row[7] for row in stored(api)]
    assert len(set(hashes)) == 3
    grouped = await api.client.get(
        f"/api/v1/sites/{api.site.id}/events", params={"grouped": "true"}, headers=api.auth()
    )
    assert grouped.json()["grouped_events"][0] == {
        "event": "webanalyzer.purchase",
        "event_count": 2,
        "unique_count": 2,
        "revenue": [{"currency": None, "amount": 89.98, "count": 2}],
    }


@pytest.mark.parametrize(("body", "name", "payload", "micros"), SEED_BODIES)
async def test_seed_code_examples(
    api: Api, body: dict[str, Any], name: str, payload: dict[str, str], micros: int | None
) -> None:
    r = await post(api, body)
    assert r.status_code == 200, r.text
    ((event_id, stored_name, props, *_rest),) = stored(api)
    assert r.json() == {"ok": True, "event_id": event_id}
    assert (stored_name, json.loads(props)) == (name, payload)
    assert stored(api)[0][5] == micros


async def test_url_and_referrer_fields(api: Api) -> None:
    """The table's ``url`` and ``referrer`` ("for attribution purposes"), and the SDK samples'
    default empty payload (Node ``payload = {}``, Ruby ``payload: {}``)."""
    r = await post(
        api,
        {
            "name": "signup",
            "payload": {},
            "url": "https://example.com/pricing?plan=pro",
            "referrer": "https://news.ycombinator.com/item?id=1",
        },
    )
    assert r.status_code == 200
    assert r.json() == {"ok": True, "event_id": stored(api)[0][0]}
    assert rows(api.engine.path, "SELECT name, properties, path, referrer, source FROM events") == [
        (
            "webanalyzer.signup",
            None,
            "/pricing",
            "https://news.ycombinator.com/item?id=1",
            "hackernews",  # the referrer's source, as for any tinytrack event
        )
    ]


async def test_payload_values_are_cast_to_strings_and_names_kept_when_dotted(api: Api) -> None:
    r = await post(
        api,
        {"name": "order.completed", "payload": {"n": 5, "f": 1.5, "yes": True, "no": False}},
    )
    assert r.status_code == 200
    assert [(row[1], json.loads(row[2])) for row in stored(api)] == [
        ("order.completed", {"n": "5", "f": "1.5", "yes": "true", "no": "false"})
    ]


@pytest.mark.parametrize(
    ("body", "batch", "message"),
    [
        ({}, False, "Object missing required field `name`"),
        ({"name": ""}, False, "Expected `str` of length >= 1"),
        ({"name": "x" * 129}, False, "Expected `str` of length <= 128"),
        ({"name": "x", "payload": {str(i): "v" for i in range(11)}}, False, "length <= 10"),
        ({"name": "x", "payload": {"k": "v" * 256}}, False, "longer than 255 characters"),
        (
            {"name": "x", "payload": {"k": {"nested": 1}}},
            False,
            "Expected `bool | int | float | str | null`",
        ),
        ({"name": "x", "payload": ["a"]}, False, "Expected `object | null`"),
        ({"name": "x", "visitor_id": "not-a-uuid"}, False, "visitor_id must be a UUID"),
        ({"name": "a..b"}, False, "Event must be 'category.action' format"),
        (b"{not json", False, "Body must be a JSON object"),
        (b"[]", False, "Expected `object`"),
        ({"events": []}, True, "events: 1 to 25 event objects are required"),
        ({"events": [{"name": "x"}] * 26}, True, "events: 1 to 25 event objects are required"),
        ({"events": [{"name": "ok"}, {"payload": {}}]}, True, "events[1]: Object missing"),
        ({"events": [{"name": "ok"}, {"name": "a..b"}]}, True, "events[1]: Event must be"),
        ({"name": "x"}, True, "Object missing required field `events`"),
    ],
)
async def test_validation_errors_store_nothing(
    api: Api, body: Any, batch: bool, message: str
) -> None:
    before = counts(api.engine.path)
    r = await post(api, body, batch=batch)
    assert r.status_code == 400
    assert r.json()["ok"] is False
    assert r.json()["error"] == "validation_error"
    assert message in r.json()["message"]
    assert counts(api.engine.path) == before


async def test_unauthorized_and_unknown_website(api: Api) -> None:
    body = {"name": "x"}
    for key in ("tt-fa-wrong", api.read_key):
        r = await post(api, body, key=key)
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
    r = await api.client.post(f"/api/v1/websites/{api.site.id}/track", json=body)
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    r = await api.client.post(
        f"/api/v1/websites/{api.site.id}/track",
        json=body,
        headers={"Authorization": f"Token {api.full_key}"},
    )
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    for website in ("999", "abc", "0"):
        r = await api.client.post(
            f"/api/v1/websites/{website}/track/batch",
            json={"events": [body]},
            headers=api.write,
        )
        assert r.status_code == 404
        assert r.json() == {
            "ok": False,
            "error": "website_not_found",
            "message": "Website not found",
        }
    assert counts(api.engine.path)["events"] == 0


async def test_website_alias(api: Api) -> None:
    await api.engine.add_site_alias(api.site.id, "7")  # the website id existing code sends
    r = await api.client.post("/api/v1/websites/7/track", json={"name": "x"}, headers=api.write)
    assert r.status_code == 200


async def test_oversized_body_is_rejected(api: Api) -> None:
    r = await post(api, {"name": "x", "payload": {"k": "v" * 70_000}})
    assert r.status_code == 413
    assert r.json()["error"] == "validation_error"


async def test_ignored_event_answers_null_id(api: Api) -> None:
    await api.engine.update_site(api.site.id, active=False)
    r = await post(api, {"name": "x"})
    assert r.json() == {"ok": True, "event_id": None}


@pytest.fixture
async def limited(engine: tinytrack.Engine) -> AsyncIterator[Api]:
    site = await engine.create_site("https://example.com")
    read = await engine.create_key("read_only")
    full = await engine.create_key("full_access")
    other = await engine.create_key("full_access")
    app = create_app(engine, settings=Settings(rate_limit=0, track_rate_limit=2))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        api = Api(client, engine, site, read.token, full.token)
        api.read_key = other.token  # a second full-access key, for the per-key check
        yield api


async def test_rate_limit_is_per_key_per_minute(limited: Api) -> None:
    statuses = [(await post(limited, {"name": "x"})).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = await post(limited, {"name": "x"})
    body = r.json()
    assert body["ok"] is False and body["error"] == "rate_limit_exceeded"
    assert body["retry_after"] == int(r.headers["retry-after"]) >= 1
    assert (await post(limited, {"name": "x"}, key=limited.read_key)).status_code == 200


@pytest.mark.parametrize(
    ("raised", "status", "code", "retry_after"),
    [
        (
            Overloaded("Too many writes queued; retry shortly", retry_after=2),
            503,
            "server_error",
            2,
        ),
        (RuntimeError("boom"), 500, "server_error", None),
    ],
)
async def test_server_errors(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    status: int,
    code: str,
    retry_after: int | None,
) -> None:
    """``500 server_error`` ("Retry with exponential backoff"); a full write queue is 503 with
    ``Retry-After``, as the seed's retry sample expects."""

    async def failing(*_args: Any, **_kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(api.engine, "track_many", failing)
    for batch in (False, True):
        body = {"events": [{"name": "x"}]} if batch else {"name": "x"}
        r = await post(api, body, batch=batch)
        assert r.status_code == status
        assert r.json()["ok"] is False and r.json()["error"] == code
        assert r.json().get("retry_after") == retry_after
        assert r.headers.get("retry-after") == (None if retry_after is None else str(retry_after))
