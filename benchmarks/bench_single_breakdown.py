"""Where a single hit's time goes: bench_ingest_single.py's load against the real server, the
trivial app, and tinytrack with parts of its write path taken away (benchmarks/diag_serve.py),
with the CPU time of the server's threads.

Each server runs in its own process on its own fresh database; every round measures all of them
in turn. Always the trivial app (benchmarks/trivial_app.py, the framework's ceiling as in
bench_ingest_single.py) and the real server (tinytrack serve); then the diag_serve.py variants
named by --variants (default: no-fold, sleep:1.2, nodb; diag_serve.py describes each).

Per run it prints req/s, the ratio to the trivial app's run in the same round, and the CPU use
of the server's event-loop thread, of its busiest other thread (the SQLite writer's) and of
the whole process, read from /proc (Linux). It reports; it judges nothing.

    apt-get install -y wrk
    .venv/bin/python benchmarks/bench_single_breakdown.py [--seconds 10 --repeat 2]
    .venv/bin/python benchmarks/bench_single_breakdown.py --variants no-fold
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import common
from generate import Traffic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of a measured run")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up run per variant (s)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--bodies", type=int, default=20_000, help="distinct hit bodies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--variants",
        default="no-fold,sleep:1.2,nodb",
        help="diag_serve.py variants to run beside the trivial app and tinytrack",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    common.require_wrk()
    variants = ["trivial", "tinytrack", *args.variants.split(",")]

    print(f"single-hit breakdown | {common.machine_line()}")
    print(
        f"wrk: 1 thread, {args.connections} connections, {args.seconds:g} s runs, "
        f"{args.repeat} rounds"
    )
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="tt-bench-breakdown-") as tmp_name:
        tmp = Path(tmp_name)
        bodies = tmp / "bodies.jsonl"
        with bodies.open("w") as out:
            for hit in Traffic(args.seed).hits(args.bodies):
                out.write(json.dumps(hit, separators=(",", ":")) + "\n")
        servers: dict[str, common.Server] = {}
        targets: dict[str, tuple[str, str]] = {}  # variant -> (path, token)
        for name in variants:
            port = common.free_port()
            db = tmp / f"{name.replace(':', '-')}.db"
            site_id, token = common.seed_db(db)
            targets[name] = (f"/api/v1/sites/{site_id}/hits", token)
            if name == "trivial":
                cmd = common.trivial_serve_cmd(port)
            elif name == "tinytrack":
                cmd = common.tinytrack_serve_cmd(db, port)
            else:
                real = common.tinytrack_serve_cmd(db, port)
                serve_options = real[real.index("serve") + 1 :]
                cmd = [common.PYTHON, str(common.HERE / "diag_serve.py"), name, *serve_options]
            servers[name] = common.Server(name, cmd, port)

        with common.servers(*servers.values()):

            def measure(name: str, seconds: float) -> dict[str, object]:
                server = servers[name]
                assert server.proc is not None
                pid = server.proc.pid
                path, token = targets[name]
                before = server.thread_cpu_seconds()
                result = common.run_wrk(
                    server.base,
                    bodies=bodies,
                    path=path,
                    token=token,
                    seconds=seconds,
                    connections=args.connections,
                    server=server,
                )
                after = server.thread_cpu_seconds()
                bad = result.problems(expected_status=201)
                if bad:
                    raise SystemExit(f"{name}: invalid run: " + "; ".join(bad))
                used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
                main_cpu = used.pop(pid, 0.0)
                other = max(used.values(), default=0.0)
                return {
                    "variant": name,
                    "rps": result.rps,
                    "main": main_cpu / result.seconds,
                    "writer": other / result.seconds,
                    "process": (result.server_cpu_seconds or 0.0) / result.seconds,
                }

            for name in variants:
                measure(name, args.warmup)
            print(
                f"\n  {'round':<6}{'variant':<12}{'req/s':>9}{'ratio':>8}{'loop thread':>13}"
                f"{'writer thread':>15}{'process':>9}{'CPU µs/req':>12}"
            )
            order = list(variants)
            for round_no in range(1, args.repeat + 1):
                measured = {name: measure(name, args.seconds) for name in order}
                base = float(measured["trivial"]["rps"])  # type: ignore[arg-type]
                for name in variants:
                    r = measured[name]
                    rps = float(r["rps"])  # type: ignore[arg-type]
                    r["round"] = round_no
                    r["ratio"] = rps / base
                    rows.append(r)
                    print(
                        f"  {round_no:<6}{name:<12}{rps:>9,.0f}{rps / base:>8.3f}"
                        f"{r['main']:>13.0%}{r['writer']:>15.0%}{r['process']:>9.0%}"
                        f"{float(r['process']) / rps * 1e6:>12.0f}",
                        flush=True,
                    )  # type: ignore[arg-type]
                order = order[1:] + order[:1]  # a different variant goes first each round

    print("\nmedian ratio to the trivial app:")
    for name in variants[1:]:
        ratios = [float(r["ratio"]) for r in rows if r["variant"] == name]  # type: ignore[arg-type]
        print(
            f"  {name:<12}{common.median(ratios):.3f}  (rounds: "
            f"{', '.join(f'{x:.3f}' for x in ratios)})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": common.machine_line(), "runs": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
