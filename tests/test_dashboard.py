"""The dashboard over plain HTTP, through the real app: who may see and do what, the session
cookie, CSRF, and that its figures are the API's. (Clicking through it in a real browser is in
test_dashboard_browser.py.)"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import tinytrack
from tests.conftest import FIREFOX_LINUX, FakeClock
from tinytrack.config import Settings
from tinytrack.server.app import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
async def app_client(engine: tinytrack.Engine) -> AsyncIterator[httpx.AsyncClient]:
    await engine.set_owner_password(PASSWORD)
    app = create_app(engine, settings=Settings(rate_limit=0, trusted_proxies="127.0.0.1"))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login(client: httpx.AsyncClient) -> str:
    r = await client.post("/dashboard/login", data={"password": PASSWORD, "next": "/dashboard"})
    assert r.status_code == 303
    page = await client.get("/dashboard")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


async def seed(engine: tinytrack.Engine) -> tinytrack.Site:
    site = await engine.create_site("https://example.com", label="Blog", timezone="Europe/Warsaw")
    rows = [
        tinytrack.HitIn(
            path=f"/p{i % 4}",
            country=["US", "DE", "PL"][i % 3],
            referrer=["https://google.com/", None, "https://example.com/x"][i % 3],
            user_agent=FIREFOX_LINUX,
            visitor_id=f"v{i % 5}",
        )
        for i in range(30)
    ]
    await engine.record_hits(site.id, rows)
    return site


async def test_logged_out_reaches_nothing_private(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    site = await seed(engine)
    key = await engine.create_key("read_only", name="k")
    for path in (
        "/dashboard",
        f"/dashboard/sites/{site.id}",
        f"/dashboard/sites/{site.id}?period=7d&country=US",
        f"/dashboard/sites/{site.id}/settings",
        "/dashboard/keys",
    ):
        r = await app_client.get(path)
        assert r.status_code == 302, path
        assert r.headers["location"].startswith("/dashboard/login?next=")
        assert "Blog" not in r.text and "p0" not in r.text
    r = await app_client.get(f"/dashboard/sites/{site.id}/journeys")
    assert r.status_code == 403
    for path, form in (
        (f"/dashboard/sites/{site.id}/settings", {"label": "hacked", "public": "on"}),
        ("/dashboard/keys", {"name": "mine", "access": "full_access"}),
        (f"/dashboard/keys/{key.key.id}/revoke", {}),
        ("/dashboard/logout", {}),
    ):
        r = await app_client.post(path, data=form)
        assert r.status_code == 403, path
        assert "tt-" not in r.text
    assert (await engine.get_site(site.id)).label == "Blog"
    assert [k.revoked_at for k in await engine.list_keys()] == [None]
    assert (await app_client.get(f"/share/{site.uid}")).status_code == 404  # not public


async def test_login_cookie_and_logout(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    r = await app_client.post("/dashboard/login", data={"password": "nope", "next": "/dashboard"})
    assert r.status_code == 401 and "Wrong password" in r.text
    assert "set-cookie" not in r.headers
    r = await app_client.post(
        "/dashboard/login", data={"password": PASSWORD, "next": "https://evil.test/x"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    csrf = re.search(r'name="csrf" value="([^"]+)"', (await app_client.get("/dashboard")).text)
    assert csrf
    r = await app_client.post("/dashboard/logout", data={"csrf": csrf.group(1)})
    assert r.status_code == 303
    assert (await app_client.get("/dashboard")).status_code == 302


async def test_secure_cookie_behind_a_tls_proxy(app_client: httpx.AsyncClient) -> None:
    r = await app_client.post(
        "/dashboard/login",
        data={"password": PASSWORD},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "8.8.8.8"},
    )
    assert "Secure" in r.headers["set-cookie"]


async def test_forged_expired_or_old_sessions_are_refused(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    await login(app_client)
    good = app_client.cookies["tinytrack_session"]
    expires, nonce, signature = good.split(".")
    for bad in (
        f"{int(expires) + 999}.{nonce}.{signature}",  # extended expiry: signature breaks
        f"{expires}.{nonce}.{'0' * 64}",
        "garbage",
        "1.2.3",
    ):
        app_client.cookies.set("tinytrack_session", bad)
        assert (await app_client.get("/dashboard")).status_code == 302
    app_client.cookies.set("tinytrack_session", good)
    assert (await app_client.get("/dashboard")).status_code == 200
    await engine.set_owner_password("a brand new password")  # ends every session
    assert (await app_client.get("/dashboard")).status_code == 302


async def test_actions_need_the_csrf_token(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    site = await seed(engine)
    csrf = await login(app_client)
    r = await app_client.post(f"/dashboard/sites/{site.id}/settings", data={"label": "x"})
    assert r.status_code == 403
    r = await app_client.post(
        f"/dashboard/sites/{site.id}/settings",
        data={"label": "x", "csrf": csrf[:-1] + ("1" if csrf.endswith("0") else "0")},
    )
    assert r.status_code == 403
    r = await app_client.post(
        f"/dashboard/sites/{site.id}/settings",
        data={"label": "Renamed", "timezone": "UTC", "public": "on", "csrf": csrf,
              "ignore_paths": "/admin/*\n/draft/*"},
    )  # fmt: skip
    assert r.status_code == 200 and "Saved." in r.text
    changed = await engine.get_site(site.id)
    assert (changed.label, changed.public, changed.ignore_paths) == (
        "Renamed",
        True,
        ["/admin/*", "/draft/*"],
    )
    r = await app_client.post(
        f"/dashboard/sites/{site.id}/settings",
        data={"label": "x", "timezone": "Mars/Olympus", "csrf": csrf},
    )
    assert r.status_code == 400 and "error" in r.text


async def test_login_attempts_are_limited(app_client: httpx.AsyncClient) -> None:
    for _ in range(10):
        r = await app_client.post("/dashboard/login", data={"password": "wrong"})
        assert r.status_code == 401
    r = await app_client.post("/dashboard/login", data={"password": PASSWORD})
    assert r.status_code == 429 and "Too many attempts" in r.text


async def test_keys_created_once_and_revoked(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    csrf = await login(app_client)
    r = await app_client.post(
        "/dashboard/keys", data={"name": "backend", "access": "full_access", "csrf": csrf}
    )
    token = re.search(r'id="new-key">(tt-fa-[^<]+)<', r.text)
    assert token
    assert (await engine.authenticate(token.group(1))).access_type == "full_access"
    listing = await app_client.get("/dashboard/keys")
    assert token.group(1) not in listing.text  # shown once
    (key,) = await engine.list_keys()
    r = await app_client.post(f"/dashboard/keys/{key.id}/revoke", data={"csrf": csrf})
    assert r.status_code == 303
    assert (await engine.list_keys())[0].revoked_at is not None


async def test_site_page_figures_are_the_apis(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    site = await seed(engine)
    await login(app_client)
    r = await app_client.get(f"/dashboard/sites/{site.id}?period=7d")
    assert r.status_code == 200
    hits = await engine.hits(
        site.id,
        grouped=True,
        group_by="path",
        time_zone="user",
        start_date=dt.date(2026, 2, 8),
        end_date=dt.date(2026, 2, 14),
    )
    section = r.text.split('data-table="pages"')[1].split("</table>")[0]
    shown = dict(re.findall(r'data-value="([^"]+)".*?data-count="(\d+)"', section, re.S))
    api = {row["path"]: str(row["views"]) for row in hits.grouped_hits}  # type: ignore[union-attr]
    assert shown == api and len(api) == 4
    assert re.search(r'data-field="hits">30<', r.text)
    bars = re.findall(r'data-label="([\d-]+)" data-hits="(\d+)" data-unique="(\d+)"', r.text)
    assert len(bars) == 7 and sum(int(b[1]) for b in bars) == 30
    # A filter narrows everything to the API's filtered answer.
    r = await app_client.get(f"/dashboard/sites/{site.id}?period=7d&country=PL")
    assert re.search(r'data-field="hits">10<', r.text)
    assert 'data-filter="country"' in r.text
    # Internal referrers are hidden unless asked for.
    r = await app_client.get(f"/dashboard/sites/{site.id}?period=7d")
    referrers = r.text.split('data-table="referrers"')[1].split("</table>")[0]
    assert "https://google.com/" in referrers and "https://example.com/x" not in referrers
    r = await app_client.get(f"/dashboard/sites/{site.id}?period=7d&internal=1")
    referrers = r.text.split('data-table="referrers"')[1].split("</table>")[0]
    assert "https://example.com/x" in referrers


async def test_public_page_when_switched_on(
    engine: tinytrack.Engine, app_client: httpx.AsyncClient
) -> None:
    site = await seed(engine)
    await engine.update_site(site.id, public=True)
    r = await app_client.get(f"/share/{site.uid}")
    assert r.status_code == 200
    assert re.search(r'data-field="hits">30<', r.text)
    assert "Settings" not in r.text and "/dashboard/keys" not in r.text and "csrf" not in r.text
    assert (await app_client.get(f"/share/{site.uid}/journeys")).status_code == 200
    assert (await app_client.get("/share/nosuchsite")).status_code == 404


async def test_dashboard_assets_are_local(app_client: httpx.AsyncClient) -> None:
    r = await app_client.get("/dashboard/login")
    assert "http://" not in r.text and "https://" not in r.text  # no CDN, no external fonts
    for name in ("dashboard.css", "dashboard.js"):
        asset = await app_client.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and "http" not in asset.text
    assert (await app_client.get("/dashboard/static/../app.py")).status_code == 404


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("filters", [{}, {"path": "/a"}, {"path": "/a", "country": "DE"}])
async def test_traffic_series_equals_plain_sql(
    db_path: Path, clock: FakeClock, timezone: str, filters: dict[str, str]
) -> None:
    """Per-day counts from the rollups (no or one filter) or the raw rows (two) equal a plain
    count over the raw hits by local day."""
    async with tinytrack.open(db_path, clock=clock) as engine:
        site = await engine.create_site("https://example.com", timezone=timezone)
        for step in range(40):
            clock.advance(3 * 3600 + 17 * 60)  # walks across local midnights
            await engine.record_hits(
                site.id,
                [
                    tinytrack.HitIn(path=p, country=c, visitor_id=f"v{step % 6}")
                    for p in ("/a", "/b")
                    for c in ("DE", "US")
                ],
            )
        traffic = await engine.traffic(site.id, period="7d", **filters)  # type: ignore[arg-type]
    conn = sqlite3.connect(db_path)
    try:
        where = "".join(f" AND {k} = ?" for k in filters)
        rows = conn.execute(
            f"SELECT created_at FROM hits WHERE site_id = ?{where}", (site.id, *filters.values())
        ).fetchall()
    finally:
        conn.close()
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    expected = Counter(dt.datetime.fromtimestamp(t, tz).date().isoformat() for (t,) in rows)
    got = {p.label: p.hits for p in traffic.points if p.hits}
    in_range = {d: n for d, n in expected.items() if d >= traffic.points[0].label}
    assert got == in_range
    assert traffic.hits == sum(in_range.values())
