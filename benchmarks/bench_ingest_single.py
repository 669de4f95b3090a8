"""Single-hit ingest: POST /api/v1/sites/{id}/hits throughput of the real tinytrack server versus
a trivial Litestar app served the same way (benchmarks/trivial_app.py).

Both run in their own process as ``uvicorn`` with the same settings (uvloop, httptools, access
log off, one process); tinytrack is started with ``tinytrack serve`` on a fresh temporary
database with the rate limit off. The load generator is wrk (1 thread) with
benchmarks/wrk_post.lua: every request POSTs one of a few thousand realistic, varied hit bodies
(benchmarks/generate.py) with the Authorization header, and every response status is counted; a
run with any status other than 201 or any socket error is invalid. Both apps are measured back to
back in each round (the first app alternates between rounds); the result is the median over the
rounds. Target: tinytrack / trivial >= 0.85.

    apt-get install -y wrk
    .venv/bin/python benchmarks/bench_ingest_single.py [--seconds 15 --repeat 3 --connections 32]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import urllib.request
from pathlib import Path

import common
from generate import Traffic

TARGET = 0.85


def post_once(base: str, path: str, token: str, body: bytes) -> int:
    request = urllib.request.Request(
        base + path,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()
        return int(resp.status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of a measured run")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up run per app (s)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median is reported)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=20_000, help="distinct hit bodies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    common.require_wrk()

    print(f"single-hit ingest | {common.machine_line()}")
    print(
        f"wrk: {args.threads} thread(s), {args.connections} connections, {args.seconds:g} s runs "
        f"after a {args.warmup:g} s warm-up, {args.repeat} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="tt-bench-single-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "tinytrack.db"
        site_id, token = common.seed_db(db)
        bodies = tmp / "bodies.jsonl"
        with bodies.open("w") as out:
            for hit in Traffic(args.seed).hits(args.bodies):
                out.write(json.dumps(hit, separators=(",", ":")) + "\n")
        path = f"/api/v1/sites/{site_id}/hits"
        first_body = bodies.read_bytes().split(b"\n", 1)[0]

        tt_port, tr_port = common.free_port(), common.free_port()
        apps = {
            "tinytrack": common.Server(
                "tinytrack", common.tinytrack_serve_cmd(db, tt_port), tt_port
            ),
            "trivial": common.Server("trivial", common.trivial_serve_cmd(tr_port), tr_port),
        }
        results: dict[str, list[common.WrkResult]] = {name: [] for name in apps}
        problems: list[str] = []
        acknowledged = 1  # the sanity POST below
        with common.servers(*apps.values()):
            for name, server in apps.items():
                status = post_once(server.base, path, token, first_body)
                if status != 201:
                    print(f"error: {name} answered {status} to a valid hit", file=sys.stderr)
                    return 1

            def measure(name: str, seconds: float) -> common.WrkResult:
                server = apps[name]
                result = common.run_wrk(
                    server.base, bodies=bodies, path=path, token=token, seconds=seconds,
                    connections=args.connections, threads=args.threads, server=server,
                )
                bad = result.problems(expected_status=201)
                if bad:
                    problems.append(f"{name}: " + "; ".join(bad))
                return result

            for name in apps:
                warm = measure(name, args.warmup)
                if name == "tinytrack":
                    acknowledged += warm.statuses.get(201, 0)
                print(f"  warm-up {name:<9} {warm.rps:>9,.0f} req/s")
            print()
            print(f"  {'round':<6}{'app':<11}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
                  f"{'server CPU':>12}{'wrk CPU':>9}  statuses")
            order = list(apps)
            for round_no in range(1, args.repeat + 1):
                for name in order:
                    r = measure(name, args.seconds)
                    results[name].append(r)
                    if name == "tinytrack":
                        acknowledged += r.statuses.get(201, 0)
                    server_cpu = (r.server_cpu_seconds or 0.0) / r.seconds
                    print(
                        f"  {round_no:<6}{name:<11}{r.rps:>10,.0f}"
                        f"{r.latency_ms.get('p50', float('nan')):>9.2f}"
                        f"{r.latency_ms.get('p99', float('nan')):>9.2f}"
                        f"{server_cpu:>11.0%}{r.wrk_cpu_seconds / r.seconds:>9.0%}  {r.statuses}",
                        flush=True,
                    )
                order.reverse()
        # The server is stopped (every queued write committed): compare the stored rows with the
        # 201s wrk counted. wrk drops the requests still in flight when a run ends (at most one
        # per connection) and the server may have committed those too.
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
            rolled = conn.execute(
                "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE dim = 0"
            ).fetchone()[0]
        runs = 1 + args.repeat
        slack = runs * args.connections
        stored_ok = acknowledged <= stored <= acknowledged + slack and rolled == stored
        print(
            f"\n  tinytrack database: {stored:,} hits stored, {rolled:,} in the site-total "
            f"rollup, {acknowledged:,} acknowledged with 201 (in-flight requests cut off by wrk "
            f"at the end of a run: <= {slack}) -> {'consistent' if stored_ok else 'MISMATCH'}"
        )
        if not stored_ok:
            problems.append(f"stored {stored} vs rollup {rolled} vs acknowledged {acknowledged}")

    tt = common.median([r.rps for r in results["tinytrack"]])
    tr = common.median([r.rps for r in results["trivial"]])
    ratio = tt / tr
    pairs = zip(results["tinytrack"], results["trivial"], strict=True)
    rounds = ", ".join(f"{a.rps / b.rps:.3f}" for a, b in pairs)
    print()
    print(f"tinytrack  median {tt:>10,.0f} req/s")
    print(f"trivial    median {tr:>10,.0f} req/s")
    print(f"ratio tinytrack/trivial = {ratio:.3f} (per round: {rounds}); target >= {args.target} "
          f"-> {common.verdict(ratio >= args.target)} ({ratio / args.target:.0%} of target)")
    if problems:
        print("\nINVALID RUN:\n  " + "\n  ".join(problems), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": common.machine_line(),
            "tinytrack_rps": [r.rps for r in results["tinytrack"]],
            "trivial_rps": [r.rps for r in results["trivial"]],
            "tinytrack_median": tt, "trivial_median": tr, "ratio": ratio,
            "target": args.target, "valid": not problems, "problems": problems,
        }, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
