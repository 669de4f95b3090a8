"""CSV export through the library, the HTTP API (in-process and a real server) and the CLI, on
real database files."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import pty
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import CHROME_ANDROID, SAFARI_MAC, Api, FakeClock
from tinytrack.engine import csv_export
from tinytrack.errors import InvalidParameter

HIT_HEADER = b"created_at,path,url,referrer,source,country,browser_name,platform_name,is_mobile,"


async def export_all(engine: tinytrack.Engine, site_id: int, kind: str, **kw: Any) -> bytes:
    chunks = await engine.export_csv(site_id, kind, **kw)  # type: ignore[arg-type]
    return b"".join([c async for c in chunks])


async def record_many(engine: tinytrack.Engine, site_id: int, hits: list[tinytrack.HitIn]) -> None:
    for i in range(0, len(hits), 1000):  # the batch limit
        await engine.record_hits(site_id, hits[i : i + 1000])


def parse(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode(), newline=""), strict=True))


async def test_columns_times_and_formula_guards(engine: tinytrack.Engine, clock: FakeClock) -> None:
    site = await engine.create_site("https://example.com")
    await engine.record_hit(
        site.id,
        tinytrack.HitIn(
            path="/p,\"q\"", referrer='=HYPERLINK("x"),"\nline', source="@evil", country="PL",
            user_agent=SAFARI_MAC,
        ),
    )  # fmt: skip
    clock.advance(61)
    await engine.record_event(
        site.id,
        tinytrack.EventIn(
            event="shop.buy", value="-1", properties={"k": "v,w", "n": 2}, revenue="12.50",
            currency="EUR", order_id="+A1", path="/cart",
        ),
    )  # fmt: skip
    await engine.record_event(site.id, tinytrack.EventIn(event="shop.refund", revenue=-0.5))
    await engine.create_kudo(site.id, tinytrack.KudoIn(path="/p", custom_uid="'quoted"))

    hits = await export_all(engine, site.id, "hits")
    assert hits.startswith(HIT_HEADER) and hits.endswith(b"\r\n")
    assert hits.count(b"\r\n") == 2  # the header and one row; the cell's LF stays quoted
    (hit,) = parse(hits)
    assert hit["created_at"] == "2026-02-14T10:00:00Z"
    assert hit["path"] == '/p,"q"'
    assert hit["referrer"] == '\'=HYPERLINK("x"),"\nline'
    assert hit["source"] == "'@evil"
    assert (hit["browser_name"], hit["platform_name"], hit["is_mobile"]) == (
        "Safari",
        "macOS",
        "0",
    )
    assert hit["user_agent"] == SAFARI_MAC and hit["is_unique"] == "1"
    assert hit["url"] == ""  # none given: empty

    events = parse(await export_all(engine, site.id, "events"))
    assert [e["event"] for e in events] == ["shop.buy", "shop.refund"]
    assert events[0]["created_at"] == "2026-02-14T10:01:01Z"
    assert (events[0]["value"], events[0]["order_id"]) == ("'-1", "'+A1")
    assert events[0]["properties"] == '{"k":"v,w","n":2}'
    assert (events[0]["revenue"], events[0]["currency"]) == ("12.5", "EUR")
    assert (events[1]["revenue"], events[1]["currency"], events[1]["value"]) == ("-0.5", "", "")

    (kudo,) = parse(await export_all(engine, site.id, "kudos"))
    assert kudo == {"created_at": "2026-02-14T10:01:01Z", "uid": "''quoted", "path": "/p"}
    rows = [r async for r in await engine.export_rows(site.id, "kudos")]
    assert rows == [kudo]


# Any string a column can hold: NUL, lone CR, quotes, commas, non-ASCII, emoji, guards.
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["=1+1", "+", "-", "@", "'", "'=", "''", "\t", "\r", "\r\n", ",", '"', "\x00", "é😀"]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.tuples(ANY_TEXT, ANY_TEXT), min_size=1, max_size=8))
async def test_sql_cells_match_python_csv(tmp_path: Path, values: list[tuple[str, str]]) -> None:
    """The CSV that SQLite builds is exactly what Python's csv writer makes of the guarded
    values, for any string (the rows are written straight into the table)."""
    db = Path(tempfile.mkdtemp(dir=tmp_path)) / "t.db"
    async with tinytrack.open(db) as engine:
        site = await engine.create_site("https://example.com")
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO kudos (site_id, uid, path, created_at) VALUES (?, ?, ?, ?)",
            [
                (site.id, f"{uid}|{i}", path, 1_771_063_200 + i)
                for i, (uid, path) in enumerate(values)
            ],
        )
    conn.close()
    async with tinytrack.open(db) as engine:
        body = await export_all(engine, site.id, "kudos")
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(csv_export.KUDO_COLUMNS)
    for i, (uid, path) in enumerate(values):
        iso = dt.datetime.fromtimestamp(1_771_063_200 + i, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow([iso, csv_export.neutralise(f"{uid}|{i}"), csv_export.neutralise(path)])
    assert body == expected.getvalue().encode()
    rows = parse(body)
    assert [csv_export.restore(r["path"]) for r in rows] == [path for _uid, path in values]


def test_guard_round_trips_every_leading_character() -> None:
    for first in [*csv_export.FORMULA_START, "a", " ", ""]:
        for second in [*csv_export.FORMULA_START, "a", ""]:
            text = first + second + "x"
            guarded = csv_export.neutralise(text)
            assert not guarded.startswith(("=", "+", "-", "@", "\t", "\r"))
            assert csv_export.restore(guarded) == text


async def test_date_ranges_and_whole_history(engine: tinytrack.Engine, clock: FakeClock) -> None:
    site = await engine.create_site("https://example.com", timezone="America/New_York")
    # 2023 (three years back), Feb 15 03:00 UTC (= Feb 14 in New York), Feb 15 12:00 UTC.
    for path, moment in [
        ("/old", dt.datetime(2023, 1, 1, 12, tzinfo=dt.UTC)),
        ("/a-late", dt.datetime(2026, 2, 15, 3, tzinfo=dt.UTC)),
        ("/b-next", dt.datetime(2026, 2, 15, 12, tzinfo=dt.UTC)),
    ]:
        clock.now = moment.timestamp()
        await engine.record_hit(site.id, tinytrack.HitIn(path=path, country="PL"))
    clock.now = dt.datetime(2026, 2, 16, 12, tzinfo=dt.UTC).timestamp()

    async def paths(**kw: Any) -> list[str]:
        return [r["path"] for r in parse(await export_all(engine, site.id, "hits", **kw))]

    assert await paths() == ["/old", "/a-late", "/b-next"]  # no 30-day or 730-day limit
    feb15 = dt.date(2026, 2, 15)
    assert await paths(start_date=feb15, end_date=feb15) == ["/a-late", "/b-next"]
    assert await paths(start_date=feb15, end_date=feb15, time_zone="user") == ["/b-next"]
    assert await paths(end_date=dt.date(2026, 2, 14)) == ["/old"]
    assert await paths(start_date=dt.date(2026, 2, 16)) == []
    assert await engine.count_rows(site.id, "hits", start_date=feb15) == 2
    with pytest.raises(InvalidParameter, match="start_date"):
        await engine.export_csv(site.id, "hits", start_date=feb15, end_date=dt.date(2026, 2, 1))
    with pytest.raises(InvalidParameter, match="kind"):
        await engine.export_csv(site.id, "visits")  # type: ignore[arg-type]
    with pytest.raises(tinytrack.NotFound):
        await engine.export_csv(site.id + 1, "hits")


async def test_pages_neither_skip_nor_repeat_rows(
    engine: tinytrack.Engine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyset pages across many rows of the same second, another site's rows in between."""
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 7)
    site = await engine.create_site("https://example.com")
    other = await engine.create_site("https://other.example")
    expected = []
    for second in range(5):
        batch = [tinytrack.HitIn(path=f"/{second}-{i}", country="PL") for i in range(second * 4)]
        if batch:
            await engine.record_hits(site.id, batch)
            await engine.record_hits(other.id, batch[:3])
            expected += [h.path for h in batch]
        clock.advance(1)
    body = await export_all(engine, site.id, "hits")
    assert [r["path"] for r in parse(body)] == expected
    assert await engine.count_rows(site.id) == len(expected) == 40


async def test_an_export_is_the_rows_recorded_before_it_began(
    engine: tinytrack.Engine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 10)
    site = await engine.create_site("https://example.com")
    await engine.record_hits(site.id, [tinytrack.HitIn(path=f"/{i}") for i in range(25)])
    chunks = await engine.export_csv(site.id, "hits")
    first = [await anext(chunks), await anext(chunks)]
    clock.advance(5)  # later rows, and one dated back into the range already read
    await engine.record_hits(site.id, [tinytrack.HitIn(path="/new") for _ in range(30)])
    rest = [c async for c in chunks]
    rows = parse(b"".join(first + rest))
    assert len(rows) == 25 and "/new" not in {r["path"] for r in rows}


async def test_stopping_early_releases_everything(engine: tinytrack.Engine) -> None:
    site = await engine.create_site("https://example.com")
    await record_many(engine, site.id, [tinytrack.HitIn(path=f"/{i}") for i in range(12_000)])
    chunks = await engine.export_csv(site.id, "hits")
    assert (await anext(chunks)).startswith(HIT_HEADER)
    await anext(chunks)  # one chunk read, the next one prefetched
    await chunks.aclose()  # type: ignore[attr-defined]
    for _ in range(20):  # every reader connection is back in the pool and works
        assert await engine.count_rows(site.id) == 12_000


async def test_export_to_file_reports_progress_and_leaves_no_partial_file(
    engine: tinytrack.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 100)
    site = await engine.create_site("https://example.com")
    await engine.record_hits(site.id, [tinytrack.HitIn(path=f"/{i}") for i in range(250)])
    calls: list[tuple[int, int]] = []
    out = tmp_path / "out"
    out.mkdir()
    target = out / "hits.csv"
    rows = await engine.export_to_file(site.id, target, "hits", progress=lambda *a: calls.append(a))
    assert rows == 250 and calls == [(100, 250), (200, 250), (250, 250)]
    assert target.read_bytes() == await export_all(engine, site.id, "hits")
    assert list(out.iterdir()) == [target]
    with pytest.raises(tinytrack.NotFound):
        await engine.export_to_file(site.id + 5, out / "x.csv")
    assert list(out.iterdir()) == [target]


# -- HTTP ---------------------------------------------------------------------------------------


async def test_http_export_headers_body_and_errors(api: Api) -> None:
    await api.engine.record_hits(
        api.site.id, [tinytrack.HitIn(path=f"/p{i}", user_agent=CHROME_ANDROID) for i in range(30)]
    )
    url = f"/api/v1/sites/{api.site.id}/export.csv"
    r = await api.client.get(url, headers=api.auth())
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="tinytrack-{api.site.uid}-hits.csv"'
    )
    assert r.headers["cache-control"] == "no-store"
    assert r.content == await export_all(api.engine, api.site.id, "hits")
    r = await api.client.get(url, params={"kind": "hits"}, headers=api.write)  # full access too
    assert r.status_code == 200 and len(parse(r.content)) == 30
    r = await api.client.get(
        url,
        params={"kind": "kudos", "start_date": "2026-02-14", "end_date": "2026-02-15"},
        headers=api.auth(),
    )
    assert r.status_code == 200 and r.text == "created_at,uid,path\r\n"
    assert "tinytrack-" in r.headers["content-disposition"]
    assert "-kudos-2026-02-14-2026-02-15.csv" in r.headers["content-disposition"]


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "error"),
    [
        ("{id}", {}, None, 401, None),
        ("{id}", {}, {"Authorization": "Bearer tt-ro-nope"}, 401, None),
        ("{id}", {}, {"Authorization": "Basic abc"}, 401, None),
        ("999", {}, "ro", 404, "Site not found"),
        ("abc", {}, "ro", 404, "Site not found"),
        ("{id}", {"kind": "everything"}, "ro", 400, "kind must be hits, events, kudos or visitors"),
        ("{id}", {"start_date": "2026-13-01"}, "ro", 400, None),
        ("{id}", {"start_date": "2026-02-15", "end_date": "2026-02-01"}, "ro", 400, None),
        ("{id}", {"time_zone": "mars"}, "ro", 400, None),
    ],
)
async def test_http_export_errors_are_json(
    api: Api,
    path: str,
    params: dict[str, str],
    headers: dict[str, str] | str | None,
    status: int,
    error: str | None,
) -> None:
    sent = api.auth() if headers == "ro" else headers if isinstance(headers, dict) else {}
    url = f"/api/v1/sites/{path.format(id=api.site.id)}/export.csv"
    r = await api.client.get(url, params=params, headers=sent)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert "error" in body or "message" in body or "detail" in body
    if error is not None:
        assert r.json()["error"] == error


async def test_http_export_streams_before_the_last_row_is_read(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the ASGI level: the response's first body bytes go out while most chunks are still
    unread (each chunk is one query, counted here)."""
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 100)
    await api.engine.record_hits(
        api.site.id, [tinytrack.HitIn(path=f"/p{i}", country="PL") for i in range(1000)]
    )
    reads = 0
    chunk = csv_export.Export.chunk

    def counting(self: csv_export.Export, after: Any, raw: Any) -> Any:
        nonlocal reads
        reads += 1
        return chunk(self, after, raw)

    monkeypatch.setattr(csv_export.Export, "chunk", counting)
    app = api.client._transport.app  # type: ignore[attr-defined]
    reads_at_first_body: int | None = None
    bodies: list[bytes] = []

    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await finished.wait()  # as a server does: the disconnect comes after the response
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal reads_at_first_body
        if message["type"] == "http.response.body":
            if reads_at_first_body is None:
                reads_at_first_body = reads
            bodies.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    token = api.read_key.encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": f"/api/v1/sites/{api.site.id}/export.csv", "raw_path": b"",
        "root_path": "", "query_string": b"kind=hits", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80), "headers": [(b"authorization", b"Bearer " + token)],
    }  # fmt: skip
    await asyncio.wait_for(app(scope, receive, send), 60)
    assert reads == 11  # 10 full chunks of 100 rows, then an empty one
    assert reads_at_first_body is not None and reads_at_first_body <= 2
    assert len([b for b in bodies if b]) == 11  # the header, then one message per chunk
    assert b"".join(bodies) == await export_all(api.engine, api.site.id, "hits")


def test_export_over_a_real_server_is_chunked(tmp_path: Path) -> None:
    from tinytrack.testing import serve

    with serve(tmp_path / "t.db") as server:
        rows = [{"path": f"/p{i}", "country": "PL"} for i in range(1000)]
        for _ in range(12):
            httpx.post(
                f"{server.api}/sites/{server.site_id}/hits/batch",
                json=rows,
                headers={"Authorization": f"Bearer {server.full_key}"},
            ).raise_for_status()
        url = f"{server.api}/sites/{server.site_id}/export.csv"
        headers = {"Authorization": f"Bearer {server.read_key}"}
        with httpx.stream("GET", url, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in r.headers
            parts = r.iter_raw()
            first = next(parts)
            assert first.startswith(HIT_HEADER)
            body = first + b"".join(parts)
        assert body.count(b"\r\n") == 12_001
        assert httpx.get(url).status_code == 401


async def test_dashboard_export_buttons_need_the_session(api: Api) -> None:
    r = await api.client.get(f"/dashboard/sites/{api.site.id}/export.csv")
    assert r.status_code == 403
    await api.engine.set_owner_password("a good password")
    await api.client.post("/dashboard/login", data={"password": "a good password"})
    r = await api.client.get(f"/dashboard/sites/{api.site.id}/export.csv?kind=events")
    assert r.status_code == 200 and r.text.startswith("created_at,event,value")
    assert httpx.Headers(r.headers)["content-disposition"].startswith("attachment")


# -- CLI ----------------------------------------------------------------------------------------


def cli(db: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinytrack", *args, "--db", str(db)],
        capture_output=True, text=True, timeout=120, **kw,
    )  # fmt: skip


async def _seed(db: Path, hits: int = 3) -> int:
    async with tinytrack.open(db) as engine:
        site = await engine.create_site("https://example.com")
        await record_many(
            engine,
            site.id,
            [tinytrack.HitIn(path=f"/a{i}", user_agent=SAFARI_MAC) for i in range(hits)],
        )
        await engine.create_kudo(site.id, tinytrack.KudoIn(path="/a0", custom_uid="k1"))
        return site.id


def test_cli_export_to_a_file_and_to_stdout(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_seed(db))
    out = tmp_path / "hits.csv"
    r = cli(db, "export", "--site", "1", "--kind", "hits", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    assert r.stdout == f"Wrote 3 hits to {out}\n"
    assert out.read_bytes().startswith(HIT_HEADER) and out.read_bytes().count(b"\r\n") == 4
    r = subprocess.run(
        [sys.executable, "-m", "tinytrack", "export", "--site", "1", "--kind", "kudos",
         "--start", "2020-01-01", "--db", str(db)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.startswith(b"created_at,uid,path\r\n") and b",k1,/a0\r\n" in r.stdout
    uid = asyncio.run(_uid(db))
    r = cli(db, "export", "--site", uid, "--kind", "hits")
    assert r.returncode == 0 and r.stdout.count("\n") == 4
    r = cli(db, "export", "--site", "9", "--kind", "hits")
    assert r.returncode == 3 and "no site" in r.stderr and "Traceback" not in r.stderr
    r = cli(db, "export", "--site", "1", "--start", "yesterday")
    assert r.returncode == 2 and "--start" in r.stderr and "Traceback" not in r.stderr


async def _uid(db: Path) -> str:
    async with tinytrack.open(db) as engine:
        return (await engine.get_site(1)).uid


def test_cli_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_seed(db, hits=20_000))
    cmd = f"{sys.executable} -m tinytrack export --site 1 --db {db} | head -c 100 > /dev/null"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=120)
    assert b"Traceback" not in r.stderr and b"BrokenPipe" not in r.stderr, r.stderr


def test_cli_export_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_seed(db, hits=12_000))
    main, child = pty.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "tinytrack", "export", "--site", "1", "-o",
             str(tmp_path / "h.csv"), "--db", str(db)],
            stdout=subprocess.PIPE, stderr=child, timeout=120,
        )  # fmt: skip
        os.close(child)
        child = -1
        shown = b""
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
    finally:
        if child >= 0:
            os.close(child)
        os.close(main)
    assert r.returncode == 0
    assert b"export hits [" in shown and b"100.0% 12,000/12,000 rows" in shown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_export_connection_is_lean_and_low_priority(tmp_path: Path) -> None:
    import threading

    seen: list[Any] = []

    def probe() -> None:
        conn = sqlite3.connect(tmp_path / "x.db")
        csv_export.prepare_connection(conn)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        seen.append(conn.execute("PRAGMA cache_size").fetchone()[0])
        seen.append(conn.execute("PRAGMA mmap_size").fetchone()[0])
        conn.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)
    assert seen == [max(csv_export.BACKGROUND_NICE, process_nice), -8192, 0]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == process_nice  # only it


def test_exports_yield_to_heavy_ingestion() -> None:
    busy = csv_export.BUSY_ROWS_PER_S
    assert csv_export.pause_after(0.02, 0) == 0.0  # nothing written meanwhile: full speed
    assert csv_export.pause_after(0.02, int(busy * 0.02) - 1) == 0.0
    assert csv_export.pause_after(0.02, int(busy * 0.02) + 1) == 0.02 * csv_export.PAUSE_RATIO
    assert csv_export.pause_after(0.0, 10) == 0.0


async def test_visitor_properties_export_and_import(
    api: Api, clock: FakeClock, tmp_path: Path
) -> None:
    """``kind=visitors``: the properties other tools' formats set on visitors, one row per
    visitor and key with the stored JSON value; imported back, a newer stored value wins."""
    engine, site = api.engine, api.site
    for who, props in (("ann", {"plan": "pro", "seats": 3}), ("bob", {"=cmd": "-1", "ok": True})):
        await engine.track(
            site.id, tinytrack.TrackIn(kind="visit", visitor_id=who, visitor_properties=props)
        )
    r = await api.client.get(
        f"/api/v1/sites/{site.id}/export.csv", params={"kind": "visitors"}, headers=api.auth()
    )
    assert r.status_code == 200
    assert r.headers["content-disposition"].endswith('-visitors.csv"')
    assert r.content == await export_all(engine, site.id, "visitors")
    lines = r.text.split("\r\n")
    assert lines[0] == "updated_at,visitor_hash,key,value"
    stamp = "2026-02-14T10:00:00Z"
    cells = [row.split(",", 1)[1] for row in lines[1:-1]]  # without the time
    # (visitor hashes are opaque: the other cells are compared)
    assert all(row.startswith(stamp) for row in lines[1:-1]) and lines[-1] == ""
    assert sorted(c.split(",", 1)[1] for c in cells) == sorted(
        ['plan,"""pro"""', "seats,3", '\'=cmd,"""-1"""', "ok,true"]
    )
    path = tmp_path / "visitors.csv"
    path.write_bytes(r.content)
    copy = await engine.create_site("https://copy.example")
    report = await engine.import_csv(copy.id, path)
    assert (report.kind, report.imported, report.rejected_count) == ("visitors", 4, 0)
    assert await export_all(engine, copy.id, "visitors") == r.content
    again = await engine.import_csv(copy.id, path)
    assert (again.imported, again.duplicates) == (0, 4)

    # A value set later than the file's is kept; bad rows are reported by line.
    ann = next(h for h in parse(r.content) if h["key"] == "plan")["visitor_hash"]
    later = tmp_path / "later.csv"
    later.write_text(
        f'updated_at,visitor_hash,key,value\r\n2026-02-14T10:01:00Z,{ann},plan,"""team"""\r\n',
        newline="",
    )
    assert (await engine.import_csv(copy.id, later)).imported == 1
    path.write_text(
        "updated_at,visitor_hash,key,value\r\n"
        f'{stamp},{ann},plan,"""free"""\r\n'
        f"{stamp},{ann},plan,free\r\n"
        f"{stamp},not a hash,plan,1\r\n"
        f"{stamp},{ann},{'k' * 65},1\r\n"
        f"{stamp},{ann},list,[1]\r\n",
        newline="",
    )
    report = await engine.import_csv(copy.id, path)
    assert (report.imported, report.duplicates) == (0, 1)
    assert [(row.line, row.reason.split(" ")[0]) for row in report.rejected] == [
        (3, "value"), (4, "visitor_hash"), (5, "key"), (6, "value"),
    ]  # fmt: skip
    assert (await engine.visitor_properties(copy.id, ann))["plan"] == "team"
