"""Batch ingest: hits/s through POST /api/v1/sites/{id}/hits/batch (1,000 hits per request)
against the real tinytrack server (``tinytrack serve``, fresh temporary database, rate limit off).

The client is a small asyncio HTTP/1.1 client over keep-alive connections that sends pre-built
requests (realistic bodies from benchmarks/generate.py, encoded once up front), so per request it
only writes bytes and reads one JSON answer: a few hundred microseconds of CPU for the 1,000 hits
the server processes (its CPU use is printed to show it is not the bottleneck). Each of
``--clients`` connections keeps exactly one request in flight; when the run time is over no new
request is started and the ones in flight are awaited, so every hit sent is acknowledged. Hits/s =
``created_count`` summed over the 200 answers / wall time. Any non-200 answer or a row that is
not created invalidates the run. At the end the server is stopped and the database is checked:
stored rows (and the site total in the rollups) must equal the hits acknowledged.
Target: >= 40,000 hits/s.

    .venv/bin/python benchmarks/bench_ingest_batch.py [--seconds 15 --repeat 3 --clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import common
import msgspec
from generate import Traffic

TARGET = 40_000


class BatchAnswer(msgspec.Struct):
    created_count: int
    ignored_count: int
    error_count: int


@dataclass
class Tally:
    requests: int = 0
    created: int = 0
    ignored: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this client")
    body = await reader.readexactly(length or 0)
    return status, body


async def client(
    port: int, requests: list[bytes], first: int, deadline: float, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection(common.LOOPBACK, port)
    decoder = msgspec.json.Decoder(BatchAnswer)
    index = first
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(requests[index % len(requests)])
            index += 1
            await writer.drain()
            status, body = await read_response(reader)
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1
            tally.requests += 1
            if status == 200:
                answer = decoder.decode(body)
                tally.created += answer.created_count
                tally.ignored += answer.ignored_count
                tally.errors += answer.error_count
    finally:
        writer.close()
        await writer.wait_closed()


async def run_phase(
    port: int, requests: list[bytes], clients: int, seconds: float
) -> tuple[Tally, float, float]:
    """(tally, wall seconds, client CPU seconds) of one timed phase."""
    tally = Tally()
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    step = max(1, len(requests) // clients)
    await asyncio.gather(
        *(client(port, requests, i * step, deadline, tally) for i in range(clients))
    )
    return tally, time.perf_counter() - t0, time.process_time() - cpu0


def build_requests(port: int, site_id: int, token: str, bodies: list[bytes]) -> list[bytes]:
    out = []
    for body in bodies:
        head = (
            f"POST /api/v1/sites/{site_id}/hits/batch HTTP/1.1\r\n"
            f"Host: {common.LOOPBACK}:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of a measured run")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up run (s)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--batch", type=int, default=1000, help="hits per request (max 1000)")
    parser.add_argument("--bodies", type=int, default=40, help="distinct request bodies")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    print(f"batch ingest | {common.machine_line()}")
    print(
        f"{args.clients} clients x 1 request in flight, {args.batch} hits/request, "
        f"{args.seconds:g} s runs after a {args.warmup:g} s warm-up, {args.repeat} runs"
    )
    traffic = Traffic(args.seed)
    bodies = [
        msgspec.json.encode(list(traffic.hits(args.batch))) for _ in range(args.bodies)
    ]
    print(f"{len(bodies)} distinct bodies, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB "
          "each on average")
    problems: list[str] = []
    rates: list[float] = []
    acknowledged = 0
    with tempfile.TemporaryDirectory(prefix="tt-bench-batch-") as tmp_name:
        db = Path(tmp_name) / "tinytrack.db"
        site_id, token = common.seed_db(db)
        port = common.free_port()
        requests = build_requests(port, site_id, token, bodies)
        server = common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port)
        with server:
            phases = [("warm-up", args.warmup)] + [
                (f"run {i}", args.seconds) for i in range(1, args.repeat + 1)
            ]
            print(f"\n  {'phase':<9}{'hits/s':>10}{'requests':>10}{'created':>11}"
                  f"{'p50 ms':>9}{'p95 ms':>9}{'server CPU':>12}{'client CPU':>12}")
            for name, seconds in phases:
                cpu0 = server.cpu_seconds()
                tally, wall, client_cpu = asyncio.run(
                    run_phase(port, requests, args.clients, seconds)
                )
                server_cpu = server.cpu_seconds() - cpu0
                acknowledged += tally.created
                rate = tally.created / wall
                bad = {s: n for s, n in tally.statuses.items() if s != 200}
                if bad or tally.errors or tally.ignored:
                    problems.append(
                        f"{name}: statuses {dict(tally.statuses)}, "
                        f"{tally.ignored} ignored, {tally.errors} row errors"
                    )
                lat = [x * 1000 for x in tally.latencies] or [float("nan")]
                print(
                    f"  {name:<9}{rate:>10,.0f}{tally.requests:>10,}{tally.created:>11,}"
                    f"{common.median(lat):>9.1f}{common.percentile(lat, 95):>9.1f}"
                    f"{server_cpu / wall:>11.0%}{client_cpu / wall:>12.0%}",
                    flush=True,
                )
                if name != "warm-up":
                    rates.append(rate)
        # Stopped: every write is committed. What was acknowledged must be exactly what is stored.
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
            rollup_total = conn.execute(
                "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE site_id = ? AND dim = 0",
                (site_id,),
            ).fetchone()[0]
    consistent = stored == acknowledged == rollup_total
    print(
        f"\n  database check: {stored:,} rows stored, {rollup_total:,} in the site-total rollup, "
        f"{acknowledged:,} acknowledged -> {'OK' if consistent else 'MISMATCH'}"
    )
    if not consistent:
        problems.append(f"stored {stored}, rollups {rollup_total}, acknowledged {acknowledged}")

    result = common.median(rates)
    print()
    print(f"batch ingest median {result:,.0f} hits/s over {len(rates)} runs "
          f"({', '.join(f'{r:,.0f}' for r in rates)}); target >= {args.target:,.0f} hits/s -> "
          f"{common.verdict(result >= args.target)} ({result / args.target:.0%} of target)")
    if problems:
        print("\nINVALID RUN:\n  " + "\n  ".join(problems), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": common.machine_line(), "hits_per_s": rates, "median": result,
            "target": args.target, "stored": stored, "acknowledged": acknowledged,
            "valid": not problems, "problems": problems,
        }, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
