"""The dashboard in real headless Chromium against a real server: log in, read the seeded
numbers off the chart and tables and compare them with the API, filter, switch periods, create
and revoke a key, switch public stats on and read the public page logged out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

import tinytrack
from tests.browser import CHROMIUM, CHROMIUM_ARGS, api_get, site_info
from tinytrack.testing import RunningServer, serve

pytestmark = pytest.mark.browser
PASSWORD = "dashboard test password"
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


async def _prepare(db: Path) -> None:
    async with tinytrack.open(db) as engine:
        await engine.set_owner_password(PASSWORD)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    db = tmp_path / "tinytrack.db"
    with serve(db, site_url="https://blog.example.com") as running:
        rows = [
            {"path": p, "country": c, "referrer": r, "user_agent": AGENT, "visitor_id": v}
            for p, c, r, v in [
                ("/", "US", "https://news.ycombinator.com/", "a"),
                ("/", "DE", None, "b"),
                ("/post", "DE", "https://www.google.com/", "b"),
                ("/post", "PL", None, "c"),
                ("/post", "US", None, "d"),
                ("/about", "US", None, "a"),
            ]
        ]
        r = httpx.post(
            f"{running.api}/sites/{running.site_id}/hits/batch",
            json=rows,
            headers={"Authorization": f"Bearer {running.full_key}"},
        )
        assert r.json()["created_count"] == 6
        yield running


@pytest.fixture
def tab(browser: Browser, server: RunningServer) -> Iterator[Page]:
    # The password is set through the library on the live database (another process may do
    # this while the server runs: the CLI does exactly that).
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(_prepare(server.db_path))).result()
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def log_in(tab: Page, server: RunningServer) -> None:
    tab.goto(f"{server.base_url}/dashboard")
    assert "/dashboard/login" in tab.url
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server.base_url}/dashboard")


def table(tab: Page, name: str) -> dict[str, int]:
    cells = tab.eval_on_selector_all(
        f"[data-table={name}] tr",
        "rows => rows.map(r => [r.querySelector('[data-value]').dataset.value,"
        " r.querySelector('[data-count]').dataset.count])",
    )
    return {value: int(count) for value, count in cells}


def test_numbers_filters_and_periods(tab: Page, server: RunningServer) -> None:
    log_in(tab, server)
    about = site_info(server)
    row = tab.locator(f"tr[data-site='{server.site_id}']")
    assert row.locator("[data-field=lifetime_hits]").text_content() == str(about["lifetime_hits"])
    assert row.locator("[data-field=lifetime_unique_hits]").text_content() == str(
        about["lifetime_unique_hits"]
    )
    row.locator("a").first.click()
    tab.wait_for_selector("svg.chart")
    grouped = api_get(server, "hits", grouped="true", group_by="path", time_zone="user")
    assert table(tab, "pages") == {g["path"]: g["views"] for g in grouped["grouped_hits"]}
    countries = api_get(server, "hits", grouped="true", group_by="country", time_zone="user")
    assert table(tab, "countries") == {
        g["country"]: g["hit_count"] for g in countries["grouped_hits"]
    }
    bars = tab.eval_on_selector_all("g.bucket", "gs => gs.map(g => +g.dataset.hits)")
    assert len(bars) == 30 and sum(bars) == 6 and bars[-1] == 6  # all today
    assert tab.text_content("[data-field=hits]") == "6"
    tab.wait_for_selector(".journeys")  # the lazily loaded panel arrived

    # Click a country: the whole page narrows to it, as the API's filter does.
    tab.click("[data-table=countries] a[data-value=DE]")
    tab.wait_for_selector("[data-filter=country]")
    de = api_get(server, "hits", grouped="true", group_by="path", country="DE", time_zone="user")
    assert table(tab, "pages") == {g["path"]: g["views"] for g in de["grouped_hits"]}
    assert tab.text_content("[data-field=hits]") == "2"
    tab.click("[data-filter=country]")  # remove it
    tab.wait_for_selector("[data-field=hits]")
    assert tab.text_content("[data-field=hits]") == "6"

    # Switch the period: 24 hours by hour.
    tab.click("a[data-period='24h']")
    tab.wait_for_selector("a.active[data-period='24h']")
    bars = tab.eval_on_selector_all("g.bucket", "gs => gs.map(g => +g.dataset.hits)")
    assert len(bars) == 24 and sum(bars) == 6


def test_keys_and_public_stats(tab: Page, server: RunningServer, browser: Browser) -> None:
    log_in(tab, server)
    tab.goto(f"{server.base_url}/dashboard/keys")
    tab.fill("input[name=name]", "from the dashboard")
    tab.select_option("select[name=access]", "full_access")
    tab.click("text=Create key")
    token = tab.text_content("#new-key")
    assert token and token.startswith("tt-fa-")
    me = httpx.get(f"{server.api}/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["api_key"]["name"] == "from the dashboard"
    row = tab.locator("tr", has_text="from the dashboard")
    row.locator("button", has_text="Revoke").click()
    tab.wait_for_selector("tr.revoked")
    me = httpx.get(f"{server.api}/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401

    public = f"{server.base_url}/share/{server.site_uid}"
    assert httpx.get(public).status_code == 404
    tab.goto(f"{server.base_url}/dashboard/sites/{server.site_id}/settings")
    tab.check("#public")
    tab.click("text=Save")
    tab.wait_for_selector("#share")
    assert tab.get_attribute("#share", "href") == public
    stranger = browser.new_context()  # logged out
    try:
        page = stranger.new_page()
        page.goto(public)
        assert page.text_content("[data-field=hits]") == "6"
        assert page.locator("text=Settings").count() == 0
        page.goto(f"{server.base_url}/dashboard/sites/{server.site_id}/settings")
        assert "/dashboard/login" in page.url  # still nothing private
    finally:
        stranger.close()
