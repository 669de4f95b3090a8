"""CSV export, import, site deletion and backup: through the library, the HTTP API and the CLI,
on real database files."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FIREFOX_LINUX, Api, FakeClock
from tinytrack.errors import InvalidParameter

awkward = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
).map(lambda s: s.strip() or "x")
leading = st.sampled_from(["", "=", "+", "-", "@", "'", "\t", "'=", "''", "=cmd|' /C calc'!A0"])
cell = st.tuples(leading, awkward).map("".join)


async def fill(
    engine: tinytrack.Engine, clock: FakeClock, site_id: int, data: st.DataObject
) -> None:
    for _ in range(data.draw(st.integers(1, 4))):
        hits = [
            tinytrack.HitIn(
                path="/" + data.draw(cell),
                referrer=data.draw(st.none() | cell),
                user_agent=data.draw(st.none() | cell),
                source=data.draw(st.none() | cell),
                country=data.draw(st.sampled_from(["US", "PL", "XX"])),
                visitor_id=data.draw(st.sampled_from(["a", "b"])),
            )
            for _ in range(data.draw(st.integers(1, 5)))
        ]
        await engine.record_hits(site_id, hits)
        await engine.record_event(
            site_id,
            tinytrack.EventIn(
                event="shop.e" + data.draw(cell).replace(".", ""),
                value=data.draw(st.none() | cell),
                properties=data.draw(
                    st.none() | st.dictionaries(st.sampled_from(["k", "=x"]), cell, max_size=2)
                ),
                revenue=data.draw(st.none() | st.sampled_from(["12.5", "-3", "0.000001"])),
                currency="EUR",
                order_id=data.draw(st.none() | cell),
                path="/" + data.draw(cell),
            ),
        )
        await engine.create_kudo(site_id, tinytrack.KudoIn(path="/" + data.draw(cell)))
        clock.advance(data.draw(st.integers(0, 90_000)))


async def export_all(engine: tinytrack.Engine, site_id: int, kind: str) -> bytes:
    chunks = await engine.export_csv(site_id, kind)  # type: ignore[arg-type]
    return b"".join([c async for c in chunks])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_export_import_export_is_byte_identical(tmp_path: Path, data: st.DataObject) -> None:
    import tempfile

    clock = FakeClock()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    async with tinytrack.open(folder / "a.db", clock=clock) as source:
        site = await source.create_site("https://example.com", timezone="Asia/Kolkata")
        await fill(source, clock, site.id, data)
        first = {k: await export_all(source, site.id, k) for k in ("hits", "events", "kudos")}
    async with tinytrack.open(folder / "b.db", clock=clock) as target:
        copy = await target.create_site("https://example.org", timezone="Asia/Kolkata")
        for kind, body in first.items():
            path = folder / f"{kind}.csv"
            path.write_bytes(body)
            report = await target.import_csv(copy.id, path)
            assert report.rejected == []
            assert report.imported == report.rows
            again = await target.import_csv(copy.id, path)  # idempotent
            assert (again.imported, again.duplicates) == (0, report.rows)
            assert await export_all(target, copy.id, kind) == body
        a, b = await source_counts(folder / "a.db"), await source_counts(folder / "b.db")
        assert a == b  # rollups and unique flags restored too


async def source_counts(db: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(db)
    try:
        return tuple(
            conn.execute(sql).fetchall()
            for sql in (
                "SELECT dim, utc_day, local_day, value, hits, uniques FROM hit_rollups "
                "ORDER BY dim, utc_day, local_day, value",
                "SELECT COUNT(*), SUM(is_unique) FROM hits",
            )
        )
    finally:
        conn.close()


async def test_csv_is_rfc4180_with_neutralised_formulas(engine: tinytrack.Engine) -> None:
    site = await engine.create_site("https://example.com")
    await engine.record_hit(
        site.id,
        tinytrack.HitIn(
            path="/p", referrer='=HYPERLINK("x"),"\nline', source="@evil", country="PL"
        ),
    )
    body = await export_all(engine, site.id, "hits")
    assert body.startswith(b"created_at,path,url,referrer") and b"\r\n" in body
    (row,) = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert row["referrer"] == '\'=HYPERLINK("x"),"\nline'
    assert row["source"] == "'@evil"
    assert row["created_at"] == "2026-02-14T10:00:00Z"
    rows = [r async for r in await engine.export_rows(site.id, "hits")]
    assert rows == [row]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a,b,c\r\n1,2,3\r\n", "not a tinytrack export"),
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\xfe", "not UTF-8"),
        (b'created_at,uid,path\r\n2026-02-14T10:00:00Z,u1,"/unterminated\r\n', "malformed CSV"),
        (b"created_at,uid,path\r\n2026-02-14T10:00:00Z,u1,/a\x00b\r\n", "binary data"),
    ],
)
async def test_malformed_files_change_nothing(
    engine: tinytrack.Engine, tmp_path: Path, content: bytes, message: str
) -> None:
    site = await engine.create_site("https://example.com")
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidParameter, match=message):
        await engine.import_csv(site.id, path)
    assert (await engine.kudos(site.id)).kudos == []


async def test_bad_rows_are_reported_with_line_numbers(
    engine: tinytrack.Engine, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    path = tmp_path / "kudos.csv"
    path.write_bytes(
        b"created_at,uid,path\r\n"
        b"2026-02-14T10:00:00Z,u1,/good\r\n"
        b"yesterday,u2,/bad-time\r\n"
        b"2026-02-14T10:00:01Z,u3\r\n"
        b'2026-02-14T10:00:02Z,u4,"/multi\r\nline"\r\n'
        b"2026-02-14T10:00:03Z,u5,no-slash\r\n"
        b"2026-02-14T10:00:04Z,u6,/also-good\r\n"
    )
    report = await engine.import_csv(site.id, path)
    assert (report.rows, report.imported, report.duplicates) == (6, 3, 0)
    assert [(r.line, r.reason[:20]) for r in report.rejected] == [
        (3, "created_at must be I"),
        (4, "expected 3 cells, fo"),
        (7, "uid is required and "),
    ]


async def test_http_export_streams_and_checks_keys(api: Api, clock: FakeClock) -> None:
    for batch in range(12):
        await api.engine.record_hits(
            api.site.id,
            [tinytrack.HitIn(path=f"/p{batch}-{i}", country="PL") for i in range(1000)],
        )
    url = f"/api/v1/sites/{api.site.id}/export.csv"
    r = await api.client.get(url, headers=api.auth())
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="tinytrack-{api.site.uid}-hits.csv"'
    )
    assert r.content.count(b"\r\n") == 12_001
    # Streamed: the engine hands out the header and then one chunk per 5,000 rows as it reads
    # them (the real server sends them with chunked transfer encoding: see below).
    chunks = await api.engine.export_csv(api.site.id, "hits")
    assert (await anext(chunks)).startswith(b"created_at,")
    rest = [c async for c in chunks]
    assert len(rest) == 3 and sum(c.count(b"\r\n") for c in rest) == 12_000
    r = await api.client.get(
        url, params={"kind": "kudos", "start_date": "2026-02-14"}, headers=api.auth()
    )
    assert r.status_code == 200 and r.text == "created_at,uid,path\r\n"
    assert (await api.client.get(url)).status_code == 401
    assert (await api.client.get(url, headers=api.auth("tt-ro-nope"))).status_code == 401
    assert (
        await api.client.get("/api/v1/sites/999/export.csv", headers=api.auth())
    ).status_code == 404
    r = await api.client.get(url, params={"kind": "everything"}, headers=api.auth())
    assert r.status_code == 400 and r.json()["error"] == "kind must be hits, events or kudos"
    r = await api.client.get(url, params={"start_date": "2026-13-01"}, headers=api.auth())
    assert r.status_code == 400


async def test_delete_site_removes_everything_and_only_it(engine: tinytrack.Engine) -> None:
    keep = await engine.create_site("https://keep.example")
    gone = await engine.create_site("https://gone.example")
    for site in (keep, gone):
        await engine.record_hits(site.id, [tinytrack.HitIn(path="/", country="PL")] * 3)
        await engine.record_event(site.id, tinytrack.EventIn(event="a.b"))
        await engine.create_kudo(site.id, tinytrack.KudoIn(path="/"))
    await engine.delete_site(gone.id)
    with pytest.raises(tinytrack.NotFound):
        await engine.get_site(gone.id)
    assert (await engine.get_site(keep.id)).lifetime_hits == 3
    conn = sqlite3.connect(engine.path)  # type: ignore[arg-type]
    try:
        for table in ("hits", "events", "kudos", "hit_rollups", "hit_rollup_blocks", "journeys"):
            (n,) = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE site_id = ?", (gone.id,)
            ).fetchone()
            assert n == 0, table
    finally:
        conn.close()


async def test_backup_during_ingestion_is_a_consistent_moment(
    engine: tinytrack.Engine, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    stop = asyncio.Event()

    async def ingest() -> int:
        sent = 0
        while not stop.is_set():
            await engine.record_hits(site.id, [tinytrack.HitIn(path=f"/{sent}", country="PL")] * 50)
            sent += 50
        return sent

    task = asyncio.create_task(ingest())
    await asyncio.sleep(0.2)
    before = (await engine.get_site(site.id)).lifetime_hits
    await engine.backup(tmp_path / "copy.db")
    after = (await engine.get_site(site.id)).lifetime_hits
    stop.set()
    await task
    conn = sqlite3.connect(tmp_path / "copy.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (hits,) = conn.execute("SELECT COUNT(*) FROM hits").fetchone()
        (rolled,) = conn.execute("SELECT SUM(hits) FROM hit_rollups WHERE dim = 0").fetchone()
    finally:
        conn.close()
    assert before <= hits <= after and hits == rolled and hits > 0
    with pytest.raises(InvalidParameter, match="already exists"):
        await engine.backup(tmp_path / "copy.db")


def test_cli_export_import_delete_backup(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tinytrack", *args, "--db", db],
            capture_output=True, text=True, input=stdin, timeout=60,
        )  # fmt: skip

    assert run("site", "add", "https://example.com").returncode == 0
    asyncio.run(_seed(Path(db)))
    out = tmp_path / "hits.csv"
    r = run("export", "--site", "1", "--kind", "hits", "-o", str(out))
    assert r.returncode == 0 and r.stderr == ""  # quiet when not on a terminal
    assert out.read_text().count("\n") == 4
    r = run("import", str(out), "--site", "1")
    assert r.returncode == 0 and "0 imported, 3 skipped as duplicates, 0 rejected" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    r = run("import", str(bad), "--site", "1")
    assert (
        r.returncode == 2 and "not a tinytrack export" in r.stderr and "Traceback" not in r.stderr
    )
    r = run("backup", str(tmp_path / "copy.db"))
    assert r.returncode == 0 and (tmp_path / "copy.db").exists()
    r = run("site", "delete", "1")
    assert r.returncode == 2 and "--yes" in r.stderr
    r = run("site", "delete", "1", "--yes")
    assert r.returncode == 0 and "Deleted" in r.stdout


async def _seed(db: Path) -> None:
    async with tinytrack.open(db) as engine:
        await engine.record_hits(1, [tinytrack.HitIn(path="/a", user_agent=FIREFOX_LINUX)] * 3)


async def test_dashboard_export_buttons_need_the_session(api: Api) -> None:
    r = await api.client.get(f"/dashboard/sites/{api.site.id}/export.csv")
    assert r.status_code == 403
    await api.engine.set_owner_password("a good password")
    await api.client.post("/dashboard/login", data={"password": "a good password"})
    r = await api.client.get(f"/dashboard/sites/{api.site.id}/export.csv?kind=events")
    assert r.status_code == 200 and r.text.startswith("created_at,event,value")
    assert httpx.Headers(r.headers)["content-disposition"].startswith("attachment")


def test_export_over_a_real_server_is_chunked(tmp_path: Path) -> None:
    from tinytrack.testing import serve

    with serve(tmp_path / "t.db") as server:
        rows = [{"path": f"/p{i}", "country": "PL"} for i in range(1000)]
        for _ in range(6):
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
            body = b"".join(r.iter_bytes())
        assert body.count(b"\r\n") == 6001
        assert httpx.get(url).status_code == 401
