"""CSV export of the 10M-hit database through the real server (issue 5): rows/s and the server's
memory during the export; then single-hit ingestion (wrk, as in bench_ingest_single.py) without
and with an export running at the same time.

The database given is never written: it is first copied (SQLite's backup API, one consistent
snapshot) to a temporary file next to it, which the server runs on and which is deleted at the
end (``--keep-copy`` keeps it). The server is the real ``tinytrack serve`` in its own process; the
script waits until its start-up maintenance is done (CPU idle) before measuring.

(a) Export: ``GET /api/v1/sites/{id}/export.csv?kind=hits`` (whole history, read-only key),
read by a minimal client (``http.client``, 1 MiB reads, rows counted as line ends: the
generated data has no line break inside a cell) and discarded. rows/s = data rows /
wall time from request to last byte. Twice; the target applies to each. The server's memory is
sampled from /proc/<pid>/status every 0.25 s: VmRSS, and its two parts, RssAnon (the process's
own memory: Python objects, SQLite page caches) and RssFile (pages of the database file mapped
by the readers' mmap, shared with the OS page cache). Reported: start / peak / end of each.

(b) Ingestion: wrk -t1 -c32 POSTs single realistic hits (bodies from generate.py) for
``--seconds``; rounds alternate "alone" and "during export" (an export loop running in a thread
of this script for the whole wrk run), ``--rounds`` of each after a warm-up; the share is the
median during / median alone. A run with any non-201 answer is invalid.

    .venv/bin/python benchmarks/bench_export.py --db benchmarks/data/bench10m.db

Targets: >= 200,000 rows/s with flat memory; ingestion during an export keeps >= 80% of its
throughput. Needs ~1.2x the database's size free on its disk for the copy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import common
from generate import Traffic

TARGET_ROWS = 200_000
TARGET_SHARE = 0.80


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of ``pid`` in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0]) / 1024
    return out


@dataclass
class Sampler:
    pid: int
    every: float = 0.25
    samples: list[dict[str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self.samples.append(memory(self.pid))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(memory(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.samples.append(memory(self.pid))

    def line(self, name: str) -> str:
        values = [s[name] for s in self.samples]
        quarters = " ".join(f"{values[(len(values) - 1) * q // 4]:.0f}" for q in range(5))
        return (
            f"{name:<8} start {values[0]:6.0f} MB  peak {max(values):6.0f} MB  "
            f"end {values[-1]:6.0f} MB  (at 0/25/50/75/100%: {quarters})"
        )


def export_once(port: int, site_id: int, token: str) -> tuple[int, int, float]:
    """(data rows, bytes, seconds) of one full hits export, read and discarded."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(common.LOOPBACK, port, timeout=600)
    conn.request(
        "GET",
        f"/api/v1/sites/{site_id}/export.csv?kind=hits",
        headers={"Authorization": f"Bearer {token}"},
    )
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"export answered {resp.status}: {resp.read()[:200]!r}")
    lines = size = 0
    while data := resp.read(1 << 20):
        lines += data.count(b"\n")  # a read may end between the CR and the LF of a line end
        size += len(data)
    conn.close()
    return lines - 1, size, time.perf_counter() - t0


def latency(r: common.WrkResult) -> str:
    p50, p99 = r.latency_ms.get("p50", 0.0), r.latency_ms.get("p99", 0.0)
    return f"{r.rps:>7,.0f} req/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms"


def copy_database(source: Path, target: Path) -> float:
    t0 = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return time.perf_counter() - t0


def wait_idle(server: common.Server, *, quiet_seconds: float = 3.0, limit: float = 900.0) -> float:
    """Wait until the server used < 5% CPU for ``quiet_seconds`` (start-up maintenance done)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        cpu0 = server.cpu_seconds()
        time.sleep(quiet_seconds)
        if server.cpu_seconds() - cpu0 < 0.05 * quiet_seconds:
            break
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="the 10M-hit database (read only)")
    parser.add_argument("--seconds", type=float, default=15, help="length of a wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs alone and during export")
    parser.add_argument("--exports", type=int, default=2, help="measured exports in (a)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keep-copy", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"error: {args.db} not found; see benchmarks/README.md (generate.py)")
    common.require_wrk()
    print(f"CSV export | {common.machine_line()}")
    results: dict[str, object] = {"machine": common.machine_line()}
    problems: list[str] = []

    with tempfile.TemporaryDirectory(prefix="tt-bench-export-", dir=args.db.parent) as tmp:
        db = Path(tmp) / "copy.db"
        print(f"copying {args.db} -> {db} ...", flush=True)
        print(f"  copied in {copy_database(args.db, db):.0f} s ({db.stat().st_size / 1e9:.2f} GB)")
        site_id, token = common.seed_db(db, access="read_only")
        _site, write_token = common.seed_db(db, access="full_access")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (expected,) = conn.execute(
                "SELECT COUNT(*) FROM hits WHERE site_id = ?", (site_id,)
            ).fetchone()
        port = common.free_port()
        server = common.Server("tinytrack", common.tinytrack_serve_cmd(db, port), port)
        with server:
            assert server.proc is not None
            pid = server.proc.pid
            print(f"  server up; start-up maintenance done after {wait_idle(server):.0f} s")

            # (a) ---------------------------------------------------------------------------
            print(f"\n(a) export of {expected:,} hits over HTTP (whole history, kind=hits)")
            exports = []
            for run in range(1, args.exports + 1):
                cpu0 = server.cpu_seconds()
                with Sampler(pid) as sampler:
                    rows, size, seconds = export_once(port, site_id, token)
                cpu = server.cpu_seconds() - cpu0
                rate = rows / seconds
                if rows != expected:
                    problems.append(f"export {run}: {rows} rows, expected {expected}")
                exports.append(
                    {"rows": rows, "bytes": size, "seconds": seconds, "rows_per_s": rate,
                     "server_cpu_s": cpu, "memory_samples": sampler.samples}
                )  # fmt: skip
                print(f"  run {run}: {rows:,} rows, {size / 1e9:.2f} GB in {seconds:.1f} s = "
                      f"{rate:,.0f} rows/s (server CPU {cpu / seconds:.0%} of one core) "
                      f"-> {common.verdict(rate >= TARGET_ROWS)}")  # fmt: skip
                for name in ("VmRSS", "RssAnon", "RssFile"):
                    print(f"    {sampler.line(name)}")
            results["exports"] = exports

            # (b) ---------------------------------------------------------------------------
            print(
                f"\n(b) single-hit ingestion, wrk -t1 -c{args.connections}, {args.seconds:g} s runs"
            )
            bodies = Path(tmp) / "bodies.jsonl"
            with bodies.open("w") as out:
                for hit in Traffic(11).hits(20_000):
                    out.write(json.dumps(hit, separators=(",", ":")) + "\n")
            path = f"/api/v1/sites/{site_id}/hits"

            def ingest(seconds: float) -> common.WrkResult:
                result = common.run_wrk(
                    server.base, bodies=bodies, path=path, token=write_token, seconds=seconds,
                    connections=args.connections, server=server,
                )  # fmt: skip
                bad = result.problems(expected_status=201)
                if bad:
                    problems.append("; ".join(bad))
                return result

            warm = ingest(5)
            print(f"  warm-up {warm.rps:,.0f} req/s")
            alone: list[float] = []
            during: list[float] = []
            concurrent: list[tuple[int, int, float]] = []
            for round_no in range(1, args.rounds + 1):
                r = ingest(args.seconds)
                alone.append(r.rps)
                print(f"  round {round_no} alone:         {latency(r)}")
                stop = threading.Event()

                def keep_exporting(stop: threading.Event = stop) -> None:
                    while not stop.is_set():
                        concurrent.append(export_once(port, site_id, token))

                exporter = threading.Thread(target=keep_exporting, daemon=True)
                exporter.start()
                time.sleep(1.0)  # the export is under way
                r = ingest(args.seconds)
                during.append(r.rps)
                stop.set()
                print(f"  round {round_no} during export: {latency(r)}")
                exporter.join(timeout=900)
            share = common.median(during) / common.median(alone)
            verdict = common.verdict(share >= TARGET_SHARE)
            print(f"  median alone {common.median(alone):,.0f} req/s, during export "
                  f"{common.median(during):,.0f} req/s = {share:.0%} "
                  f"(target >= {TARGET_SHARE:.0%}) -> {verdict}")  # fmt: skip
            for rows, _size, seconds in concurrent:
                print(f"  an export during ingestion: {rows:,} rows in {seconds:.1f} s = "
                      f"{rows / seconds:,.0f} rows/s")  # fmt: skip
            results.update(alone_rps=alone, during_rps=during, share=share,
                           concurrent_exports=concurrent)  # fmt: skip
        if args.keep_copy:
            kept = args.db.with_name("bench_export_copy.db")
            db.rename(kept)
            print(f"\nkept the copy as {kept}")
    if args.json:
        results["problems"] = problems
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if problems:
        print("\nINVALID RUN:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
