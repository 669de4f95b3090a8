"""Browser collector throughput: POST /collector/{site_uid} (a page view as the embed script
sends it) beside the API's single hit, POST /api/v1/sites/{id}/hits, on the same real server.

One ``tinytrack serve`` process on a fresh temporary database (rate limits off: every request
comes from 127.0.0.1), loaded by wrk (1 thread) with benchmarks/wrk_post.lua. The API bodies are
realistic varied hits (benchmarks/generate.py); the collector bodies are the same page views as
the script would send them ({"path", "url", "referrer"}, with an Origin header on the site's
domain and a desktop browser's User-Agent). Both are measured back to back in each round (order
alternating); the result is the median over rounds; any status other than 201 or any socket
error makes the run invalid. The stored row count is checked against the 201s counted.

    apt-get install -y wrk
    .venv/bin/python benchmarks/bench_collector.py [--seconds 15 --repeat 3 --connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

import common
from generate import Traffic

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)


async def _uid(db: Path) -> str:
    from tinytrack.engine import Engine

    engine = await Engine.open(db, maintenance=False)
    try:
        return (await engine.list_sites())[0].uid
    finally:
        await engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of a measured run")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up run per path (s)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median is reported)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--bodies", type=int, default=20_000, help="distinct bodies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    common.require_wrk()

    print(f"collector vs API single hit | {common.machine_line()}")
    print(f"wrk: 1 thread, {args.connections} connections, {args.seconds:g} s runs after a "
          f"{args.warmup:g} s warm-up, {args.repeat} rounds")
    with tempfile.TemporaryDirectory(prefix="tt-bench-collector-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "tinytrack.db"
        site_id, token = common.seed_db(db)
        uid = asyncio.run(_uid(db))
        api_bodies, page_bodies = tmp / "api.jsonl", tmp / "pages.jsonl"
        with api_bodies.open("w") as api_out, page_bodies.open("w") as page_out:
            for hit in Traffic(args.seed).hits(args.bodies):
                api_out.write(json.dumps(hit, separators=(",", ":")) + "\n")
                view = {
                    "path": hit["path"],
                    "url": "https://example.com" + hit["path"],
                    "referrer": hit.get("referrer"),
                }
                page_out.write(json.dumps(view, separators=(",", ":")) + "\n")
        runs = {
            "API hit": (api_bodies, f"/api/v1/sites/{site_id}/hits", token, ()),
            "collector": (
                page_bodies,
                f"/collector/{uid}",
                "-",
                ("Origin: https://example.com", f"User-Agent: {BROWSER}"),
            ),
        }
        port = common.free_port()
        server = common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port)
        results: dict[str, list[common.WrkResult]] = {name: [] for name in runs}
        problems: list[str] = []
        acknowledged = 0
        with server:

            def measure(name: str, seconds: float) -> common.WrkResult:
                bodies, path, key, headers = runs[name]
                result = common.run_wrk(
                    server.base, bodies=bodies, path=path, token=key, seconds=seconds,
                    connections=args.connections, server=server, headers=headers,
                )
                bad = result.problems(expected_status=201)
                if bad:
                    problems.append(f"{name}: " + "; ".join(bad))
                return result

            for name in runs:
                warm = measure(name, args.warmup)
                acknowledged += warm.statuses.get(201, 0)
                print(f"  warm-up {name:<10} {warm.rps:>9,.0f} req/s")
            print(f"\n  {'round':<6}{'path':<11}{'hits/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
                  f"{'server CPU':>12}  statuses")
            order = list(runs)
            for round_no in range(1, args.repeat + 1):
                for name in order:
                    r = measure(name, args.seconds)
                    results[name].append(r)
                    acknowledged += r.statuses.get(201, 0)
                    cpu = (r.server_cpu_seconds or 0.0) / r.seconds
                    print(f"  {round_no:<6}{name:<11}{r.rps:>10,.0f}"
                          f"{r.latency_ms.get('p50', float('nan')):>9.2f}"
                          f"{r.latency_ms.get('p99', float('nan')):>9.2f}{cpu:>11.0%}  "
                          f"{r.statuses}", flush=True)
                order.reverse()
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
        slack = (1 + args.repeat) * len(runs) * args.connections
        consistent = acknowledged <= stored <= acknowledged + slack
        print(f"\n  database: {stored:,} hits stored, {acknowledged:,} acknowledged with 201 "
              f"-> {'consistent' if consistent else 'MISMATCH'}")
        if not consistent:
            problems.append(f"stored rows {stored} vs acknowledged {acknowledged}")

    api = common.median([r.rps for r in results["API hit"]])
    collector = common.median([r.rps for r in results["collector"]])
    print(f"\nAPI single hit  median {api:>9,.0f} hits/s")
    print(f"collector       median {collector:>9,.0f} hits/s  ({collector / api:.2f}x the API)")
    if problems:
        print("\nINVALID RUN:\n  " + "\n  ".join(problems), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": common.machine_line(),
            "api_rps": [r.rps for r in results["API hit"]],
            "collector_rps": [r.rps for r in results["collector"]],
            "api_median": api, "collector_median": collector,
            "valid": not problems, "problems": problems,
        }, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
