"""Woopra's HTTP tracking API (seed 003) at /track/ce, /track/identify, /track/ping: the seed's
example, projects, visitors, sessions (timeout, ping), page views with campaign data, secure
tracking, the forgiving parsing, and the official Python SDK against a real server."""

from __future__ import annotations

import contextlib
import http.client
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import tinytrack
from tests.compat_support import counts, rows
from tests.conftest import FIREFOX_LINUX, Api, FakeClock
from tinytrack.errors import Overloaded
from tinytrack.testing import serve

SEED_QUERY = (
    "project=myproject.com&event=bark&timestamp= 1492030800000&cv_name=Rio"
    "&ce_campaign_name=Teach+Speak+Command&ce_bark_volume=loud&cs_is_post_nap=true"
)


async def track(api: Api, endpoint: str = "ce", **params: Any) -> httpx.Response:
    return await api.client.get(f"/track/{endpoint}", params=params)


def events(api: Api) -> list[tuple[Any, ...]]:
    return rows(
        api.engine.path,
        "SELECT name, properties, path, url, source, created_at, visitor_hash FROM events "
        "ORDER BY id",
    )


async def test_seed_example(api: Api) -> None:
    """``?project=myproject.com&event=bark&timestamp= 1492030800000&cv_name=Rio
    &ce_campaign_name=Teach+Speak+Command&ce_bark_volume=loud&cs_is_post_nap=true`` (the seed's
    example, its space included; the seed leaves encoding out "for legibility")."""
    before = counts(api.engine.path)
    r = await api.client.get("/track/ce?" + SEED_QUERY.replace(" ", "%20"))
    assert r.status_code == 403  # "Your project is not registered"
    assert counts(api.engine.path) == before

    site = await api.engine.create_site("https://myproject.com")
    r = await api.client.get("/track/ce?" + SEED_QUERY.replace(" ", "%20"))
    assert r.status_code == 200
    assert r.headers["x-tinytrack-result"] == "created"
    ((name, props, _path, _url, _source, created, visitor),) = events(api)
    assert name == "woopra.bark"
    assert props == '{"campaign_name":"Teach Speak Command","bark_volume":"loud"}'
    assert created == 1492030800  # the historical timestamp, not the time of receipt
    assert await api.engine.visitor_properties(site.id, visitor) == {"name": "Rio"}
    page = await api.engine.sessions(
        site.id,
        start_date=tinytrack.engine.clock.day_from_number(1492030800 // 86400),
        end_date=tinytrack.engine.clock.day_from_number(1492030800 // 86400),
    )
    (session,) = page.sessions
    assert session.properties == {"is_post_nap": "true"}
    assert session.visitor_properties == {"name": "Rio"}
    assert (session.started_at, session.timeout) == ("2017-04-12T21:00:00Z", 30)
    listed = await api.client.get(
        f"/api/v1/sites/{site.id}/events",
        params={"start_date": "2017-04-12", "end_date": "2017-04-12"},
        headers=api.auth(),
    )
    (event,) = listed.json()["events"]
    assert event["properties"] == {"campaign_name": "Teach Speak Command", "bark_volume": "loud"}


@pytest.mark.parametrize("name", ["project", "host", "domain", "website", "alias"])
async def test_project_parameters(api: Api, name: str) -> None:
    r = await track(api, **{name: "example.com", "event": "signup", "cookie": "c1"})
    assert r.status_code == 200
    assert [e[0] for e in events(api)] == ["woopra.signup"]


async def test_project_by_www_domain_uid_and_alias(api: Api) -> None:
    await api.engine.add_site_alias(api.site.id, "my-woopra-project")
    for project in ("www.example.com", api.site.uid, "my-woopra-project", "EXAMPLE.com"):
        r = await track(api, project=project, event="x", cookie="c")
        assert r.status_code == 200, project
    assert len(events(api)) == 4


@pytest.mark.parametrize(
    "params",
    [{"event": "x"}, {"project": "nosuch.example", "event": "x"}, {"project": " ", "event": "x"}],
)
async def test_unknown_or_missing_project_is_403(api: Api, params: dict[str, str]) -> None:
    before = counts(api.engine.path)
    for endpoint in ("ce", "identify", "ping"):
        r = await track(api, endpoint, **params, cv_name="x")
        assert r.status_code == 403
        assert r.headers["x-tinytrack-result"].startswith("ignored:")
    assert counts(api.engine.path) == before


async def test_event_name_from_event_or_ce_name(api: Api) -> None:
    await track(api, project="example.com", event="order.completed", ce_name="Gold")
    await track(api, project="example.com", ce_name="signup", ce_plan="Gold")
    await track(api, project="example.com", event=".a..b.")
    await track(api, project="example.com", event="...", ce_url="/dots")  # no name: page view
    assert [(e[0], e[1]) for e in events(api)] == [
        ("order.completed", '{"name":"Gold"}'),  # already category.action: kept as is
        ("woopra.signup", '{"plan":"Gold"}'),
        ("a.b", None),
    ]
    assert rows(api.engine.path, "SELECT path FROM hits") == [("/dots",)]


async def test_page_view_with_campaign_data(api: Api) -> None:
    r = await track(
        api,
        project="example.com",
        event="pv",
        cookie="c1",
        ce_url="/pricing?utm_source=newsletter&utm_campaign=spring&secret=1",
        ce_title="Pricing",
        referer="https://news.ycombinator.com/item?id=1",
    )
    assert r.status_code == 200
    r = await track(
        api,
        project="example.com",
        event="pv",
        cookie="c1",
        ce_uri="https://example.com/docs?utm_source=x&utm_medium=email&token=abc",
    )
    assert r.status_code == 200
    assert rows(api.engine.path, "SELECT path, url, source, referrer FROM hits ORDER BY id") == [
        ("/pricing", None, "newsletter", "https://news.ycombinator.com/item?id=1"),
        ("/docs", "https://example.com/docs?utm_source=x&utm_medium=email", "x", None),
    ]
    assert counts(api.engine.path)["events"] == 0


async def test_conventional_campaign_fields(api: Api) -> None:
    """The seed's conventional fields: "Sending ce_campaign_name will ... display the campaign
    data for that event". They stay event properties; ``ce_campaign_source`` is the source."""
    r = await track(
        api,
        project="example.com",
        event="bark",
        cookie="c1",
        ce_campaign_name="Teach Speak Command",
        ce_campaign_source="newsletter",
        referer="https://news.ycombinator.com/",
    )
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (200, "created")
    ((name, props, _path, _url, source, _at, _visitor),) = events(api)
    assert (name, source) == ("woopra.bark", "newsletter")
    assert props == '{"campaign_name":"Teach Speak Command","campaign_source":"newsletter"}'


async def test_identify_sets_visitor_properties_only(api: Api) -> None:
    r = await track(
        api, "identify", project="example.com", cookie="c9", cv_name="Rio", cv_company="Acme"
    )
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (200, "updated")
    assert counts(api.engine.path)["events"] == counts(api.engine.path)["hits"] == 0
    (visitor,) = rows(api.engine.path, "SELECT DISTINCT visitor_hash FROM visitor_properties")[0]
    assert await api.engine.visitor_properties(api.site.id, visitor) == {
        "name": "Rio",
        "company": "Acme",
    }
    # The same cookie's later event is the same visitor.
    await track(api, project="example.com", event="x", cookie="c9")
    assert events(api)[0][6] == visitor


async def test_visitor_identity_order_and_random_cookie(api: Api) -> None:
    for params in (
        {"id": "u-1", "email": "a@b.c", "cookie": "k1"},
        {"cv_id": "u-1", "cookie": "k2"},
        {"email": "A@B.c", "cookie": "k3"},
        {"cv_email": "a@b.c"},
        {"cookie": "k3"},
        {},
        {},
    ):
        r = await track(api, project="example.com", event="x", **params)
        assert r.status_code == 200
    hashes = [e[6] for e in events(api)]
    assert hashes[0] == hashes[1]  # id
    assert hashes[2] == hashes[3] != hashes[0]  # e-mail (any case)
    assert len({hashes[4], hashes[5], hashes[6], hashes[0], hashes[2]}) == 5  # cookie, randoms
    # The same id sent to tinytrack's own API is the same visitor.
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/events",
        json={"event": "a.b", "visitor_id": "u-1"},
        headers=api.write,
    )
    assert r.json()["event"]["visitor_hash"] == hashes[0]


async def test_timeout_and_ping_keep_a_session(api: Api, clock: FakeClock) -> None:
    base = {"project": "example.com", "cookie": "k", "timeout": "60000"}
    await track(api, event="a", **base)
    clock.advance(50)
    r = await track(api, "ping", **base)
    assert r.headers["x-tinytrack-result"] == "updated"
    clock.advance(50)
    await track(api, event="b", **base)  # 100 s after "a", 50 s after the ping: same session
    clock.advance(61)
    await track(api, event="c", **base)  # timed out: a new session
    assert rows(api.engine.path, "SELECT id, actions, timeout FROM sessions ORDER BY id") == [
        (1, 2, 60),
        (2, 1, 60),
    ]
    clock.advance(120)
    r = await track(api, "ping", **base)
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (
        200,
        "ignored: No open session for this visitor",
    )


async def test_default_timeout_is_30_seconds(api: Api, clock: FakeClock) -> None:
    await track(api, event="a", project="example.com", cookie="k")
    clock.advance(31)
    await track(api, event="b", project="example.com", cookie="k")
    assert rows(api.engine.path, "SELECT COUNT(*) FROM sessions") == [(2,)]


async def test_future_timestamp_counts_as_now(api: Api, clock: FakeClock) -> None:
    await track(api, event="a", project="example.com", timestamp=str(int(clock.now + 9e5) * 1000))
    assert events(api)[0][5] == int(clock.now)


async def test_post_form_json_and_trailing_slash(api: Api) -> None:
    r = await api.client.post(
        "/track/ce/",
        content="project=example.com&event=form_post&ce_a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    r = await api.client.post(
        "/track/ce", json={"project": "example.com", "event": "json_post", "ce_n": 2, "ce_t": True}
    )
    assert r.status_code == 200
    r = await api.client.get("/track/identify/", params={"project": "example.com", "cv_x": "1"})
    assert r.status_code == 200
    assert [(e[0], e[1]) for e in events(api)] == [
        ("woopra.form_post", '{"a":"1"}'),
        ("woopra.json_post", '{"n":"2","t":"true"}'),
    ]


async def test_user_agent_header(api: Api) -> None:
    for agent in (FIREFOX_LINUX, "python-requests/2.32.3", "curl/8.5.0"):
        r = await api.client.get(
            "/track/ce",
            params={"project": "example.com", "event": "x"},
            headers={"User-Agent": agent},
        )
        assert r.headers["x-tinytrack-result"] == "created"
    r = await api.client.get(
        "/track/ce",
        params={"project": "example.com", "event": "x"},
        headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"},
    )
    assert (r.status_code, r.headers["x-tinytrack-result"][:21]) == (200, "ignored: Bot user age")
    browsers = rows(api.engine.path, "SELECT browser_name FROM events ORDER BY id")
    assert browsers == [("Firefox",), (None,), (None,)]


async def test_exclusions_are_403(api: Api) -> None:
    await api.engine.update_site(api.site.id, ignore_paths=["/admin*"])
    r = await track(api, project="example.com", event="pv", ce_url="/admin/users")
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (
        403,
        "ignored: Path matches ignore rule",
    )
    await api.engine.update_site(api.site.id, active=False)
    assert (await track(api, project="example.com", event="x")).status_code == 403
    assert counts(api.engine.path)["events"] == counts(api.engine.path)["hits"] == 0


async def test_secure_tracking_needs_a_full_access_key(api: Api) -> None:
    await api.engine.set_secure_tracking(api.site.id, True)
    assert await api.engine.secure_tracking(api.site.id)
    params = {"project": "example.com", "event": "x"}
    before = counts(api.engine.path)
    for headers in ({}, api.auth(), {"Authorization": "Bearer tt-fa-wrong"}):
        r = await api.client.get("/track/ce", params=params, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Basic"
    assert counts(api.engine.path) == before
    assert (await api.client.get("/track/ce", params=params, headers=api.write)).status_code == 200
    basic = httpx.BasicAuth("woopra", api.full_key)
    assert (await api.client.get("/track/ce", params=params, auth=basic)).status_code == 200
    assert len(events(api)) == 2


async def test_forgiving_parsing(api: Api, clock: FakeClock) -> None:
    r = await track(
        api,
        project="example.com",
        event="x" * 500,
        timestamp="yesterday",
        timeout="soon",
        ip="not-an-ip",
        **{"ce_" + "k" * 100: "v" * 5000},
        **{f"cv_p{i}": str(i) for i in range(80)},
    )
    assert r.status_code == 200
    ((name, props, _p, _u, _s, created, visitor),) = events(api)
    assert name == "woopra." + "x" * 200
    assert created == int(clock.now)
    assert props == '{"' + "k" * 64 + '":"' + "v" * 1024 + '"}'
    assert len(await api.engine.visitor_properties(api.site.id, visitor)) == 50


async def test_malformed_requests(api: Api) -> None:
    before = counts(api.engine.path)
    r = await api.client.get("/track/ce?project=example.com&" + "a=1&" * 300)
    assert r.status_code == 400
    r = await api.client.post(
        "/track/ce",
        content=b"project=example.com&x=" + b"y" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    r = await api.client.post(
        "/track/ce", content=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert counts(api.engine.path) == before


async def test_overloaded_is_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's "5XX -- There has been a server error": a full write queue, Retry-After."""

    async def full(*_args: Any, **_kwargs: Any) -> Any:
        raise Overloaded("Too many writes queued; retry shortly", retry_after=2)

    monkeypatch.setattr(api.engine, "track", full)
    for endpoint in ("ce", "identify", "ping"):
        r = await track(api, endpoint, project="example.com", event="x", cookie="c1")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert r.headers["x-tinytrack-result"] == "error: Too many writes queued; retry shortly"


# -- the official Python SDK (PyPI "woopra"), against a real server on loopback -------------------


@contextlib.contextmanager
def redirected(port: int) -> Iterator[list[str]]:
    """Point the SDK's hard-coded ``www.woopra.com`` at the test server. The SDK never reads an
    answer nor closes its connection; they are closed here, once the test is done."""
    import woopra

    asked: list[str] = []
    opened: list[http.client.HTTPConnection] = []

    def connect(host: str, *args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        asked.append(host)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        opened.append(conn)
        return conn

    original = woopra.HTTPConnection
    woopra.HTTPConnection = connect
    try:
        yield asked
    finally:
        woopra.HTTPConnection = original
        for conn in opened:
            conn.close()


def wait_for(check: Any, *, seconds: float = 20.0) -> Any:
    """Poll until ``check()`` is truthy (the SDK does not wait for the server's answer)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_official_python_sdk_records_events_and_visitor_properties(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import woopra

    caplog.set_level(logging.WARNING)
    with serve(site_url="https://shop.example") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        headers = {"Authorization": f"Bearer {server.read_key}"}
        with redirected(port) as asked:
            tracker = woopra.WoopraTracker("shop.example")
            tracker.set_user_agent(FIREFOX_LINUX)
            tracker.identify({"email": "rio@example.com", "name": "Rio", "plan": "Gold"})
            tracker.push()
            for i in range(20):
                tracker.track("signup", {"step": i, "company": "My Business"})
            tracker.track("order.completed", {"total": 49})

            def listed() -> list[dict[str, Any]]:
                r = httpx.get(
                    f"{server.api}/sites/{server.site_id}/events",
                    params={"per_page": "100"},
                    headers=headers,
                )
                found: list[dict[str, Any]] = r.json()["events"]
                return found if len(found) == 21 else []

            found = wait_for(listed)
        assert asked and set(asked) == {"www.woopra.com"}
        assert len(found) == 21  # no event lost although no answer was ever read
        names = sorted({e["event"] for e in found})
        assert names == ["order.completed", "woopra.signup"]
        steps = sorted(int(e["properties"]["step"]) for e in found if "step" in e["properties"])
        assert steps == list(range(20))
        assert found[0]["properties"]["app"] == "python"  # the SDK's ce_app
        assert {e["browser_name"] for e in found} == {"Firefox"}
        sessions = httpx.get(
            f"{server.api}/sites/{server.site_id}/sessions", headers=headers
        ).json()["sessions"]
        assert len({s["visitor_hash"] for s in sessions}) == 1  # one visitor, from the e-mail
        assert sessions[0]["visitor_properties"] == {
            "email": "rio@example.com",
            "name": "Rio",
            "plan": "Gold",
        }
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == []
