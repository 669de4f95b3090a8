"""Kudos through the real app: the seed's examples for GET/POST/DELETE, errors, filters."""

from __future__ import annotations

import pytest

from tests.conftest import Api

KUDO_KEYS = {"id", "uid", "path", "created_at"}


async def test_create_kudo_seed_example(api: Api) -> None:
    r = await api.client.post(
        f"/api/v1/sites/{api.site.id}/kudos",
        json={"path": "/pricing", "custom_uid": "pricing-kudo-1"},
        headers=api.write,
    )
    assert r.status_code == 201
    assert r.json() == {
        "status": "created",
        "kudo": {
            "id": 1,
            "uid": "pricing-kudo-1",
            "path": "/pricing",
            "created_at": "2026-02-14T10:00:00Z",
        },
    }


async def test_generated_uid_and_path_normalisation(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/kudos"
    uids = set()
    for _ in range(3):
        r = await api.client.post(url, json={"path": "blog/post?x=1"}, headers=api.write)
        assert r.status_code == 201
        kudo = r.json()["kudo"]
        assert kudo["path"] == "/blog/post"
        uids.add(kudo["uid"])
    assert len(uids) == 3 and all(len(u) >= 12 for u in uids)
    assert (await api.engine.kudo_count(api.site.id, "/blog/post")) == 3


async def test_duplicate_custom_uid_is_a_clear_422(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/kudos"
    body = {"path": "/pricing", "custom_uid": "same"}
    assert (await api.client.post(url, json=body, headers=api.write)).status_code == 201
    r = await api.client.post(url, json=body, headers=api.write)
    assert r.status_code == 422
    assert r.json() == {
        "error": "Uid has already been taken",
        "status": "error",
        "errors": ["Uid has already been taken"],
    }
    # The same uid on another site is a different kudo.
    other = await api.engine.create_site("https://other.example")
    r = await api.client.post(f"/api/v1/sites/{other.id}/kudos", json=body, headers=api.write)
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Path can't be blank"),
        ({"path": "  "}, "Path can't be blank"),
        ({"path": "/a", "custom_uid": " "}, "Uid can't be blank"),
        ({"path": 3}, "Expected `str | null`, got `int`"),
        ({"path": "/a", "custom_uid": "u" * 129}, "Expected `str` of length <= 128"),
    ],
)
async def test_invalid_kudo_is_422(api: Api, body: object, error: str) -> None:
    r = await api.client.post(f"/api/v1/sites/{api.site.id}/kudos", json=body, headers=api.write)
    assert r.status_code == 422
    assert r.json()["errors"][0].startswith(error)


async def test_kudo_on_an_ignored_path_is_202(api: Api) -> None:
    site = await api.engine.create_site("https://other.example", ignore_paths=["/drafts/*"])
    r = await api.client.post(
        f"/api/v1/sites/{site.id}/kudos", json={"path": "/drafts/x"}, headers=api.write
    )
    assert (r.status_code, r.json()) == (
        202,
        {"status": "ignored", "reason": "Path matches ignore rule"},
    )


async def test_delete_kudo_200_then_404(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/kudos"
    await api.client.post(
        url, json={"path": "/p", "custom_uid": "pricing-kudo-1"}, headers=api.write
    )
    r = await api.client.delete(url + "/pricing-kudo-1", headers=api.write)
    assert (r.status_code, r.json()) == (200, {"status": "deleted", "uid": "pricing-kudo-1"})
    r = await api.client.delete(url + "/pricing-kudo-1", headers=api.write)
    assert (r.status_code, r.json()) == (404, {"error": "Kudo not found"})
    r = await api.client.delete(url + "/never-existed", headers=api.write)
    assert r.status_code == 404


async def test_kudo_writes_need_full_access(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/kudos"
    await api.client.post(url, json={"path": "/p", "custom_uid": "k1"}, headers=api.write)
    r = await api.client.post(url, json={"path": "/p"}, headers=api.auth())
    assert r.status_code == 403 and "error" in r.json()
    r = await api.client.delete(url + "/k1", headers=api.auth())
    assert r.status_code == 403
    r = await api.client.delete(url + "/k1")
    assert r.status_code == 401
    # Nothing was deleted by the refused calls.
    listed = await api.client.get(url, headers=api.auth())
    assert [k["uid"] for k in listed.json()["kudos"]] == ["k1"]


async def test_kudo_of_another_site_is_not_deleted(api: Api) -> None:
    other = await api.engine.create_site("https://other.example")
    await api.client.post(
        f"/api/v1/sites/{other.id}/kudos", json={"path": "/", "custom_uid": "k"}, headers=api.write
    )
    r = await api.client.delete(f"/api/v1/sites/{api.site.id}/kudos/k", headers=api.write)
    assert r.status_code == 404
    r = await api.client.delete("/api/v1/sites/999/kudos/k", headers=api.write)
    assert (r.status_code, r.json()) == (404, {"error": "Site not found"})


async def test_read_kudos_seed_shape_filters_dates_and_lifetime_counter(api: Api) -> None:
    url = f"/api/v1/sites/{api.site.id}/kudos"
    clock = api.engine._clock
    assert hasattr(clock, "advance")
    await api.client.post(url, json={"path": "/pricing", "custom_uid": "a"}, headers=api.write)
    clock.advance(-5 * 86400)  # a kudo from 2026-02-09
    await api.client.post(url, json={"path": "/pricing", "custom_uid": "b"}, headers=api.write)
    clock.advance(5 * 86400)
    await api.client.post(url, json={"path": "/about", "custom_uid": "c"}, headers=api.write)

    r = await api.client.get(
        url, params={"start_date": "2026-02-01", "end_date": "2026-02-14"}, headers=api.auth()
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"kudos", "pagination", "filters"}
    assert all(set(k) == KUDO_KEYS for k in body["kudos"])
    assert [k["uid"] for k in body["kudos"]] == ["c", "a", "b"]  # newest first
    assert body["filters"] == {
        "start_date": "2026-02-01",
        "end_date": "2026-02-14",
        "time_zone": "utc",
        "path": None,
        "uid": None,
    }
    assert body["pagination"] == {
        "current_page": 1,
        "per_page": 100,
        "total_count": 3,
        "total_pages": 1,
    }
    by_path = (await api.client.get(url, params={"path": "/pricing"}, headers=api.auth())).json()
    assert sorted(k["uid"] for k in by_path["kudos"]) == ["a", "b"]
    by_uid = (await api.client.get(url, params={"uid": "b"}, headers=api.auth())).json()
    assert [k["created_at"] for k in by_uid["kudos"]] == ["2026-02-09T10:00:00Z"]
    recent = await api.client.get(url, params={"start_date": "2026-02-10"}, headers=api.auth())
    assert recent.json()["pagination"]["total_count"] == 2
    paged = await api.client.get(url, params={"per_page": "2", "page": "2"}, headers=api.auth())
    assert [k["uid"] for k in paged.json()["kudos"]] == ["b"]
    site = (await api.client.get(f"/api/v1/sites/{api.site.id}", headers=api.auth())).json()
    assert site["lifetime_kudos"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": "1001"},
        {"per_page": "0"},
        {"page": "-1"},
        {"start_date": "14/02/2026"},
        {"start_date": "2026-02-14", "end_date": "2026-02-01"},
        {"time_zone": "local"},
    ],
)
async def test_bad_kudos_query_parameters_are_400(api: Api, params: dict[str, str]) -> None:
    r = await api.client.get(
        f"/api/v1/sites/{api.site.id}/kudos", params=params, headers=api.auth()
    )
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)
