"""Clicky's internal-script logging (seed 000) at /in.php: every example of the seed sent through
the real app, what was stored and answered, sessions, goals and revenue, and the errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

import tinytrack
from tests.compat_support import counts, make_sessions, rows
from tests.conftest import FIREFOX_LINUX, Api, FakeClock, make_api
from tinytrack.errors import Overloaded

REFERRER = "https://www.google.com/search?q=tinytrack"


def php_url(**params: str) -> str:
    """The URL the seed's PHP builds: ``"...in.php?a=" . urlencode($a) . ...``."""
    return "/in.php?" + "&".join(f"{k}={quote_plus(v)}" for k, v in params.items())


async def send(api: Api, url: str) -> Any:
    return await api.client.get(url)


def stored_anywhere(api: Api, needle: bytes) -> bool:
    """Whether ``needle`` is in the database file or its write-ahead log."""
    files = [Path(str(api.engine.path)), Path(str(api.engine.path) + "-wal")]
    return any(needle in f.read_bytes() for f in files if f.exists())


def sessions_of(api: Api) -> list[tuple[Any, ...]]:
    return rows(
        api.engine.path,
        "SELECT id, visitor_hash, actions, referrer, properties FROM sessions ORDER BY id",
    )


# -- the seed's examples ---------------------------------------------------------------------------


async def test_seed_example_logging_an_action(api: Api) -> None:
    """``file(".../in.php?site_id=1&sitekey_admin=1&ip_address=...&href=...&title=...&ref=...
    &ua=...")`` with the seed's own values, the admin key being a tinytrack full-access key."""
    example = dict(
        site_id="1",
        sitekey_admin="1",
        ip_address="8.8.8.8",
        href="/some/page",
        title="Some title",
        ref=REFERRER,
        ua="Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:68.0) Gecko/20100101 Firefox/68.0",
    )
    # Verbatim, "1" is not a key of this server: refused, nothing stored.
    before = counts(api.engine.path)
    r = await send(api, php_url(**example))
    assert (r.status_code, r.text) == (
        403,
        "error: invalid sitekey_admin (a full-access API key is needed)",
    )
    assert counts(api.engine.path) == before

    r = await send(api, php_url(**{**example, "sitekey_admin": api.full_key}))
    assert r.status_code == 200
    assert r.text == ""  # "in.php will not return anything to you"
    assert r.headers["x-tinytrack-result"] == "created"
    session_id = int(r.headers["x-tinytrack-session"])

    hits = (await api.engine.hits(api.site.id)).hits  # type: ignore[union-attr]
    assert len(hits) == 1
    hit = hits[0]
    assert (hit.path, hit.referrer, hit.source, hit.country) == (
        "/some/page",
        REFERRER,
        "google",
        "US",
    )
    assert (hit.browser_name, hit.platform_name) == ("Firefox", "Windows")
    assert sessions_of(api) == [(session_id, sessions_of(api)[0][1], 1, REFERRER, None)]
    # The API reports the session id the header named.
    page = await api.client.get(f"/api/v1/sites/{api.site.id}/sessions", headers=api.auth())
    assert [s["id"] for s in page.json()["sessions"]] == [session_id]
    assert page.json()["sessions"][0]["actions"] == 1
    # No raw IP anywhere in the database file.
    assert not stored_anywhere(api, b"8.8.8.8")


async def test_seed_example_logging_custom_data(api: Api) -> None:
    """``in.php?site_id=1&sitekey_admin=1&session_id=123&type=custom&custom[username]=billy
    &custom[email]=billy@billy.com`` (brackets as PHP leaves them)."""
    example = (
        "/in.php?site_id=1&sitekey_admin={key}&session_id=123&type=custom"
        "&custom[username]="
        + quote_plus("billy")
        + "&custom[email]="
        + quote_plus("billy@billy.com")
    )
    r = await send(api, example.format(key="1"))
    assert r.status_code == 403
    before = counts(api.engine.path)
    r = await send(api, example.format(key=api.full_key))
    assert (r.status_code, r.text) == (404, "error: session not found")
    assert counts(api.engine.path) == before

    # A session with an action of its own, then sessions up to 123 (as a busy site would have).
    first = await send(
        api,
        php_url(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.4.4", href="/"),
    )
    assert first.status_code == 200
    await make_sessions(api.engine, api.site.id, 123)
    r = await send(api, example.format(key=api.full_key))
    assert r.status_code == 200 and r.text == ""
    assert r.headers["x-tinytrack-session"] == "123"
    assert counts(api.engine.path)["hits"] == 1  # "without generating a visitor action"

    (visitor,) = rows(api.engine.path, "SELECT visitor_hash FROM sessions WHERE id = 123")[0]
    props = await api.engine.visitor_properties(api.site.id, visitor)
    assert props == {"username": "billy", "email": "billy@billy.com"}
    page = await api.client.get(
        f"/api/v1/sites/{api.site.id}/sessions",
        params={"visitor_hash": visitor},
        headers=api.auth(),
    )
    (session,) = page.json()["sessions"]
    assert session["id"] == 123
    assert session["properties"] == props
    assert session["visitor_properties"] == props
    assert session["actions"] == 0
    r = await api.client.get(f"/api/v1/sites/{api.site.id}/visitors/{visitor}", headers=api.auth())
    assert r.json() == {"visitor_hash": visitor, "properties": props}


async def test_custom_data_reaches_an_old_session_and_its_journey(
    api: Api, clock: FakeClock
) -> None:
    """Custom data "even if the session is expired and happened 30 days ago"; the visitor's
    properties then show in their user journey."""
    r = await send(
        api,
        php_url(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", href="/pricing"),
    )
    session_id = r.headers["x-tinytrack-session"]
    clock.advance(30 * 86400)
    r = await send(
        api,
        f"/in.php?site_id=1&sitekey_admin={api.full_key}&session_id={session_id}"
        "&type=custom&custom[plan]=pro",
    )
    assert r.status_code == 200
    day = (clock.now - 30 * 86400) // 86400
    page = await api.engine.user_journeys(
        api.site.id,
        start_date=tinytrack.engine.clock.day_from_number(int(day)),
        end_date=tinytrack.engine.clock.day_from_number(int(day)),
    )
    (journey,) = page.user_journeys
    assert journey.properties == {"plan": "pro"}
    shaped = tinytrack.to_builtins(journey)
    assert shaped["properties"] == {"plan": "pro"}


async def test_seed_example_goal_with_revenue_and_revenue_added_later(api: Api) -> None:
    """``in.php?site_id=1&sitekey_admin=1&session_id=123&type=goal&goal[id]=123
    &goal[revenue]=49.95``; sent again it is still one goal; a goal flagged without revenue
    gets the revenue sent later, once."""
    example = (
        "/in.php?site_id=1&sitekey_admin={key}&session_id=123&type=goal&goal[id]=123"
        "&goal[revenue]=49.95"
    )
    assert (await send(api, example.format(key="1"))).status_code == 403
    await make_sessions(api.engine, api.site.id, 123)
    before = counts(api.engine.path)
    r = await send(api, example.format(key=api.full_key))
    assert (r.status_code, r.text) == (404, "error: goal not found")  # goal 123 not defined
    assert counts(api.engine.path) == before

    goal = await api.engine.create_goal(api.site.id, "Purchase", goal_id=123)
    assert (goal.id, goal.event) == (123, "goal.Purchase")
    r = await send(api, example.format(key=api.full_key))
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (200, "created")
    r = await send(api, example.format(key=api.full_key))
    assert (r.status_code, r.headers["x-tinytrack-result"]) == (200, "duplicate")
    stored = rows(api.engine.path, "SELECT name, revenue_micros, order_id, properties FROM events")
    assert stored == [
        ("goal.Purchase", 49_950_000, "goal:123:session:123", '{"goal_id":123,"session_id":123}')
    ]

    # Flagged without revenue in another session, then the revenue arrives.
    bare = f"/in.php?site_id=1&sitekey_admin={api.full_key}&session_id=7&type=goal&goal[id]=123"
    assert (await send(api, bare)).headers["x-tinytrack-result"] == "created"
    later = await send(api, bare + "&goal[revenue]=10.05")
    assert later.headers["x-tinytrack-result"] == "updated"
    again = await send(api, bare + "&goal[revenue]=99")
    assert again.headers["x-tinytrack-result"] == "duplicate"  # revenue logged already
    assert rows(api.engine.path, "SELECT COUNT(*), SUM(revenue_micros) FROM events") == [
        (2, 60_000_000)
    ]
    goals = await api.client.get(f"/api/v1/sites/{api.site.id}/goals", headers=api.auth())
    assert goals.json()["goals"] == [
        {
            "id": 123,
            "name": "Purchase",
            "event": "goal.Purchase",
            "completions": 2,
            "revenue": [{"currency": None, "amount": 60.0, "count": 2}],
            "created_at": goals.json()["goals"][0]["created_at"],
        }
    ]
    grouped = await api.client.get(
        f"/api/v1/sites/{api.site.id}/events", params={"grouped": "true"}, headers=api.auth()
    )
    assert grouped.json()["grouped_events"] == [
        {
            "event": "goal.Purchase",
            "event_count": 2,
            "unique_count": 2,
            "revenue": [{"currency": None, "amount": 60.0, "count": 2}],
        }
    ]


async def test_seed_javascript_examples_as_internal_requests(api: Api) -> None:
    """The seed's JavaScript examples, sent the internal way: ``clicky.log('#menu/home',
    'Home')`` (a click), ``clicky.goal('10', '9.95')``, ``clicky.goal('10')`` and the dynamic
    goals ``clicky.goal('Clicked email')`` / ``clicky.goal('Downloaded file')``."""
    base = dict(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", ua=FIREFOX_LINUX)
    await api.engine.create_goal(api.site.id, "Email me", goal_id=10)
    r = await send(api, php_url(**base, href="#menu/home", title="Home", type="click"))
    assert r.status_code == 200
    session = r.headers["x-tinytrack-session"]
    for extra, outcome in (
        ({"goal[id]": "10", "goal[revenue]": "9.95"}, "created"),
        ({"goal[id]": "10"}, "duplicate"),  # once per session
        ({"goal[id]": "Clicked email"}, "created"),
        ({"goal[id]": "Downloaded file"}, "created"),
    ):
        r = await send(api, php_url(**base, type="goal", **extra))
        assert (r.status_code, r.text, r.headers["x-tinytrack-result"]) == (200, "", outcome)
        assert r.headers["x-tinytrack-session"] == session  # the same visitor's session
    stored = rows(
        api.engine.path,
        "SELECT name, value, path, properties, revenue_micros FROM events ORDER BY id",
    )
    assert stored == [
        ("clicky.click", "#menu/home", None, '{"title":"Home"}', None),
        ("goal.Email me", None, None, '{"goal_id":10,"session_id":1}', 9_950_000),
        ("goal.Clicked email", None, None, '{"goal_id":11,"session_id":1}', None),
        ("goal.Downloaded file", None, None, '{"goal_id":12,"session_id":1}', None),
    ]
    page = await api.engine.goals(api.site.id)
    assert [(g.id, g.name, g.completions) for g in page.goals] == [
        (10, "Email me", 1),
        (11, "Clicked email", 1),
        (12, "Downloaded file", 1),
    ]


# -- actions and sessions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "href", "expected"),
    [
        ("pageview", "/a?b=c", ("hit", "/a")),
        ("", "/blank", ("hit", "/blank")),
        ("nonsense", "/invalid-type", ("hit", "/invalid-type")),
        ("download", "/song.mp3", ("clicky.download", "/song.mp3")),
        ("outbound", "http://different-web-site.com", ("clicky.outbound", None)),
        ("click", "#button", ("clicky.click", None)),
    ],
)
async def test_action_types(api: Api, type_: str, href: str, expected: tuple[Any, ...]) -> None:
    params = dict(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", href=href)
    r = await send(api, php_url(**params, type=type_))
    assert r.status_code == 200
    if expected[0] == "hit":
        assert rows(api.engine.path, "SELECT path FROM hits") == [(expected[1],)]
        assert counts(api.engine.path)["events"] == 0
    else:
        found = rows(api.engine.path, "SELECT name, value, path, url FROM events")
        url = href if href.startswith("http") else None
        assert found == [(expected[0], href, expected[1], url)]


async def test_ref_is_kept_only_for_a_sessions_first_action(api: Api, clock: FakeClock) -> None:
    params = dict(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", ref=REFERRER)
    for path in ("/one", "/two"):
        await send(api, php_url(**params, href=path))
        clock.advance(60)
    clock.advance(31 * 60)  # past the 30-minute session timeout: a new session
    await send(api, php_url(**params, href="/three"))
    assert rows(api.engine.path, "SELECT path, referrer, source FROM hits ORDER BY id") == [
        ("/one", REFERRER, "google"),
        ("/two", None, None),
        ("/three", REFERRER, "google"),
    ]
    assert [(s[0], s[2], s[3]) for s in sessions_of(api)] == [(1, 2, REFERRER), (2, 1, REFERRER)]


async def test_without_ip_or_session_the_callers_address_is_used(api: Api) -> None:
    r = await send(api, php_url(site_id="1", sitekey_admin=api.full_key, href="/x"))
    assert r.status_code == 200
    assert counts(api.engine.path)["hits"] == 1


async def test_post_form_and_site_alias(api: Api) -> None:
    await api.engine.add_site_alias(api.site.id, "100716069")  # the id existing code sends
    r = await api.client.post(
        "/in.php",
        content=f"site_id=100716069&sitekey_admin={api.full_key}&ip_address=8.8.8.8"
        "&href=%2Fposted&custom%5Bx%5D=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert rows(api.engine.path, "SELECT path FROM hits") == [("/posted",)]


async def test_a_bot_user_agent_is_ignored(api: Api) -> None:
    ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    r = await send(
        api, php_url(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", href="/", ua=ua)
    )
    assert r.status_code == 200
    assert r.headers["x-tinytrack-result"].startswith("ignored: Bot user agent")
    assert counts(api.engine.path) == {t: 0 for t in counts(api.engine.path)}


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("sitekey_admin={full}&href=/", 400, "error: site_id is required"),
        ("site_id=1&href=/", 403, "error: sitekey_admin is required"),
        ("site_id=1&sitekey_admin={read}&href=/", 403, "error: invalid sitekey_admin"),
        ("site_id=1&sitekey_admin=tt-fa-nope&href=/", 403, "error: invalid sitekey_admin"),
        ("site_id=999&sitekey_admin={full}&href=/", 404, "error: unknown site_id"),
        ("site_id=1&sitekey_admin={full}&ip_address=1.2.3.4", 400, "error: href is required"),
        ("site_id=1&sitekey_admin={full}&ip_address=999.1.1.1&href=/", 400, "error: ip_address"),
        ("site_id=1&sitekey_admin={full}&session_id=abc&href=/", 400, "error: session_id"),
        ("site_id=1&sitekey_admin={full}&session_id=55&href=/", 404, "error: session not found"),
        ("site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&type=custom", 400, "error: custom"),
        ("site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&type=goal", 400, "error: goal[id]"),
        (
            "site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&type=goal&goal[id]=X"
            "&goal[revenue]=lots",
            400,
            "error: Revenue must be a decimal number",
        ),
        (
            "site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&type=goal&goal[id]=a..b",
            400,
            "error: Goal name",
        ),
        # A goal number never defined: no session is started for the new visitor either.
        (
            "site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&type=goal&goal[id]=999",
            404,
            "error: goal not found",
        ),
        # An unknown session: the goal named "on the fly" is not created.
        (
            "site_id=1&sitekey_admin={full}&session_id=55&type=goal&goal[id]=Signed+up"
            "&goal[revenue]=5",
            404,
            "error: session not found",
        ),
        (
            "site_id=1&sitekey_admin={full}&session_id=55&type=custom&custom[a]=b",
            404,
            "error: session not found",
        ),
        ("site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&href=/" + "x" * 3000, 400, "error:"),
        (
            "site_id=1&sitekey_admin={full}&ip_address=1.2.3.4&href=/&" + "a=1&" * 300,
            400,
            "error: At most",
        ),
    ],
)
async def test_errors_write_nothing(api: Api, query: str, status: int, message: str) -> None:
    before = counts(api.engine.path)
    r = await send(api, "/in.php?" + query.format(full=api.full_key, read=api.read_key))
    assert r.status_code == status, r.text
    assert r.text.startswith(message), r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert counts(api.engine.path) == before


async def test_oversized_body_is_413(api: Api) -> None:
    r = await api.client.post(
        "/in.php",
        content=f"site_id=1&sitekey_admin={api.full_key}&ip_address=8.8.8.8&href=/".encode()
        + b"&title="
        + b"x" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert r.text == "error: request body too large"
    assert counts(api.engine.path) == {t: 0 for t in counts(api.engine.path)}


async def test_overloaded_is_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(*_args: Any, **_kwargs: Any) -> Any:
        raise Overloaded("Too many writes queued; retry shortly", retry_after=2)

    monkeypatch.setattr(api.engine, "track", full)
    r = await send(
        api, php_url(site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", href="/")
    )
    assert (r.status_code, r.text) == (503, "error: Too many writes queued; retry shortly")
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("text/plain")


@pytest.fixture
async def limited(engine: tinytrack.Engine) -> AsyncIterator[Api]:
    async for value in make_api(engine, rate_limit=2):
        yield value


async def test_rate_limit_is_the_apis_per_key_limit(limited: Api) -> None:
    url = php_url(site_id="1", sitekey_admin=limited.full_key, ip_address="8.8.8.8", href="/")
    assert [(await send(limited, url)).status_code for _ in range(3)] == [200, 200, 429]
    r = await send(limited, url)
    assert int(r.headers["retry-after"]) >= 1


async def test_concurrent_first_actions_share_one_session(api: Api) -> None:
    import asyncio

    url = php_url(
        site_id="1", sitekey_admin=api.full_key, ip_address="8.8.8.8", href="/", ref=REFERRER
    )
    answers = await asyncio.gather(*(send(api, url) for _ in range(10)))
    assert {a.headers["x-tinytrack-session"] for a in answers} == {"1"}
    assert [(s[0], s[2], s[3]) for s in sessions_of(api)] == [(1, 10, REFERRER)]
    # The referrer stays on the session's first action only.
    assert rows(api.engine.path, "SELECT COUNT(referrer) FROM hits") == [(1,)]


async def test_a_version_3_database_migrates(tmp_path: Path, clock: FakeClock) -> None:
    """Migration 4 (sessions, visitor properties, goals, aliases, secure tracking) on a
    database of the previous version, with a site in it."""
    import sqlite3

    from tinytrack.engine.schema import MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for version, statements in MIGRATIONS:
            if version <= 3:
                for statement in statements:
                    conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO sites (uid, url, secret, created_at, updated_at) "
            "VALUES ('abc', 'https://old.example', x'00', 0, 0)"
        )
    engine = await tinytrack.Engine.open(path, clock=clock, maintenance=False)
    try:
        assert await engine.secure_tracking(1) is False
        result = await engine.track(1, tinytrack.TrackIn(kind="goal", goal="Migrated"))
        assert (result.status, result.goal_id, result.session_id) == ("created", 1, 1)
        assert await engine.find_site("old.example") == 1
    finally:
        await engine.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 4
