"""Report-endpoint latency on the 10-million-hit database: the all-time leaderboard, user
journeys and events grouped by name.

Four queries, each measured twice:

* ``leaderboard``: ``GET /api/v1/sites/{id}/leaderboard`` (default page: per_page 100), and the
  same with ``path=blog`` (case-insensitive partial match); target 50 ms;
* ``user_journeys``: the last 30 days of data (ending on the last day present), page 1,
  per_page 50; target 200 ms. Before measuring, finished days are built once with
  ``await engine.build_journeys()`` (what the server's hourly maintenance does) and that time is
  reported: it is a one-time cost, not part of a request;
* ``events``: ``grouped=true&group_by=event`` over the last 30 days of data (per_page 100);
  target 50 ms, on the events added by ``generate_events.py`` (1 million by default).

(1) library: the engine method on an open Engine, called with exactly the arguments the server
parses from the same query string (``tinytrack.engine.params``), after warm-up runs; (2) HTTP:
the real server (``tinytrack serve`` on the same file) over one keep-alive connection, timed from
sending the request to having read the whole response body. Median and p95 over ``--runs`` runs
each; a target is MET when both p95s are within it. Both answers must be identical (the
leaderboard's ``cache_info`` timestamps, which are the moment of the answer, excepted).

    .venv/bin/python benchmarks/generate.py --db benchmarks/data/bench10m.db          # once
    .venv/bin/python benchmarks/generate_events.py --db benchmarks/data/bench10m.db   # once
    .venv/bin/python benchmarks/bench_reports.py --db benchmarks/data/bench10m.db

Writes: one read-only API key per run, and the journeys of every finished day not built yet.
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
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

DEFAULT_DB = common.HERE / "data" / "bench10m.db"
KINDS = ("leaderboard", "journeys", "events")
TARGETS_MS = {"leaderboard": 50.0, "journeys": 200.0, "events": 50.0}
EVENT_TOTAL = 10  # rollup code of a site's event total (tinytrack.engine.rollups.EVENT_TOTAL)


@dataclass(frozen=True)
class Case:
    kind: str  # leaderboard, journeys or events
    name: str
    route: str  # the path after /api/v1/sites/{id}/
    params: tuple[tuple[str, str], ...]

    @property
    def target(self) -> float:
        return TARGETS_MS[self.kind]

    def url(self, site_id: int) -> str:
        query = urllib.parse.urlencode(self.params)
        return f"/api/v1/sites/{site_id}/{self.route}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class DbInfo:
    site_id: int
    last_day: dt.date
    hits: int
    events_in_range: int
    built_days_in_range: int


def describe_db(db: Path, site_id: int | None, days: int) -> DbInfo:
    """Site, last day with hits, totals and how much of the range is ready, from the file."""
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
        first = int(last) - days + 1
        events = conn.execute(
            "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE site_id = ? AND dim = ? "
            "AND utc_day BETWEEN ? AND ?",
            (site_id, EVENT_TOTAL, first, last),
        ).fetchone()[0]
        try:
            built = conn.execute(
                "SELECT COUNT(*) FROM journey_days WHERE site_id = ? AND utc_day BETWEEN ? AND ?",
                (site_id, first, last),
            ).fetchone()[0]
        except sqlite3.OperationalError:  # a file from before the journey tables
            built = 0
    return DbInfo(
        site_id=site_id,
        last_day=dt.date(1970, 1, 1) + dt.timedelta(days=int(last)),
        hits=int(total),
        events_in_range=int(events),
        built_days_in_range=int(built),
    )


def build_cases(kinds: list[str], start: dt.date, end: dt.date) -> list[Case]:
    dates = (("start_date", start.isoformat()), ("end_date", end.isoformat()))
    days = (end - start).days + 1
    cases: list[Case] = []
    if "leaderboard" in kinds:
        cases.append(Case("leaderboard", "leaderboard (all time, page 1)", "leaderboard", ()))
        cases.append(
            Case("leaderboard", "leaderboard path=blog", "leaderboard", (("path", "blog"),))
        )
    if "journeys" in kinds:
        cases.append(
            Case(
                "journeys",
                f"user_journeys {days} days, 50/page",
                "user_journeys",
                (*dates, ("page", "1"), ("per_page", "50")),
            )
        )
    if "events" in kinds:
        cases.append(
            Case(
                "events",
                f"events {days} days, group_by=event",
                "events",
                (("grouped", "true"), ("group_by", "event"), *dates),
            )
        )
    return cases


def comparable(case: Case, answer: Any) -> Any:
    """The answer without what legitimately differs between two calls: the leaderboard's
    ``cache_info`` timestamps (the moment of the answer)."""
    if case.kind == "leaderboard":
        info = {
            k: v for k, v in answer["cache_info"].items() if k not in ("cached_at", "expires_at")
        }
        return {**answer, "cache_info": info}
    return answer


def summary(samples_ms: list[float]) -> tuple[float, float]:
    return common.median(samples_ms), common.percentile(samples_ms, 95)


async def library_latencies(
    db: Path, site_id: int, cases: list[Case], runs: int, warmup: int, build: bool
) -> tuple[dict[Case, tuple[list[float], Any]], dict[str, Any]]:
    from tinytrack.engine import Engine, params
    from tinytrack.models import to_builtins

    parsers = {
        "leaderboard": params.parse_leaderboard_params,
        "journeys": params.parse_journeys_params,
        "events": params.parse_events_params,
    }
    out: dict[Case, tuple[list[float], Any]] = {}
    built: dict[str, Any] = {}
    engine = await Engine.open(db, maintenance=False)
    try:
        if build:
            print("building the journeys of finished days (engine.build_journeys) ...", flush=True)
            t0 = time.perf_counter()
            pairs = await engine.build_journeys()
            built = {"site_days_built": pairs, "seconds": round(time.perf_counter() - t0, 2)}
            print(
                f"build_journeys: {pairs} (site, day) pairs built in {built['seconds']} s"
                + ("" if pairs else " (nothing to build: already built by an earlier run)"),
                flush=True,
            )
        methods = {
            "leaderboard": engine.leaderboard,
            "journeys": engine.user_journeys,
            "events": engine.events,
        }
        for case in cases:
            kwargs = parsers[case.kind](dict(case.params))
            method: Any = methods[case.kind]
            samples = []
            page = None
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                page = await method(site_id, **kwargs)
                if i >= warmup:
                    samples.append((time.perf_counter() - t0) * 1000)
            out[case] = (samples, to_builtins(page))
    finally:
        await engine.close()
    return out, built


def http_latencies(
    port: int, site_id: int, token: str, cases: list[Case], runs: int, warmup: int
) -> dict[Case, tuple[list[float], Any]]:
    out: dict[Case, tuple[list[float], Any]] = {}
    conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for case in cases:
            url = case.url(site_id)
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
    parser.add_argument("--days", type=int, default=30, help="range for journeys and events (30)")
    parser.add_argument(
        "--only", nargs="+", choices=KINDS, default=list(KINDS), help="measure only these"
    )
    parser.add_argument("--runs", type=int, default=30, help="measured runs per query")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs per query first")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="do not build journeys first (unbuilt days are then read from the raw hits)",
    )
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
    info = describe_db(db, args.site_id, args.days)
    site_id, last_day = info.site_id, info.last_day
    if "events" in args.only and info.events_in_range == 0:
        print(
            f"error: site {site_id} of {db} has no events in the last {args.days} days of data. "
            "Add them first (about 2 minutes for 1 million):\n"
            f"  .venv/bin/python benchmarks/generate_events.py --db {db} --site-id {site_id}\n"
            "or leave the events query out with --only leaderboard journeys",
            file=sys.stderr,
        )
        return 2
    start = last_day - dt.timedelta(days=args.days - 1)
    machine = common.machine_line()  # once: the tree may change while this runs
    print(f"report queries | {machine}")
    print(
        f"database {db} ({db.stat().st_size / 1e9:.2f} GB): site {site_id}, {info.hits:,} hits, "
        f"last day {last_day}; {start} to {last_day}: {info.events_in_range:,} events, "
        f"{info.built_days_in_range} of {args.days} days with built journeys"
    )
    print(f"{args.runs} measured runs per query after {args.warmup} warm-up runs")
    cases = build_cases(args.only, start, last_day)

    lib, built = asyncio.run(
        library_latencies(
            db,
            site_id,
            cases,
            args.runs,
            args.warmup,
            build="journeys" in args.only and not args.no_build,
        )
    )
    _, token = common.seed_db(db, access="read_only")
    port = common.free_port()
    with common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port):
        web = http_latencies(port, site_id, token, cases, args.runs, args.warmup)

    print()
    print(
        f"  {'query':<38}{'size':>9}{'library ms':>20}{'HTTP ms':>20}"
        f"{'target':>9}{'HTTP p95/target':>17}  verdict"
    )
    print(f"  {'':<38}{'':>9}{'median':>11}{'p95':>9}{'median':>11}{'p95':>9}")
    all_met = True
    rows = []
    for case in cases:
        lib_samples, lib_page = lib[case]
        web_samples, web_page = web[case]
        same = comparable(case, lib_page) == comparable(case, web_page)
        if not same:
            print(f"warning: library and HTTP answers differ for {case.name}", file=sys.stderr)
        lib_med, lib_p95 = summary(lib_samples)
        web_med, web_p95 = summary(web_samples)
        met = web_p95 <= case.target and lib_p95 <= case.target
        all_met &= met
        size = f"{web_page['pagination']['total_count']:,}"
        print(
            f"  {case.name:<38}{size:>9}{lib_med:>11.1f}{lib_p95:>9.1f}{web_med:>11.1f}"
            f"{web_p95:>9.1f}{case.target:>9.0f}{web_p95 / case.target:>17.2f}  "
            f"{common.verdict(met)}"
        )
        rows.append(
            {
                "query": case.name,
                "url": case.url(site_id),
                "total_count": web_page["pagination"]["total_count"],
                "answers_identical": same,
                "library_ms": lib_samples,
                "http_ms": web_samples,
                "library_median": lib_med,
                "library_p95": lib_p95,
                "http_median": web_med,
                "http_p95": web_p95,
                "target_ms": case.target,
                "met": met,
            }
        )
    print("  (size: pagination.total_count = paths, journeys or event names in the answer)")
    print(f"\nall report targets {common.verdict(all_met)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "db": str(db),
                    "range": [start.isoformat(), last_day.isoformat()],
                    "events_in_range": info.events_in_range,
                    "build_journeys": built,
                    "results": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
