"""CSV import: export -> import into a fresh database -> export gives the same bytes (on random,
awkward data), importing twice adds nothing, bad rows are reported by line, malformed files
change nothing. Real database files throughout."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinytrack
from tests.conftest import FIREFOX_LINUX, SAFARI_MAC, T0, FakeClock
from tinytrack.engine import csv_import
from tinytrack.errors import InvalidParameter, Overloaded

KINDS = ("hits", "events", "kudos", "visitors")

awkward = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
leading = st.sampled_from(["", "=", "+", "-", "@", "'", "\t", "'=", "''", "=cmd|' /C calc'!A0"])
cell = st.tuples(leading, awkward, st.sampled_from(["", ",", '"', "\r\n", "\n", "é😀"])).map(
    "".join
)


async def export_all(engine: tinytrack.Engine, site_id: int, kind: str) -> bytes:
    chunks = await engine.export_csv(site_id, kind)  # type: ignore[arg-type]
    return b"".join([c async for c in chunks])


async def fill(engine: tinytrack.Engine, clock: FakeClock, site_id: int, data: Any) -> None:
    """Hits, events (properties, revenue, order ids) and kudos with awkward values, over a few
    days, through the library (the real enrichment and writer)."""
    for day in range(data.draw(st.integers(1, 4))):
        hits = [
            tinytrack.HitIn(
                path="/" + data.draw(cell),
                url=data.draw(st.none() | cell.map(lambda c: "https://example.com/" + c)),
                referrer=data.draw(st.none() | cell),
                user_agent=data.draw(st.none() | cell | st.just(SAFARI_MAC)),
                source=data.draw(st.none() | cell),
                country=data.draw(st.sampled_from(["US", "PL", "XX", None])),
                visitor_id=data.draw(st.sampled_from(["a", "b", None])),
            )
            for _ in range(data.draw(st.integers(1, 5)))
        ]
        if data.draw(st.booleans()):
            hits.append(hits[0])  # the same view twice in one second: both must survive
        await engine.record_hits(site_id, hits)
        await engine.record_event(
            site_id,
            tinytrack.EventIn(
                event="shop.e" + data.draw(cell).replace(".", ""),
                value=data.draw(st.none() | cell),
                properties=data.draw(
                    st.none()
                    | st.dictionaries(
                        st.sampled_from(["k", "=x", "a,b"]),
                        cell | st.integers(-5, 5) | st.booleans() | st.none(),
                        max_size=3,
                    )
                ),
                revenue=data.draw(
                    st.none() | st.sampled_from(["12.5", "-3", "0.000001", "1e3", 7, 0.25])
                ),
                currency=data.draw(st.sampled_from(["EUR", "USD"])),
                order_id=data.draw(st.none() | cell),
                path=data.draw(st.none() | cell.map(lambda c: "/" + c)),
                user_agent=data.draw(st.none() | st.just(FIREFOX_LINUX)),
            ),
        )
        path = "/" + data.draw(cell)
        custom = data.draw(st.none() | cell)
        # A custom uid is unique per site: the day in it keeps two days' uids apart.
        uid = None if custom is None else f"{custom}{day}"
        await engine.create_kudo(site_id, tinytrack.KudoIn(path=path, custom_uid=uid))
        # Visitor properties (other tools' formats), some replaced on a later day.
        await engine.track(
            site_id,
            tinytrack.TrackIn(
                kind="visit",
                visitor_id=data.draw(st.sampled_from(["a", "b", "c"])),
                visitor_properties=data.draw(
                    st.dictionaries(
                        st.sampled_from(["plan", "=x", "a,b", "é"]) | cell,
                        cell | st.integers(-5, 5) | st.booleans() | st.floats(-1e6, 1e6),
                        min_size=1,
                        max_size=3,
                    )
                ),
            ),
        )
        clock.advance(data.draw(st.integers(0, 90_000)))


def rollups(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT dim, utc_day, local_day, value, hits, uniques FROM hit_rollups "
            "ORDER BY dim, utc_day, local_day, value"
        ).fetchall()
    finally:
        conn.close()


def table_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'"
            )
        ]
        return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_export_import_export_is_byte_identical(tmp_path: Path, data: Any) -> None:
    clock = FakeClock()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    async with tinytrack.open(folder / "a.db", clock=clock) as source:
        site = await source.create_site("https://example.com", timezone="Asia/Kolkata")
        await fill(source, clock, site.id, data)
        first = {k: await export_all(source, site.id, k) for k in KINDS}
    async with tinytrack.open(folder / "b.db", clock=clock) as target:
        copy = await target.create_site("https://example.org", timezone="Asia/Kolkata")
        for kind, body in first.items():
            path = folder / f"{kind}.csv"
            path.write_bytes(body)
            report = await target.import_csv(copy.id, path)
            assert report.kind == kind and report.rejected == [] and report.rejected_count == 0
            assert report.imported == report.rows == body.count(b"\r\n") - 1 - _quoted_breaks(body)
            again = await target.import_csv(copy.id, path)  # idempotent
            assert (again.imported, again.duplicates, again.rows) == (0, report.rows, report.rows)
            assert await export_all(target, copy.id, kind) == body
    # Rollups (hits and events, unique flags included) are restored through the writer.
    assert rollups(folder / "a.db") == rollups(folder / "b.db")


def _quoted_breaks(body: bytes) -> int:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    return sum("".join(r).count("\r\n") for r in rows)


ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10) | st.sampled_from(
    ["=1+1", "+", "-", "@", "'", "'=", "''", "\t", "\r", "\r\n", ",", '"', "\x00", "é😀"]
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(ANY_TEXT, min_size=7, max_size=7), min_size=1, max_size=6))
async def test_any_stored_string_round_trips(tmp_path: Path, rows: list[list[str]]) -> None:
    """Every text column, holding any string at all (written straight into the table)."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    clock = FakeClock()
    async with tinytrack.open(folder / "a.db", clock=clock) as source:
        site = await source.create_site("https://example.com")
    conn = sqlite3.connect(folder / "a.db")
    with conn:
        conn.executemany(
            "INSERT INTO hits (site_id, created_at, path, url, referrer, source, country, "
            "browser_name, platform_name, is_mobile, user_agent, unique_hash, visitor_hash, "
            "is_unique) VALUES (?, ?, ?, ?, ?, ?, 'PL', ?, ?, 0, ?, 'ab12', 'cd34', 1)",
            [(site.id, int(T0) - i, "/" + r[0], *r[1:]) for i, r in enumerate(rows)],
        )
    conn.close()
    async with tinytrack.open(folder / "a.db", clock=clock) as source:
        body = await export_all(source, site.id, "hits")
    (folder / "hits.csv").write_bytes(body)
    async with tinytrack.open(folder / "b.db", clock=clock) as target:
        copy = await target.create_site("https://example.org")
        report = await target.import_csv(copy.id, folder / "hits.csv")
        assert report.rejected == [] and report.imported == len(rows)
        assert await export_all(target, copy.id, "hits") == body


async def _hits(engine: tinytrack.Engine, site_id: int, paths: list[str]) -> None:
    await engine.record_hits(
        site_id, [tinytrack.HitIn(path=p, user_agent=SAFARI_MAC, country="PL") for p in paths]
    )


async def test_only_what_is_missing_is_added(
    engine: tinytrack.Engine, clock: FakeClock, tmp_path: Path
) -> None:
    """Counting repeats: a file overlapping the database adds exactly the rest."""
    site = await engine.create_site("https://example.com")
    await _hits(engine, site.id, ["/a", "/a", "/b"])  # /a twice in the same second
    clock.advance(10)
    await _hits(engine, site.id, ["/c"])
    full = tmp_path / "full.csv"
    full.write_bytes(await export_all(engine, site.id, "hits"))
    lines = full.read_bytes().split(b"\r\n")
    partial = tmp_path / "partial.csv"
    partial.write_bytes(b"\r\n".join([lines[0], lines[1], lines[4], b""]))  # one /a and /c

    other = await engine.create_site("https://other.example")
    report = await engine.import_csv(other.id, partial)
    assert (report.imported, report.duplicates) == (2, 0)
    report = await engine.import_csv(other.id, full)
    assert (report.rows, report.imported, report.duplicates) == (4, 2, 2)
    assert await export_all(engine, other.id, "hits") == full.read_bytes()
    report = await engine.import_csv(other.id, full)
    assert (report.imported, report.duplicates) == (0, 4)


async def test_a_file_out_of_time_order_is_still_idempotent(
    engine: tinytrack.Engine, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identical rows of one second far apart in the file (other batches in between)."""
    monkeypatch.setattr(csv_import, "BATCH", 3)
    site = await engine.create_site("https://example.com")
    for second in range(6):
        await _hits(engine, site.id, ["/same", "/same", f"/{second}"])
        clock.advance(1)
    body = await export_all(engine, site.id, "hits")
    header, *lines = body.split(b"\r\n")[:-1]
    random.Random(5).shuffle(lines)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_bytes(b"\r\n".join([header, *lines, b""]))
    assert not csv_import.check_file(shuffled).in_order

    copy = await engine.create_site("https://copy.example")
    report = await engine.import_csv(copy.id, shuffled)
    assert (report.rows, report.imported, report.duplicates) == (18, 18, 0)
    report = await engine.import_csv(copy.id, shuffled)
    assert (report.imported, report.duplicates) == (0, 18)
    again = await export_all(engine, copy.id, "hits")
    assert sorted(again.split(b"\r\n")) == sorted(body.split(b"\r\n"))


async def test_duplicates_by_order_id_and_kudo_uid(
    engine: tinytrack.Engine, clock: FakeClock, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    await engine.record_event(
        site.id, tinytrack.EventIn(event="shop.buy", revenue=5, currency="EUR", order_id="o-1")
    )
    await engine.create_kudo(site.id, tinytrack.KudoIn(path="/a", custom_uid="k-1"))
    events, kudos = tmp_path / "events.csv", tmp_path / "kudos.csv"
    events.write_bytes(await export_all(engine, site.id, "events"))
    kudos.write_bytes(await export_all(engine, site.id, "kudos"))
    # The same order id and kudo uid again, at other times and with other content.
    events.write_text(events.read_text().replace("10:00:00Z,shop.buy", "10:05:00Z,shop.other"))
    kudos.write_text(kudos.read_text().replace("10:00:00Z,k-1,/a", "10:07:00Z,k-1,/b"))
    assert (await engine.import_csv(site.id, events)).duplicates == 1
    assert (await engine.import_csv(site.id, kudos)).duplicates == 1
    assert len((await engine.kudos(site.id)).kudos) == 1


async def test_bad_rows_are_reported_by_line_and_never_stop_the_rest(
    engine: tinytrack.Engine, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    path = tmp_path / "kudos.csv"
    path.write_bytes(
        b"created_at,uid,path\r\n"
        b"2026-02-14T10:00:00Z,u1,/good\r\n"  # line 2
        b"yesterday,u2,/bad-time\r\n"  # 3
        b"2026-02-14T10:00:01Z,u3\r\n"  # 4
        b'2026-02-14T10:00:02Z,u4,"/multi\r\nline"\r\n'  # 5-6: fine
        b"2026-02-14T10:00:03Z,u5,no-slash\r\n"  # 7
        b"2026-02-30T10:00:03Z,u6,/feb-30\r\n"  # 8
        b"2026-02-20T10:00:03Z,u7,/future\r\n"  # 9
        b"2026-02-14T10:00:04Z,,/no-uid\r\n"  # 10
        b"2026-02-14T10:00:04Z,u8,/also-good\r\n"  # 11
    )
    report = await engine.import_csv(site.id, path)
    assert (report.rows, report.imported, report.duplicates) == (9, 3, 0)
    assert report.rejected_count == 6
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "created_at must be ISO 8601 UTC, like 2026-02-14T10:00:00Z"),
        (4, "expected 3 cells, found 2"),
        (7, "path must start with /"),
        (8, "created_at is not a valid time: 2026-02-30T10:00:03Z"),
        (9, "created_at is in the future"),
        (10, "uid is required"),
    ]
    assert sorted(k.path for k in (await engine.kudos(site.id)).kudos) == [
        "/also-good",
        "/good",
        "/multi\r\nline",
    ]


async def test_event_and_hit_rows_are_checked(engine: tinytrack.Engine, tmp_path: Path) -> None:
    site = await engine.create_site("https://example.com")
    await engine.record_event(site.id, tinytrack.EventIn(event="a.b", revenue="1.5"))
    good = (await export_all(engine, site.id, "events")).decode().split("\r\n")[1]
    cells = good.split(",")
    bad = {
        "event": "nodot",
        "country": "pl",
        "is_unique": "2",
        "unique_hash": "=1+1",
        "properties": "[1]",
        "revenue": "1.0000001",
    }
    from tinytrack.engine.csv_export import EVENT_COLUMNS

    lines = [",".join(EVENT_COLUMNS)]
    for column, value in bad.items():
        row = list(cells)
        row[EVENT_COLUMNS.index(column)] = value
        lines.append(",".join(row))
    path = tmp_path / "events.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    report = await engine.import_csv(site.id, path)
    assert report.imported == 0 and report.rejected_count == len(bad)
    reasons = [r.reason for r in report.rejected]
    assert reasons[0] == "event must be in category.action form"
    assert reasons[1] == "country must be a 2-letter uppercase code"
    assert reasons[2] == "is_unique must be 0 or 1"
    assert reasons[3].startswith("unique_hash must be")
    assert reasons[4] == "properties must be a JSON object"
    assert "revenue" in reasons[5].lower()


async def test_the_rejected_list_is_capped_but_counted(
    engine: tinytrack.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "MAX_REJECTED", 2)
    site = await engine.create_site("https://example.com")
    path = tmp_path / "kudos.csv"
    path.write_text("created_at,uid,path\r\n" + "bad,u,/\r\n" * 5)
    report = await engine.import_csv(site.id, path)
    assert report.rejected_count == 5 and [r.line for r in report.rejected] == [2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"a,b,c\r\n1,2,3\r\n", "not a tinytrack export"),
        (b"created_at,uid\r\n2026-02-14T10:00:00Z,u1\r\n", "not a tinytrack export"),
        (b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\xfe\x00", "not UTF-8"),
        (random.Random(1).randbytes(4096), "not UTF-8"),
        ("created_at,uid,path\r\n".encode("utf-16"), "not"),
        (b"created_at,uid,path\r\n2026-02-14T10:00:00Z,u1,/caf\xe9\r\n", "not UTF-8"),
        (b'created_at,uid,path\r\n2026-02-14T10:00:00Z,u1,"/unterminated\r\n', "malformed CSV"),
        (b'created_at,uid,path\r\n2026-02-14T10:00:00Z,u1,"/a"b\r\n', "malformed CSV"),
    ],
)
async def test_malformed_files_change_nothing(
    engine: tinytrack.Engine, tmp_path: Path, content: bytes, message: str
) -> None:
    site = await engine.create_site("https://example.com")
    await _hits(engine, site.id, ["/x"])
    before = table_counts(Path(engine.path))
    path = tmp_path / "bad.csv"
    # A good first row: a malformed file is refused as a whole, before anything is written.
    path.write_bytes(content.replace(b"u1,", b"u1,/ok\r\n2026-02-14T10:00:00Z,u0,", 1))
    with pytest.raises(InvalidParameter, match=message):
        await engine.import_csv(site.id, path)
    assert table_counts(Path(engine.path)) == before
    with pytest.raises(InvalidParameter, match="cannot read"):
        await engine.import_csv(site.id, tmp_path / "missing.csv")
    with pytest.raises(tinytrack.NotFound):
        await engine.import_csv(site.id + 9, path)


async def test_user_agents_older_than_retention_are_not_imported(
    engine: tinytrack.Engine, clock: FakeClock, tmp_path: Path
) -> None:
    site = await engine.create_site("https://example.com")
    await _hits(engine, site.id, ["/old"])
    clock.advance(6 * 86_400)
    await _hits(engine, site.id, ["/recent"])
    path = tmp_path / "hits.csv"
    path.write_bytes(await export_all(engine, site.id, "hits"))
    clock.advance(2 * 86_400)  # /old is now 8 days old, /recent 2
    copy = await engine.create_site("https://copy.example")
    report = await engine.import_csv(copy.id, path)
    assert report.imported == 2
    rows = {r["path"]: r async for r in await engine.export_rows(copy.id, "hits")}
    assert rows["/old"]["user_agent"] == "" and rows["/old"]["browser_name"] == "Safari"
    assert rows["/recent"]["user_agent"] == SAFARI_MAC
    assert (await engine.import_csv(copy.id, path)).duplicates == 2  # still duplicates
    clock.advance(6 * 86_400)
    await engine.purge_user_agents()  # imported rows are purged like recorded ones
    rows = {r["path"]: r async for r in await engine.export_rows(copy.id, "hits")}
    assert rows["/recent"]["user_agent"] == ""


async def test_imported_rows_count_in_the_reports(
    engine: tinytrack.Engine, clock: FakeClock, tmp_path: Path
) -> None:
    """Through the writer: rollups (grouped reports) and raw listings agree after an import."""
    site = await engine.create_site("https://example.com")
    await _hits(engine, site.id, ["/a", "/a", "/b"])
    path = tmp_path / "hits.csv"
    path.write_bytes(await export_all(engine, site.id, "hits"))
    copy = await engine.create_site("https://copy.example")
    await engine.import_csv(copy.id, path)
    for sid in (site.id, copy.id):
        grouped = await engine.hits(sid, grouped=True, group_by="path")
        assert isinstance(grouped, tinytrack.GroupedHitsPage)
        assert sorted(grouped.grouped_hits, key=lambda g: str(g["path"])) == [
            {"path": "/a", "views": 2, "unique_views": 1},
            {"path": "/b", "views": 1, "unique_views": 1},
        ]
    assert (await engine.get_site(copy.id)).lifetime_hits == 3


async def test_a_full_write_queue_is_waited_for() -> None:
    calls = 0

    async def store(kind: str, rows: list[Any], uniques: list[int]) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Overloaded("busy", retry_after=0)
        return [True] * len(rows)

    item = csv_import.Parsed(row=(1, "u", "/", 0), unique=0, at=0, key=("u", "/"))
    assert await csv_import._store(store, "kudos", [item]) == [True]
    assert calls == 3


# -- CLI ----------------------------------------------------------------------------------------


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinytrack", *args, "--db", str(db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def _seed(db: Path) -> None:
    async with tinytrack.open(db) as engine:
        site = await engine.create_site("https://example.com")
        await _hits(engine, site.id, ["/a", "/b", "/c"])


def test_cli_import_report(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_seed(db))
    out = tmp_path / "hits.csv"
    assert cli(db, "export", "--site", "1", "-o", str(out)).returncode == 0
    with out.open("ab") as f:
        f.write(b"not-a-time,/x,,,,PL,,,0,,ab,cd,1\r\n")
    r = cli(db, "import", str(out), "--site", "1")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == (
        "hits: 4 rows read, 0 imported, 3 skipped as duplicates, 1 rejected\n"
        "  line 5: created_at must be ISO 8601 UTC, like 2026-02-14T10:00:00Z\n"
    )
    r = cli(db, "import", str(out), "--site", "1", "--json")
    assert json.loads(r.stdout) == {
        "kind": "hits",
        "rows": 4,
        "imported": 0,
        "duplicates": 3,
        "rejected_count": 1,
        "rejected": [
            {"line": 5, "reason": "created_at must be ISO 8601 UTC, like 2026-02-14T10:00:00Z"}
        ],
    }
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    r = cli(db, "import", str(bad), "--site", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: the file is not UTF-8 text")
    r = cli(db, "import", str(out), "--site", "nope")
    assert r.returncode == 3 and "Traceback" not in r.stderr


def test_readme_your_data_example_runs() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Your data: export, import, delete, backup", 1)[1].split("\n## ")[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == example.rsplit("# ", 1)[1].strip() == "1 0 1 0"
