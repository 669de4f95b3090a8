"""Behind a reverse proxy: the client address comes from X-Forwarded-For / Forwarded only when
the direct peer is a trusted proxy. Through a real server on 127.0.0.1 (the "proxy" is this
test, which is what a local Caddy or nginx looks like to tinytrack), plus a table of header
shapes for the parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tinytrack.config import Settings
from tinytrack.errors import InvalidParameter
from tinytrack.server.clients import Proxies
from tinytrack.testing import RunningServer, serve

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
US, GB = "8.8.8.8", "81.2.69.142"


@pytest.fixture
def trusted() -> Iterator[RunningServer]:
    with serve(trusted_proxies="127.0.0.1, ::1") as running:
        yield running


@pytest.fixture
def untrusted() -> Iterator[RunningServer]:
    with serve() as running:  # the default: no proxy trusted
        yield running


def view(server: RunningServer, path: str = "/post", **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/collector/{server.site_uid}",
        content=f'{{"path": "{path}", "url": "https://example.com{path}"}}',
        headers={"Origin": "https://example.com", "User-Agent": BROWSER, **headers},
    )


def grouped(server: RunningServer, by: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.api}/sites/{server.site_id}/hits",
        params={"grouped": "true", "group_by": by},
        headers={"Authorization": f"Bearer {server.read_key}"},
    )
    rows: list[dict[str, Any]] = r.json()["grouped_hits"]
    return rows


def test_trusted_proxy_forwarded_addresses_are_the_clients(trusted: RunningServer) -> None:
    assert view(trusted, **{"X-Forwarded-For": US}).status_code == 201
    assert view(trusted, **{"X-Forwarded-For": GB}).status_code == 201
    countries = {row["country"]: row["hit_count"] for row in grouped(trusted, "country")}
    assert countries == {"US": 1, "GB": 1}
    (page,) = grouped(trusted, "path")
    assert (page["views"], page["unique_views"]) == (2, 2)  # two visitors, two unique hashes


def test_right_most_untrusted_entry_wins(trusted: RunningServer) -> None:
    # The client wrote "81.2.69.142"; the proxy appended the address it saw (8.8.8.8).
    assert view(trusted, **{"X-Forwarded-For": f"{GB}, {US}"}).status_code == 201
    # An inner trusted proxy (127.0.0.1) is skipped.
    assert view(trusted, **{"X-Forwarded-For": f"{GB}, 127.0.0.1"}).status_code == 201
    # RFC 7239 Forwarded, with an IPv6 address and port.
    forwarded = 'for="[2001:4860:4860::8888]:4711";proto=https'
    assert view(trusted, **{"Forwarded": forwarded}).status_code == 201
    countries = {row["country"]: row["hit_count"] for row in grouped(trusted, "country")}
    assert countries == {"US": 2, "GB": 1}


def test_untrusted_peer_headers_are_ignored(untrusted: RunningServer) -> None:
    assert view(untrusted, **{"X-Forwarded-For": US}).status_code == 201
    assert view(untrusted, **{"Forwarded": f"for={GB}"}).status_code == 201
    assert {row["country"] for row in grouped(untrusted, "country")} == {"XX"}  # 127.0.0.1
    (page,) = grouped(untrusted, "path")
    assert page["unique_views"] == 1  # one visitor: the forged headers changed nothing


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "garbage"},
        {"X-Forwarded-For": ""},
        {"X-Forwarded-For": ",,, ,"},
        {"X-Forwarded-For": "999.1.1.1"},
        {"X-Forwarded-For": "unknown, _hidden"},
        {"X-Forwarded-For": "1.2.3.4:99999:1"},
        {"X-Forwarded-For": ", ".join(["10.0.0.1"] * 500)},
        {"Forwarded": "for=;;;,,=="},
        {"Forwarded": 'for="[::1'},
        {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b\tc"},
    ],
)
def test_malformed_forwarding_headers_never_fail(
    trusted: RunningServer, headers: dict[str, str]
) -> None:
    r = view(trusted, **headers)
    assert r.status_code == 201, r.text
    r = httpx.get(f"{trusted.base_url}/pixel/{trusted.site_uid}.gif", headers=headers)
    assert r.status_code == 200 and r.content[:6] == b"GIF89a"
    r = httpx.get(f"{trusted.api}", headers=headers)
    assert r.status_code == 200
    assert r.json()["base_url"] == trusted.api  # nothing usable: the request's own URL


def test_rate_limit_buckets_follow_the_real_client() -> None:
    with serve(trusted_proxies="127.0.0.1", collector_rate_limit=2) as server:
        for address in (US, GB):
            for _ in range(2):
                assert view(server, **{"X-Forwarded-For": address}).status_code == 201
        assert view(server, **{"X-Forwarded-For": US}).status_code == 429


def test_public_urls_follow_the_proxy(trusted: RunningServer, untrusted: RunningServer) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "stats.example.org"}
    assert httpx.get(trusted.api, headers=headers).json()["base_url"] == (
        "https://stats.example.org/api/v1"
    )
    forwarded = {"Forwarded": 'for=8.8.8.8;proto=https;host="stats.example.net"'}
    assert httpx.get(trusted.api, headers=forwarded).json()["base_url"] == (
        "https://stats.example.net/api/v1"
    )
    assert httpx.get(untrusted.api, headers=headers).json()["base_url"] == untrusted.api


# -- the parser, table-driven -----------------------------------------------------------------


def scope(peer: str, *headers: tuple[str, str]) -> Any:
    return {
        "type": "http",
        "client": (peer, 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("trusted_list", "peer", "headers", "client"),
    [
        ("", "1.1.1.1", [("X-Forwarded-For", US)], "1.1.1.1"),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", US)], US),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", f"{GB}, 10.9.9.9")], GB),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", "10.5.5.5, 10.9.9.9")], "10.5.5.5"),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", f"{US}:4711")], US),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", "junk")], "10.1.2.3"),
        ("10.0.0.0/8", "10.1.2.3", [("X-Forwarded-For", GB), ("X-Forwarded-For", US)], US),
        ("::1", "::1", [("Forwarded", 'for="[2001:db8::7]:80", for=10.0.0.1')], "10.0.0.1"),
        ("::1", "::1", [("Forwarded", 'For="[2001:db8::7]"')], "2001:db8::7"),
        ("127.0.0.1", "203.0.113.5", [("X-Forwarded-For", US)], "203.0.113.5"),
    ],
)
def test_client_address_table(
    trusted_list: str, peer: str, headers: list[tuple[str, str]], client: str
) -> None:
    assert Proxies(trusted_list).client(scope(peer, *headers)) == client


def test_bad_trusted_proxy_setting_is_a_clear_error() -> None:
    with pytest.raises(InvalidParameter, match="not an IP address or CIDR"):
        Settings.from_env({}, trusted_proxies="127.0.0.1, localhost")
    assert Settings.from_env({"TINYTRACK_TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies == (
        "10.0.0.0/8"
    )
