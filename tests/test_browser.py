"""The embed script, widgets and pixel in real headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright), against a real tinytrack server and a test site, both on 127.0.0.1.

The test site runs on its own port, so every call the script makes is cross-origin, as on a
real site. Its configured domain is 127.0.0.1; the same pages opened as ``localhost`` are a
foreign domain.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP_CHROME,
    DemoSite,
    api_get,
    api_post,
    embed_url,
    events,
    hits,
    page,
    serve_site,
    settle,
    site_info,
    wait_for,
    wait_for_rows,
)
from tinytrack.testing import RunningServer, serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve(site_url="http://127.0.0.1") as running:
        yield running


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with serve_site() as test_site:
        yield test_site


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile per test (empty localStorage), browsing as desktop Chrome."""
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    opened = context.new_page()
    yield opened
    context.close()


def paths_of(found: list[dict[str, object]]) -> list[object]:
    return [h["path"] for h in found]


# -- page views -------------------------------------------------------------------------------


@pytest.mark.parametrize("minified", [False, True], ids=["js", "min.js"])
def test_page_view_recorded_with_path_and_referrer(
    server: RunningServer, site: DemoSite, tab: Page, minified: bool
) -> None:
    script = embed_url(server, minified=minified)
    site.pages["/start"] = page(
        script, "<a id=go href='/blog/post?utm_source=news&token=s3cr3t'>go</a>"
    )
    site.pages["/blog/post"] = page(script, "<p>post</p>")
    tab.goto(site.url("/start"))
    wait_for_rows(hits, server, 1)
    tab.click("#go")
    found = wait_for_rows(hits, server, 2)
    first, second = found
    assert first["path"] == "/start" and first["referrer"] is None
    assert second["path"] == "/blog/post"
    assert second["referrer"] == site.url("/start")
    # The page URL keeps its campaign parameters and nothing else.
    assert second["url"] == site.url("/blog/post?utm_source=news")
    assert second["source"] == "news"
    assert second["browser_name"] == "Chrome" and second["platform_name"] == "Linux"
    settle()
    assert len(hits(server)) == 2


def test_script_added_from_javascript_works_too(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    """The seed's "alternative JavaScript approach" for hosts that forbid script tags."""
    loader = (
        "<script>let s = document.createElement('script'); s.defer = true;"
        f"s.src = '{embed_url(server, minified=True)}'; document.body.appendChild(s)</script>"
    )
    site.pages["/written-as"] = f"<!doctype html><body><p>post</p>{loader}</body>"
    tab.goto(site.url("/written-as"))
    (hit,) = wait_for_rows(hits, server, 1)
    assert hit["path"] == "/written-as"


def test_headless_browser_user_agent_is_ignored_as_a_bot(
    server: RunningServer, site: DemoSite, browser: Browser
) -> None:
    site.pages["/"] = page(embed_url(server))
    context = browser.new_context()  # Playwright's own UA: "HeadlessChrome"
    try:
        tab = context.new_page()
        with tab.expect_response(lambda r: "/collector/" in r.url) as answer:
            tab.goto(site.url("/"))
        assert answer.value.status == 202
        assert answer.value.json()["status"] == "ignored"
    finally:
        context.close()
    assert hits(server) == []


def test_page_on_a_foreign_domain_records_nothing(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    site.pages["/"] = page(
        embed_url(server, "events"), "<button data-tinylytics-event='a.b'>x</button>"
    )
    with tab.expect_response(lambda r: "/collector/" in r.url) as answer:
        tab.goto(site.url("/", host="localhost"))
    assert answer.value.status == 403
    with tab.expect_response(lambda r: "/collector/" in r.url) as answer:
        tab.click("button")
    assert answer.value.status == 403
    assert hits(server) == [] and events(server) == []
    assert site_info(server)["lifetime_hits"] == 0


# -- single-page apps -------------------------------------------------------------------------

SPA = """
<nav>
  <button id=two onclick="history.pushState({}, '', '/app/two')">two</button>
  <button id=same onclick="history.pushState({}, '', '/app/two?tab=b');
                           history.replaceState({}, '', '/app/two#top')">same</button>
</nav>
"""


@pytest.mark.parametrize("minified", [False, True], ids=["js", "min.js"])
def test_spa_navigation_recorded_once_and_back_forward(
    server: RunningServer, site: DemoSite, tab: Page, minified: bool
) -> None:
    site.fallbacks["/app"] = page(embed_url(server, "spa", minified=minified), SPA)
    tab.goto(site.url("/app"))
    wait_for_rows(hits, server, 1)
    tab.click("#two")
    wait_for_rows(hits, server, 2)
    tab.click("#same")  # same path with a new query and hash: not another page view
    settle()
    found = hits(server)
    assert paths_of(found) == ["/app", "/app/two"]
    assert found[1]["referrer"] == site.url("/app")
    tab.go_back()  # /app/two?tab=b -> /app/two: same path, nothing new
    tab.go_back()  # -> /app
    wait_for_rows(hits, server, 3)
    tab.go_forward()  # -> /app/two
    found = wait_for_rows(hits, server, 4)
    assert paths_of(found) == ["/app", "/app/two", "/app", "/app/two"]
    settle()
    assert len(hits(server)) == 4


def test_without_spa_option_client_navigation_is_not_counted(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    site.fallbacks["/app"] = page(embed_url(server), SPA)
    tab.goto(site.url("/app"))
    wait_for_rows(hits, server, 1)
    tab.click("#two")
    settle()
    assert paths_of(hits(server)) == ["/app"]


# -- events -----------------------------------------------------------------------------------

EVENT_BUTTONS = """
<button id=buy data-tinylytics-event="button->click" data-tinylytics-event-value="pricing">
  <span id=label>Buy</span></button>
<a id=native href="#" data-tinytrack-event="file.download"
   data-tinytrack-event-value="guide.pdf">get</a>
"""


@pytest.mark.parametrize("minified", [False, True], ids=["js", "min.js"])
def test_event_click_recorded_once_despite_a_double_click(
    server: RunningServer, site: DemoSite, tab: Page, minified: bool
) -> None:
    site.pages["/pricing"] = page(embed_url(server, "events", minified=minified), EVENT_BUTTONS)
    tab.goto(site.url("/pricing"))
    tab.dblclick("#label")  # a click on a child of the element counts for the element
    found = wait_for(lambda: events(server))
    settle()
    found = events(server)
    assert len(found) == 1
    assert (found[0]["event"], found[0]["value"], found[0]["path"]) == (
        "button.click",
        "pricing",
        "/pricing",
    )
    tab.wait_for_timeout(600)  # past the 500 ms debounce: a new click is a new event
    tab.click("#buy")
    tab.click("#native")  # the data-tinytrack-* names work too
    found = wait_for_rows(events, server, 3)
    assert [e["event"] for e in found] == ["button.click", "button.click", "file.download"]
    assert found[2]["value"] == "guide.pdf"


def test_beacon_event_on_a_link_that_navigates_away_still_arrives(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    site.pages["/"] = page(
        embed_url(server, "events&beacon"),
        "<a id=out href='/gone' data-tinylytics-event='outbound->click'>leave</a>",
    )
    site.pages["/gone"] = "<!doctype html><p>elsewhere, no tracking here</p>"
    tab.goto(site.url("/"))
    with tab.expect_request(lambda r: r.url.endswith("/events")) as sent:
        tab.click("#out")
    assert sent.value.resource_type == "ping"  # navigator.sendBeacon, not fetch
    tab.wait_for_url(site.url("/gone"))
    found = wait_for(lambda: events(server))
    assert [e["event"] for e in found] == ["outbound.click"]


def test_events_are_not_sent_when_hit_tracking_is_off(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    site.pages["/"] = page(embed_url(server, "events&ignore"), EVENT_BUTTONS)
    requests: list[str] = []
    tab.on("request", lambda r: requests.append(r.url) if "/collector/" in r.url else None)
    tab.goto(site.url("/"))
    tab.click("#buy")
    settle()
    assert requests == []
    assert hits(server) == [] and events(server) == []


# -- ignoring your own visits -----------------------------------------------------------------


def test_opt_out_flag_stops_recording_until_cleared(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    script = embed_url(server, "events")
    site.pages["/"] = page(script, EVENT_BUTTONS)
    site.pages["/later"] = page(script, EVENT_BUTTONS)
    messages: list[str] = []

    def confirm(dialog: object) -> None:
        messages.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    tab.on("dialog", confirm)
    tab.goto(site.url("/?tiny_ignore=true"))
    wait_for(lambda: messages)
    assert "no longer counted" in messages[-1]
    assert tab.evaluate("localStorage.getItem('tinytrack_ignore')") == "1"
    tab.goto(site.url("/later"))
    tab.click("#buy")
    tab.reload()
    settle()
    assert hits(server) == [] and events(server) == []

    tab.goto(site.url("/?ti=false"))  # the short form clears it; this visit counts again
    wait_for(lambda: len(messages) == 2)
    assert "counted again" in messages[-1]
    tab.goto(site.url("/later"))
    wait_for_rows(hits, server, 2)
    assert paths_of(hits(server)) == ["/", "/later"]
    assert tab.evaluate("document.cookie") == ""  # and never a cookie


# -- widgets ----------------------------------------------------------------------------------


def seed_hits(server: RunningServer) -> None:
    rows = [
        {"path": "/a", "country": "US", "visitor_id": "v1"},
        {"path": "/a", "country": "US", "visitor_id": "v1"},
        {"path": "/a", "country": "DE", "visitor_id": "v2"},
        {"path": "/b", "country": "PL", "visitor_id": "v3"},
        {"path": "/b", "country": "XX", "visitor_id": "v4"},
    ]
    assert api_post(server, "hits/batch", rows)["created_count"] == len(rows)


COUNTERS = """
<p>Site: <span id=total class="tinylytics_hits"></span></p>
<p>/a: <span id=a class="tinylytics_hits" data-path="/a"></span></p>
<p>/b: <b id=b class="tinytrack_hits" data-path="/b"></b></p>
"""


@pytest.mark.parametrize("unique", [False, True], ids=["total", "unique"])
def test_hit_counter_shows_the_stored_numbers(
    server: RunningServer, site: DemoSite, tab: Page, unique: bool
) -> None:
    seed_hits(server)
    options = ("hits=unique" if unique else "hits") + "&ignore"  # ignore: keep the numbers still
    site.pages["/"] = page(embed_url(server, options), COUNTERS)
    tab.goto(site.url("/"))
    tab.wait_for_function("document.getElementById('total').textContent !== ''")
    about = site_info(server)
    board = {row["path"]: row for row in api_get(server, "leaderboard")["leaderboard"]}
    key = "unique_hits" if unique else "total_hits"
    assert tab.text_content("#total") == str(
        about["lifetime_unique_hits" if unique else "lifetime_hits"]
    )
    assert tab.text_content("#a") == str(board["/a"][key])
    assert tab.text_content("#b") == str(board["/b"][key])
    assert tab.text_content("#total") == ("4" if unique else "5")


def test_countries_widget_shows_flags_alphabetically(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    seed_hits(server)
    site.pages["/"] = page(
        embed_url(server, "countries&ignore"), "<div class=tinylytics_countries></div>"
    )
    tab.goto(site.url("/"))
    tab.wait_for_selector(".tinylytics_countries span")
    shown = tab.eval_on_selector_all("[data-country]", "els => els.map(e => e.dataset.country)")
    grouped = api_get(server, "hits", grouped="true", group_by="country")["grouped_hits"]
    assert shown == sorted(g["country"] for g in grouped if g["country"] != "XX")
    assert (
        tab.text_content(".tinylytics_countries")
        == "\U0001f1e9\U0001f1ea \U0001f1f5\U0001f1f1 \U0001f1fa\U0001f1f8"
    )


KUDOS = "<button id=k class='tinylytics_kudos'></button>"


def kudos_count(server: RunningServer, path: str) -> int:
    return int(api_get(server, "kudos", path=path)["pagination"]["total_count"])


def test_kudos_button_counts_once_and_remembers(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    for _ in range(2):
        api_post(server, "kudos", {"path": "/post"})
    site.pages["/post"] = page(embed_url(server, "kudos"), KUDOS)
    tab.goto(site.url("/post"))
    tab.wait_for_function("document.getElementById('k').textContent.includes('2')")
    assert tab.text_content("#k") == "\U0001f44b 2"
    assert tab.get_attribute("#k", "class") == "tinylytics_kudos"
    tab.click("#k")
    tab.wait_for_selector("#k.did_select")
    assert tab.text_content("#k") == "\U0001f44b 3"
    assert tab.is_disabled("#k")
    tab.click("#k", force=True)  # disabled, and remembered: a second press gives nothing
    settle()
    assert kudos_count(server, "/post") == 3
    tab.reload()
    tab.wait_for_selector("#k.did_select")
    tab.wait_for_function("document.getElementById('k').textContent.includes('3')")
    assert tab.is_disabled("#k")
    assert kudos_count(server, "/post") == 3


def test_kudos_with_custom_emoji_and_several_buttons(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    api_post(server, "kudos", {"path": "/post-1"})
    buttons = (
        "<button id=p1 class=tinylytics_kudos data-path='/post-1'></button>"
        "<button id=p2 class=tinylytics_kudos data-path='/post-2'></button>"
    )
    site.pages["/"] = page(embed_url(server, "kudos=\u2764\ufe0f&ignore"), buttons)
    tab.goto(site.url("/"))
    tab.wait_for_function("document.getElementById('p2').textContent !== ''")
    assert tab.text_content("#p1") == "\u2764\ufe0f 1"
    assert tab.text_content("#p2") == "\u2764\ufe0f 0"
    tab.click("#p2")
    tab.wait_for_selector("#p2.did_select")
    assert tab.text_content("#p2") == "\u2764\ufe0f 1"
    assert not tab.is_disabled("#p1")  # one button's kudos are not another's
    assert kudos_count(server, "/post-2") == 1 and kudos_count(server, "/post-1") == 1

    site.pages["/custom"] = page(embed_url(server, "kudos=custom&ignore"), buttons)
    tab.goto(site.url("/custom"))
    tab.wait_for_function("document.getElementById('p2').textContent !== ''")
    assert (tab.text_content("#p1"), tab.text_content("#p2")) == ("1", "1")
    assert tab.get_attribute("#p2", "class") == "tinylytics_kudos did_select"


# -- pixel ------------------------------------------------------------------------------------


def test_pixel_loads_as_an_image_and_records_a_hit(
    server: RunningServer, site: DemoSite, tab: Page
) -> None:
    good = f"{server.base_url}/pixel/{server.site_uid}.gif?path=/rss/first-post"
    bad = f"{server.base_url}/pixel/no-such-site.gif?path=%00%ff"
    site.pages["/mail"] = (
        f"<!doctype html><img id=good src='{good}' alt=''><img id=bad src='{bad}' alt=''>"
    )
    tab.goto(site.url("/mail"))
    tab.wait_for_function("[...document.images].every(i => i.complete)")
    sizes = tab.eval_on_selector_all(
        "img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])"
    )
    assert sizes == [[1, 1], [1, 1]]  # both decoded as images: nothing broken shows
    (hit,) = wait_for(lambda: hits(server))
    assert (hit["path"], hit["source"], hit["browser_name"]) == (
        "/rss/first-post",
        "pixel",
        "Chrome",
    )
