"""Grouped-hits query latency on a large database (10 million hits from benchmarks/generate.py).

Four queries: group_by path and group_by referrer over the last 30 and the last 365 days of data
(ranges end on the last day present in the database), per_page 100, measured twice:

* library: ``await engine.hits(site_id, start_date=..., end_date=..., grouped=True,
  group_by=...)`` on an open Engine, after warm-up runs (warm page cache);
* HTTP: ``GET /api/v1/sites/{id}/hits?grouped=true&...`` against the real server (``tinytrack
  serve`` on the same file) over one keep-alive connection, timed from sending the request to
  having read the whole response body (end-to-end latency).

Median and p95 over ``--runs`` runs each. Targets: <= 50 ms for 30 days, <= 100 ms for 365 days
(judged on the HTTP p95, the strictest of the four numbers).

    .venv/bin/python benchmarks/generate.py --db benchmarks/data/bench10m.db      # once
    .venv/bin/python benchmarks/bench_queries.py --db benchmarks/data/bench10m.db

Creates one read-only API key in the database per run (the only write it does).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import sqlite3
import sys
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


def http_latencies(
    port: int, site_id: int, token: str, cases: list[Case], runs: int, warmup: int, per_page: int
) -> dict[Case, tuple[list[float], Any]]:
    out: dict[Case, tuple[list[float], Any]] = {}
    conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for case in cases:
            url = f"/api/v1/sites/{site_id}/hits?{case.query(per_page)}"
            samples = []
            body = b""
            for i in range(warmup + runs):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"(default {DEFAULT_DB})")
    parser.add_argument("--site-id", type=int, help="site to query (default: the first one)")
    parser.add_argument("--runs", type=int, default=30, help="measured runs per query")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs per query first")
    parser.add_argument("--per-page", type=int, default=100)
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

    lib = asyncio.run(
        library_latencies(db, site_id, cases, args.runs, args.warmup, args.per_page)
    )
    _, token = common.seed_db(db, access="read_only")
    port = common.free_port()
    with common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port):
        web = http_latencies(port, site_id, token, cases, args.runs, args.warmup, args.per_page)

    print()
    print(f"  {'query':<28}{'groups':>9}{'library ms':>20}{'HTTP ms':>20}"
          f"{'target':>9}{'HTTP p95/target':>17}  verdict")
    print(f"  {'':<28}{'':>9}{'median':>11}{'p95':>9}{'median':>11}{'p95':>9}")
    all_met = True
    rows = []
    for case in cases:
        lib_samples, lib_page = lib[case]
        web_samples, web_page = web[case]
        if lib_page != web_page:
            print(f"warning: library and HTTP answers differ for {case.name}", file=sys.stderr)
        lib_med, lib_p95 = summary(lib_samples)
        web_med, web_p95 = summary(web_samples)
        target = TARGETS_MS[case.days]
        met = web_p95 <= target and lib_p95 <= target
        all_met &= met
        groups = web_page["pagination"]["total_count"]
        print(
            f"  {case.name:<28}{groups:>9,}{lib_med:>11.1f}{lib_p95:>9.1f}{web_med:>11.1f}"
            f"{web_p95:>9.1f}{target:>9.0f}{web_p95 / target:>17.2f}  {common.verdict(met)}"
        )
        rows.append({
            "query": case.name.strip(), "start": case.start.isoformat(),
            "end": case.end.isoformat(), "groups": groups,
            "library_ms": lib_samples, "http_ms": web_samples,
            "library_median": lib_med, "library_p95": lib_p95,
            "http_median": web_med, "http_p95": web_p95, "target_ms": target, "met": met,
        })
    print(f"\nall query targets {common.verdict(all_met)}")
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": common.machine_line(), "db": str(db), "results": rows}, indent=2
        ) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
