"""Hostile input never gives a 500: random bodies, parameters and headers at every endpoint
always get a 4xx/2xx with a JSON body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import Api
from tests.test_collector import Browserish, make_browserish

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
hit_like = st.fixed_dictionaries(
    {},
    optional={
        k: json_values | st.text(max_size=300)
        for k in (
            "path",
            "url",
            "referrer",
            "user_agent",
            "visitor_id",
            "ip_address",
            "country",
            "source",
            # events and kudos
            "event",
            "value",
            "properties",
            "revenue",
            "currency",
            "order_id",
            "custom_uid",
        )
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    hit_like.map(lambda v: json.dumps(v).encode()),
    st.lists(hit_like | json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
)
param_names = st.sampled_from(
    [
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
        "event",
        "value",
        "uid",
    ]
)
params = st.dictionaries(param_names, st.text(max_size=30), max_size=6)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_clean(status: int, body: bytes) -> None:
    assert status < 500, body
    payload = json.loads(body)
    if status >= 400:
        assert isinstance(payload.get("error"), str)


WRITES = ("hits", "hits/batch", "events", "events/batch", "kudos")
READS = ("hits", "events", "kudos", "leaderboard", "user_journeys")


@FUZZ
@given(body=bodies, endpoint=st.sampled_from(WRITES))
async def test_post_bodies(api: Api, body: bytes, endpoint: str) -> None:
    path = f"/api/v1/sites/{api.site.id}/{endpoint}"
    r = await api.client.post(
        path, content=body, headers={**api.write, "Content-Type": "application/json"}
    )
    assert_clean(r.status_code, r.content)


@FUZZ
@given(query=params, grouped=st.booleans(), endpoint=st.sampled_from(READS))
async def test_get_parameters(
    api: Api, query: dict[str, str], grouped: bool, endpoint: str
) -> None:
    if grouped:
        query = {**query, "grouped": "true"}
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/{endpoint}", params=query, headers=api.auth()
    )
    assert_clean(r.status_code, r.content)


@FUZZ
@given(uid=st.text(min_size=1, max_size=300))
async def test_delete_kudo_with_any_uid(api: Api, uid: str) -> None:
    r = await api.client.delete(
        f"/api/v1/sites/{api.site.id}/kudos/" + quote(uid, safe=""),
        headers=api.write,
    )
    assert_clean(r.status_code, r.content)


@FUZZ
@given(
    auth=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    site=st.text(
        alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=25
    ),
)
async def test_headers_and_path_ids(api: Api, auth: str, site: str) -> None:
    for path in (
        "/api/v1/me",
        f"/api/v1/sites/{site}",
        f"/api/v1/sites/{site}/hits",
        f"/api/v1/sites/{site}/leaderboard",
        f"/api/v1/sites/{site}/user_journeys",
    ):
        r = await api.client.get(path, headers={"Authorization": auth})
        assert_clean(r.status_code, r.content)


# -- the browser side: public, so anyone on the internet can send anything --------------------

origins = st.one_of(
    st.none(),
    st.sampled_from(["https://example.com", "null", "https://evil.test", "", "example.com"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@pytest.fixture
async def browser(engine: tinytrack.Engine) -> AsyncIterator[Browserish]:
    async for value in make_browserish(engine):
        yield value


@FUZZ
@given(body=bodies, kind=st.sampled_from(["", "/events", "/kudos"]), origin=origins)
async def test_collector_bodies(
    browser: Browserish, body: bytes, kind: str, origin: str | None
) -> None:
    headers = {"Content-Type": "text/plain", "User-Agent": "Mozilla/5.0 Firefox/128.0"}
    if origin is not None:
        headers["Origin"] = origin
    r = await browser.client.post(
        f"/collector/{browser.site.uid}{kind}", content=body, headers=headers
    )
    assert_clean(r.status_code, r.content)


@FUZZ
@given(
    query=st.lists(st.tuples(st.sampled_from(["path", "unique", "x"]), st.text(max_size=30))),
    widget=st.sampled_from(["hits", "kudos", "countries"]),
    uid=st.sampled_from(["", "nosuchsite", "%00", "a" * 300]),
)
async def test_widget_parameters(
    browser: Browserish, query: list[tuple[str, str]], widget: str, uid: str
) -> None:
    site = uid or browser.site.uid
    r = await browser.client.get(f"/widgets/{quote(site)}/{widget}", params=query[:60])
    assert_clean(r.status_code, r.content)


@FUZZ
@given(query=st.text(max_size=200), agent=st.text(max_size=100))
async def test_pixel_query_strings(browser: Browserish, query: str, agent: str) -> None:
    printable = agent.encode("ascii", "ignore").decode().replace("\r", "").replace("\n", "")
    r = await browser.client.get(
        f"/pixel/{browser.site.uid}.gif?{quote(query, safe='=&')}",
        headers={"User-Agent": printable},
    )
    assert r.status_code == 200 and r.content[:6] == b"GIF89a"


# -- other tools' formats (tinytrack.server.compat): each answers in its own shape, never 500 ------


@pytest.fixture
async def compat_api(engine: tinytrack.Engine) -> AsyncIterator[Api]:
    from tinytrack.config import Settings
    from tinytrack.server.app import create_app

    site = await engine.create_site("https://example.com")
    await engine.add_site_alias(site.id, "00000000-0000-0000-0000-000000000000")
    read = await engine.create_key("read_only")
    full = await engine.create_key("full_access")
    app = create_app(engine, settings=Settings(rate_limit=0, track_rate_limit=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, engine, site, read.token, full.token)


form_keys = st.sampled_from(
    [
        "site_id", "sitekey_admin", "ip_address", "session_id", "type", "href", "title", "ref",
        "ua", "custom[a]", "custom[]", "goal[id]", "goal[revenue]", "goal", "project", "host",
        "event", "ce_name", "ce_url", "ce_uri", "cv_name", "cs_x", "ce_", "cookie", "email", "id",
        "timestamp", "timeout", "ip", "referer",
    ]
)  # fmt: skip
form_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["1", "0", "-1", "99999999999999999999", "example.com", "goal", "custom",
                     "pv", "click", "outbound", "8.8.8.8", "::1", "/", "#x", "http://a.b/"]),
)  # fmt: skip
forms = st.lists(st.tuples(form_keys, form_values), max_size=12)


@FUZZ
@given(pairs=forms, post=st.booleans(), keyed=st.booleans())
async def test_clicky_parameters(
    compat_api: Api, pairs: list[tuple[str, str]], post: bool, keyed: bool
) -> None:
    if keyed:
        pairs = [("site_id", "1"), ("sitekey_admin", compat_api.full_key), *pairs]
    if post:
        r = await compat_api.client.post("/in.php", data=dict(pairs))
    else:
        r = await compat_api.client.get("/in.php", params=pairs)
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.status_code == 200 or r.text.startswith("error: ")


@FUZZ
@given(
    pairs=forms,
    endpoint=st.sampled_from(["ce", "ce/", "identify", "ping/"]),
    body=st.one_of(st.none(), bodies),
)
async def test_woopra_parameters(
    compat_api: Api, pairs: list[tuple[str, str]], endpoint: str, body: bytes | None
) -> None:
    pairs = [("project", "example.com"), *pairs]
    if body is None:
        r = await compat_api.client.get(f"/track/{endpoint}", params=pairs)
    else:
        r = await compat_api.client.post(
            f"/track/{endpoint}",
            params=pairs,
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 400, 403)


wa_events = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values | st.text(max_size=140),
        "payload": json_values | st.dictionaries(st.text(max_size=8), json_values, max_size=12),
        "visitor_id": json_values | st.just("550e8400-e29b-41d4-a716-446655440000"),
        "url": json_values | st.text(max_size=40),
        "referrer": json_values,
    },
)
wa_bodies = st.one_of(
    bodies,
    wa_events.map(lambda v: json.dumps(v).encode()),
    st.lists(wa_events, max_size=27).map(lambda v: json.dumps({"events": v}).encode()),
)


@FUZZ
@given(body=wa_bodies, batch=st.booleans(), website=st.sampled_from(["1", "2", "x", "1e3"]))
async def test_webanalyzer_bodies(compat_api: Api, body: bytes, batch: bool, website: str) -> None:
    r = await compat_api.client.post(
        f"/api/v1/websites/{website}/track" + ("/batch" if batch else ""),
        content=body,
        headers={**compat_api.write, "Content-Type": "application/json"},
    )
    assert r.status_code < 500, r.text
    payload = r.json()
    assert payload["ok"] is (r.status_code == 200)
    if r.status_code >= 400:
        assert payload["error"] in ("validation_error", "website_not_found")


tracify_data_keys = st.sampled_from(
    ["origin", "order_id", "conversion_id", "currency", "amount", "ITEM1", "url_parameters",
     "Referer", "utm_source"]
)  # fmt: skip
tracify_events = st.fixed_dictionaries(
    {},
    optional={
        "url": json_values | st.sampled_from(["https://example.com/a", "/x"]),
        "customer_site_id": json_values | st.just("00000000-0000-0000-0000-000000000000"),
        "identity_data": json_values
        | st.dictionaries(st.sampled_from(["aa", "bb", "c c"]), json_values, max_size=4),
        "datetime": json_values | st.sampled_from(["2024-06-21 12:36:40", "2024-13-01 00:00:00"]),
        "type": json_values | st.sampled_from(["pageview", "purchase", "conversion", "addtocart"]),
        "data": json_values | st.dictionaries(tracify_data_keys, json_values, max_size=6),
    },
)


@FUZZ
@given(
    body=st.one_of(
        bodies,
        st.lists(tracify_events, max_size=5).map(lambda v: json.dumps({"events": v}).encode()),
        st.lists(tracify_events, max_size=3).map(lambda v: json.dumps({"events": v})[:-2] + ",]}"),
    )
)
async def test_tracify_bodies(compat_api: Api, body: bytes | str) -> None:
    r = await compat_api.client.post(
        "/api/v1/events",
        content=body if isinstance(body, bytes) else body.encode(),
        headers={"tracify-token": compat_api.full_key, "Content-Type": "application/json"},
    )
    assert r.status_code < 500, r.text
    payload = r.json()
    assert isinstance(payload["success"], bool)
    if r.status_code >= 400 and "results" not in payload:
        assert isinstance(payload["error"], str)
