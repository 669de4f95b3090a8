"""Grouped-hits query latency on a large database (10 million hits from benchmarks/generate.py).

Four queries: group_by path and group_by referrer over the last 30 and the last 365 days of data
(ranges end on the last day present in the database), per_page 100, measured twice:

* library: ``await engine.hits(site_id, start_date=..., end_date=..., grouped=True,
  group_by=...)`` on an open Engine, after warm-up runs (warm page cache);
* HTTP: ``GET /api/v1/sites/{id}/hits?grouped=true&...`` against the real server (``tinytrack
  serve`` on the same file) over one keep-alive connection, timed from sending the request to
  having read the whole response body (end-to-end latency).

Median and p95 over ``--runs`` runs each. Targets: <= 50 ms for 30 days, <= 100 ms for 365 days
(judged on the HTTP p95s). The settled part of a range (days before the block watermark) is
grouped once and kept by the engine (``tinytrack.engine.settled``), so the first query of a
range costs more: it is printed on its own ("first", library and HTTP, each on a fresh engine).

A third HTTP measurement ("HTTP + writes") sends ``--live-hits`` new hits for today through
``POST /hits/batch`` before every measured query, so each answer must merge hits that arrived
since the one before (only when the data's last day is today: otherwise the ranges hold no live
day and the phase is skipped). Those hits stay in the database: path ``/bench/live``, one of
50 ``https://live-N.example/`` referrers.

    .venv/bin/python benchmarks/generate.py --db benchmarks/data/bench10m.db      # once
    .venv/bin/python benchmarks/bench_queries.py --db benchmarks/data/bench10m.db

With ``--during-ingest N`` a fourth HTTP measurement runs the same queries while N clients keep
posting 1,000-hit ``/hits/batch`` requests for today (same live hits), so every query also waits
for the fold of the hits committed meanwhile (tinytrack.engine.fold). It is reported (median,
p95 and the ingest rate reached), not judged: the targets are for queries alone.

Creates one read-only and one full-access API key in the database per run, and the live hits.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

DEFAULT_DB = common.HERE / "data" / "bench10m.db"
TARGETS_MS = {30: 50.0, 365: 100.0}
GROUPS = ("path", "referrer")


@dataclass(frozen=True)
class Case:
    days: int
    group_by: str
    start: dt.date
    end: dt.date

    @property
    def name(self) -> str:
        return f"{self.days:>3} days, group_by={self.group_by}"

    def query(self, per_page: int) -> str:
        return (
            f"grouped=true&group_by={self.group_by}&start_date={self.start.isoformat()}"
            f"&end_date={self.end.isoformat()}&per_page={per_page}"
        )


def describe_db(db: Path, site_id: int | None) -> tuple[int, dt.date, int, int]:
    """(site id, last day with data, total hits, rollup rows) read straight from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if site_id is None:
            row = conn.execute("SELECT MIN(id) FROM sites").fetchone()
            if row[0] is None:
                sys.exit(f"error: {db} has no site")
            site_id = int(row[0])
        last, total = conn.execute(
            "SELECT MAX(utc_day), SUM(hits) FROM hit_rollups WHERE site_id = ? AND dim = 0",
            (site_id,),
        ).fetchone()
        if last is None:
            sys.exit(f"error: site {site_id} of {db} has no hits")
        rollups = conn.execute(
            "SELECT COUNT(*) FROM hit_rollups WHERE site_id = ?", (site_id,)
        ).fetchone()[0]
    return site_id, dt.date(1970, 1, 1) + dt.timedelta(days=int(last)), int(total), int(rollups)


def summary(samples_ms: list[float]) -> tuple[float, float]:
    return common.median(samples_ms), common.percentile(samples_ms, 95)


async def library_latencies(
    db: Path, site_id: int, cases: list[Case], runs: int, warmup: int, per_page: int
) -> dict[Case, tuple[list[float], Any]]:
    from tinytrack.engine import Engine
    from tinytrack.models import to_builtins

    out: dict[Case, tuple[list[float], Any]] = {}
    engine = await Engine.open(db, maintenance=False)
    try:
        for case in cases:
            samples = []
            page = None
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                page = await engine.hits(
                    site_id, start_date=case.start, end_date=case.end, grouped=True,
                    group_by=case.group_by, per_page=per_page,  # type: ignore[arg-type]
                )
                if i >= warmup:
                    samples.append((time.perf_counter() - t0) * 1000)
            out[case] = (samples, to_builtins(page))
    finally:
        await engine.close()
    return out


def live_bodies(count: int, seed: int) -> list[bytes]:
    """Pre-encoded ``/hits/batch`` bodies of ``count`` hits for today."""
    import random

    rng = random.Random(seed)
    return [
        json.dumps([
            {"path": "/bench/live", "referrer": f"https://live-{rng.randrange(50)}.example/",
             "country": "US", "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
             "Gecko/20100101 Firefox/128.0"}
            for _ in range(count)
        ]).encode()
        for _ in range(64)
    ]


def http_latencies(
    port: int, site_id: int, token: str, cases: list[Case], runs: int, warmup: int, per_page: int,
    *, writes: tuple[str, list[bytes]] | None = None,
) -> dict[Case, tuple[list[float], Any]]:
    """Per case: warm-up runs then measured runs; with ``writes`` = (full-access key, batch
    bodies), a batch of live hits is committed before every query (not timed)."""
    out: dict[Case, tuple[list[float], Any]] = {}
    conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    sent = 0
    try:
        for case in cases:
            url = f"/api/v1/sites/{site_id}/hits?{case.query(per_page)}"
            samples = []
            body = b""
            for i in range(warmup + runs):
                if writes is not None:
                    batch = writes[1][sent % len(writes[1])]
                    sent += 1
                    conn.request(
                        "POST", f"/api/v1/sites/{site_id}/hits/batch", body=batch,
                        headers={"Authorization": f"Bearer {writes[0]}",
                                 "Content-Type": "application/json"},
                    )
                    resp = conn.getresponse()
                    answer = resp.read()
                    if resp.status != 200 or json.loads(answer)["error_count"]:
                        sys.exit(f"error: live hits answered {resp.status}: {answer[:300]!r}")
                t0 = time.perf_counter()
                conn.request("GET", url, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                elapsed = (time.perf_counter() - t0) * 1000
                if resp.status != 200:
                    sys.exit(f"error: {url} answered {resp.status}: {body[:300]!r}")
                if i >= warmup:
                    samples.append(elapsed)
            out[case] = (samples, json.loads(body))
    finally:
        conn.close()
    return out


def ingest_until(
    port: int, site_id: int, token: str, bodies: list[bytes], stop: threading.Event,
    posted: list[int],
) -> None:
    """Post batches back to back until ``stop``; adds each acknowledged batch's size to
    ``posted`` (a one-element list shared with the caller)."""
    conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent = 0
    try:
        while not stop.is_set():
            conn.request("POST", f"/api/v1/sites/{site_id}/hits/batch",
                         body=bodies[sent % len(bodies)], headers=headers)
            sent += 1
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            if resp.status != 200 or answer["error_count"]:
                sys.exit(f"error: background batch answered {resp.status}")
            posted[0] += answer["created_count"]
    finally:
        conn.close()


def during_ingest(
    db: Path, site_id: int, token: str, cases: list[Case], args: argparse.Namespace
) -> tuple[dict[Case, tuple[list[float], Any]], float]:
    """The HTTP queries while ``args.during_ingest`` clients post 1,000-hit batches; returns
    the latencies and the hits/s the clients had acknowledged meanwhile."""
    _, write_token = common.seed_db(db, access="full_access")
    bodies = live_bodies(1000, seed=99)
    port = common.free_port()
    stop = threading.Event()
    posted = [0]
    with common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port):
        clients = [
            threading.Thread(target=ingest_until,
                             args=(port, site_id, write_token, bodies, stop, posted))
            for _ in range(args.during_ingest)
        ]
        for client in clients:
            client.start()
        started = time.perf_counter()
        try:
            result = http_latencies(
                port, site_id, token, cases, args.runs, args.warmup, args.per_page
            )
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=120)
        return result, posted[0] / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"(default {DEFAULT_DB})")
    parser.add_argument("--site-id", type=int, help="site to query (default: the first one)")
    parser.add_argument("--runs", type=int, default=30, help="measured runs per query")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs per query first")
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--live-hits", type=int, default=20,
                        help="hits written before each query of the third phase (0: skip it)")
    parser.add_argument("--during-ingest", type=int, default=0, metavar="N",
                        help="also query while N clients post 1,000-hit batches (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    db: Path = args.db
    if not db.is_file():
        print(
            f"error: {db} does not exist. Build the 10-million-hit database first (takes several "
            f"minutes):\n  .venv/bin/python benchmarks/generate.py --db {db} "
            "--hits 10000000 --days 365",
            file=sys.stderr,
        )
        return 2
    site_id, last_day, total_hits, rollup_rows = describe_db(db, args.site_id)
    print(f"grouped-hits queries | {common.machine_line()}")
    print(f"database {db} ({db.stat().st_size / 1e9:.2f} GB): site {site_id}, "
          f"{total_hits:,} hits, {rollup_rows:,} rollup rows, last day {last_day}")
    print(f"{args.runs} measured runs per query after {args.warmup} warm-up runs, "
          f"per_page={args.per_page}")
    cases = [
        Case(days, group_by, last_day - dt.timedelta(days=days - 1), last_day)
        for days in TARGETS_MS
        for group_by in GROUPS
    ]

    # One query per case on a freshly opened engine: nothing kept yet.
    first_lib = {
        case: asyncio.run(library_latencies(db, site_id, [case], 1, 0, args.per_page))[case][0][0]
        for case in cases
    }
    lib = asyncio.run(
        library_latencies(db, site_id, cases, args.runs, args.warmup, args.per_page)
    )
    _, token = common.seed_db(db, access="read_only")
    live = args.live_hits > 0 and last_day == dt.datetime.now(dt.UTC).date()
    port = common.free_port()
    with common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port):
        first_web = {
            case: http_latencies(port, site_id, token, [case], 1, 0, args.per_page)[case][0][0]
            for case in cases
        }
        web = http_latencies(port, site_id, token, cases, args.runs, args.warmup, args.per_page)
    written: dict[Case, tuple[list[float], Any]] = {}
    if live:
        _, write_token = common.seed_db(db, access="full_access")
        port = common.free_port()
        with common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port):
            written = http_latencies(
                port, site_id, token, cases, args.runs, args.warmup, args.per_page,
                writes=(write_token, live_bodies(args.live_hits, seed=len(cases))),
            )
    else:
        print("(HTTP + writes skipped: the data's last day is not today, or --live-hits 0)")
    ingesting: dict[Case, tuple[list[float], Any]] = {}
    if args.during_ingest > 0 and live:
        ingesting, ingest_rate = during_ingest(db, site_id, token, cases, args)

    print()
    print(f"  {'query':<28}{'groups':>9}{'first ms':>16}{'library ms':>18}{'HTTP ms':>18}"
          f"{'HTTP + writes':>18}{'target':>8}  verdict")
    print(f"  {'':<28}{'':>9}{'library':>8}{'HTTP':>8}" + f"{'median':>10}{'p95':>8}" * 3)
    all_met = True
    rows = []
    for case in cases:
        lib_samples, lib_page = lib[case]
        web_samples, web_page = web[case]
        if lib_page != web_page:
            print(f"warning: library and HTTP answers differ for {case.name}", file=sys.stderr)
        lib_med, lib_p95 = summary(lib_samples)
        web_med, web_p95 = summary(web_samples)
        w_samples = written[case][0] if case in written else []
        w_med, w_p95 = summary(w_samples) if w_samples else (float("nan"), float("nan"))
        target = TARGETS_MS[case.days]
        met = web_p95 <= target and lib_p95 <= target and (not w_samples or w_p95 <= target)
        all_met &= met
        groups = web_page["pagination"]["total_count"]
        print(
            f"  {case.name:<28}{groups:>9,}{first_lib[case]:>8.0f}{first_web[case]:>8.0f}"
            f"{lib_med:>10.1f}{lib_p95:>8.1f}{web_med:>10.1f}{web_p95:>8.1f}"
            f"{w_med:>10.1f}{w_p95:>8.1f}{target:>8.0f}  {common.verdict(met)}"
        )
        rows.append({
            "query": case.name.strip(), "start": case.start.isoformat(),
            "end": case.end.isoformat(), "groups": groups,
            "first_library_ms": first_lib[case], "first_http_ms": first_web[case],
            "library_ms": lib_samples, "http_ms": web_samples, "http_writes_ms": w_samples,
            "library_median": lib_med, "library_p95": lib_p95,
            "http_median": web_med, "http_p95": web_p95,
            "http_writes_median": w_med if w_samples else None,
            "http_writes_p95": w_p95 if w_samples else None,
            "target_ms": target, "met": met,
        })
    if ingesting:
        print(f"\n  during ingest: {args.during_ingest} clients posting 1,000-hit batches, "
              f"{ingest_rate:,.0f} hits/s acknowledged meanwhile (reported, not judged)")
        for case in cases:
            i_med, i_p95 = summary(ingesting[case][0])
            print(f"  {case.name:<28} HTTP median {i_med:>7.1f} ms   p95 {i_p95:>7.1f} ms")
            rows[cases.index(case)]["http_during_ingest_ms"] = ingesting[case][0]
    print("\nverdict: the p95s of library, HTTP and HTTP + writes against the target; the first "
          "query of a range (kept totals built) is reported, not judged")
    print(f"\nall query targets {common.verdict(all_met)}")
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": common.machine_line(), "db": str(db), "results": rows}, indent=2
        ) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
