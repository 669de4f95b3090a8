"""Add realistic custom events to an existing benchmark database (built by generate.py).

``python benchmarks/generate_events.py --db benchmarks/data/bench10m.db --events 1000000``
writes N events for one site, spread over the last ``--days`` days of the hits (the range ends
at the newest hit, so events and hits end together), in time order, through the engine's real
write path: ``ingest.prepare_event(site, event, now=ts, salt=await engine._salt(day))`` and
``engine._writer.insert_events(rows)`` in batches of 1,000, so the event rows, their unique flags
and their rollups (daily rows, and the rollup blocks that already exist) are exactly what the
server would have produced.

The model: each event fires on a page view of generate.py's traffic model (same seeded path
set, visitor pool of IP address + browser user agent, visits, referrers, diurnal curve and daily
volume shape), with an event name drawn from ~40 ``category.action`` names (Zipf) and, for about
half of the events, a value drawn from a Zipf list of ~1,000 values. Same arguments, same data.
Adding events twice is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import json
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
from generate import Traffic, _cumulative, _zipf_weights

DEFAULT_DB = Path(__file__).resolve().parent / "data" / "bench10m.db"
DAY = 86_400

# ~40 realistic event names, most frequent first (drawn with Zipf weights).
# fmt: off
EVENT_NAMES: tuple[str, ...] = (
    "button.click", "outbound.click", "file.download", "video.play", "signup.started",
    "nav.click", "cta.click", "search.performed", "scroll.depth", "video.progress",
    "newsletter.subscribe", "form.submit", "copy.code", "video.complete", "signup.completed",
    "share.click", "pricing.toggle", "modal.open", "docs.feedback", "tab.switch",
    "login.success", "theme.toggle", "cart.add", "checkout.started", "trial.started",
    "error.not_found", "language.switch", "filter.apply", "comment.posted", "like.click",
    "video.pause", "audio.play", "contact.submit", "checkout.completed", "plan.upgrade",
    "login.failed", "cart.remove", "error.javascript", "account.deleted", "invite.sent",
)
# fmt: on
VALUE_SHARE = 0.5  # share of events sent with a value
VALUES = 1000  # distinct values
NAME_ZIPF = 1.1
VALUE_ZIPF = 1.0


def build_values(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct event values, most popular first: button labels, file names, scroll
    depths, video ids, plans, outbound hosts, search terms."""
    # fmt: off
    head = [
        "hero-cta", "25%", "50%", "75%", "100%", "header-signup", "pricing-monthly",
        "pricing-yearly", "dark", "light", "github.com", "docs-search", "pro", "team",
        "footer-newsletter", "en", "de", "fr", "quickstart.pdf", "intro-video",
    ]
    # fmt: on
    kinds = (
        lambda i: f"/downloads/release-{i}.tar.gz",
        lambda i: f"button-{i}",
        lambda i: f"video-{i:05d}",
        lambda i: f"https://partner{i}.example.org/",
        lambda i: f"search term {i}",
        lambda i: f"whitepaper-{i}.pdf",
    )
    body = [kinds[i % len(kinds)](i) for i in range(1, n)]
    rng.shuffle(body)
    return (head + body)[:n]


class EventSource:
    """Events for the page views of a ``Traffic`` model: name (Zipf), maybe a value (Zipf)."""

    def __init__(self, traffic: Traffic, seed: int) -> None:
        self.traffic = traffic
        self.rng = rng = random.Random(seed * 7919 + 1)
        self.values = build_values(VALUES, rng)
        self._name_cum = _cumulative(_zipf_weights(len(EVENT_NAMES), NAME_ZIPF))
        self._value_cum = _cumulative(_zipf_weights(len(self.values), VALUE_ZIPF))

    def _pick(self, cum: list[float]) -> int:
        return bisect.bisect(cum, self.rng.random() * cum[-1])

    def day_events(self, day: dt.date, count: int, now: int) -> list[tuple[int, dict[str, Any]]]:
        """``count`` (timestamp, event dict) pairs within ``day`` (never after ``now``), in
        time order: one event per page view of the traffic model, fired on that page."""
        out: list[tuple[int, dict[str, Any]]] = []
        for ts, hit in self.traffic.day_hits(day, count, now):
            event: dict[str, Any] = {
                "event": EVENT_NAMES[self._pick(self._name_cum)],
                "path": hit["path"],
                "ip_address": hit["ip_address"],
                "user_agent": hit["user_agent"],
            }
            if "referrer" in hit:
                event["referrer"] = hit["referrer"]
            if self.rng.random() < VALUE_SHARE:
                event["value"] = self.values[self._pick(self._value_cum)]
            out.append((ts, event))
        return out


def describe_db(db: Path, site_id: int) -> tuple[int, int, bool]:
    """(newest hit's created_at, total hits, has events) of the site, read from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        newest = conn.execute(
            "SELECT MAX(created_at) FROM hits WHERE site_id = ?", (site_id,)
        ).fetchone()[0]
        total = conn.execute(
            "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE site_id = ? AND dim = 0",
            (site_id,),
        ).fetchone()[0]
        try:
            has_events = (
                conn.execute(
                    "SELECT 1 FROM events WHERE site_id = ? LIMIT 1", (site_id,)
                ).fetchone()
                is not None
            )
        except sqlite3.OperationalError:  # a file from before the events table
            has_events = False
    if newest is None:
        sys.exit(f"error: site {site_id} of {db} has no hits; build it with generate.py first")
    return int(newest), int(total), has_events


async def add_events(
    db: Path,
    *,
    site_id: int,
    events: int,
    days: int,
    seed: int,
    force: bool,
    batch: int = 1000,
    in_flight: int = 2,
) -> dict[str, Any] | None:
    from tinytrack.engine import Engine
    from tinytrack.engine.ingest import prepare_event
    from tinytrack.engine.writer import EventRow
    from tinytrack.models import EventIn, Ignored

    newest, total_hits, has_events = describe_db(db, site_id)
    if has_events and not force:
        print(
            f"error: site {site_id} of {db} already has events; adding them again would "
            "double the data (use --force to add anyway)",
            file=sys.stderr,
        )
        return None
    now = newest + 1  # no event after the newest hit
    end = dt.datetime.fromtimestamp(newest, dt.UTC).date()
    first_day = end - dt.timedelta(days=days - 1)
    # Same seed and visitor-pool size as generate.py: the same paths and visitors as the hits.
    print("building the traffic model (paths, visitor pool) ...", flush=True)
    traffic = Traffic(seed, visitors=max(5_000, min(total_hits // 40, 400_000)))
    source = EventSource(traffic, seed)
    counts = traffic.daily_counts(events, days, end, now)

    engine = await Engine.open(db, maintenance=False)
    started = time.perf_counter()
    written = ignored = duplicates = 0
    names: dict[str, int] = {}
    try:
        info = await engine._site_info(site_id)
        print(
            f"generating {events:,} events over {days} days ({first_day} to {end}, ending at "
            f"the newest hit {dt.datetime.fromtimestamp(newest, dt.UTC):%H:%M:%S} UTC) into "
            f"{db}, site {site_id} (seed {seed})",
            flush=True,
        )
        writer = engine._writer
        tasks: list[asyncio.Task[Any]] = []
        last_report = started
        last_written = 0

        async def submit(rows: list[EventRow]) -> None:
            nonlocal written
            # Keep a couple of batches queued so preparing rows overlaps SQLite's work.
            if len(tasks) >= in_flight:
                await tasks.pop(0)
            tasks.append(asyncio.ensure_future(writer.insert_events(rows)))
            written += len(rows)

        decode = EventIn
        for index, count in enumerate(counts):
            day = first_day + dt.timedelta(days=index)
            day_number = (day - dt.date(1970, 1, 1)).days
            salt = await engine._salt(day_number)
            rows: list[EventRow] = []
            for ts, body in source.day_events(day, count, now):
                row = prepare_event(info, decode(**body), now=ts, salt=salt)
                if isinstance(row, Ignored):
                    ignored += 1
                    continue
                names[row.name] = names.get(row.name, 0) + 1
                rows.append(row)
                if len(rows) >= batch:
                    await submit(rows)
                    rows = []
            if rows:
                await submit(rows)
            tick = time.perf_counter()
            if tick - last_report >= 5 or index == len(counts) - 1:
                rate = (written - last_written) / (tick - last_report)
                print(
                    f"  day {index + 1:>4}/{days} {day}  rows {written:>11,}  "
                    f"{rate:>9,.0f} rows/s now  {written / (tick - started):>9,.0f} rows/s avg",
                    flush=True,
                )
                last_report, last_written = tick, written
        for task in tasks:
            duplicates += sum(stored.duplicate for stored in await task)
        insert_seconds = time.perf_counter() - started
    finally:
        t0 = time.perf_counter()
        await engine.close()  # commits, checkpoints the WAL (TRUNCATE)
        close_seconds = time.perf_counter() - t0
    total_seconds = time.perf_counter() - started
    top = sorted(names.items(), key=lambda item: -item[1])
    return {
        "db": str(db),
        "site_id": site_id,
        "events": written - duplicates,
        "ignored": ignored,
        "duplicates": duplicates,
        "days": days,
        "first_day": first_day.isoformat(),
        "last_day": end.isoformat(),
        "newest_hit_at": dt.datetime.fromtimestamp(newest, dt.UTC).isoformat(),
        "seed": seed,
        "distinct_names": len(names),
        "top_names": dict(top[:5]),
        "value_share": VALUE_SHARE,
        "distinct_values_possible": VALUES,
        "insert_seconds": round(insert_seconds, 1),
        "insert_rows_per_s": round(written / insert_seconds) if insert_seconds else 0,
        "close_checkpoint_seconds": round(close_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "db_bytes": db.stat().st_size,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tinytrack_tree": common.code_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"(default {DEFAULT_DB})")
    parser.add_argument("--site-id", type=int, default=1, help="site to add events to (1)")
    parser.add_argument("--events", type=int, default=1_000_000, help="number of events (1M)")
    parser.add_argument(
        "--days", type=int, default=30, help="days of data ending on the newest hit's day (30)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed (42, as generate.py)")
    parser.add_argument("--batch", type=int, default=1000, help="rows per writer job (1000)")
    parser.add_argument(
        "--force", action="store_true", help="add events even if the site already has some"
    )
    args = parser.parse_args(argv)

    if args.events < 1 or args.days < 1:
        parser.error("--events and --days must be positive")
    db: Path = args.db
    if not db.is_file():
        print(
            f"error: {db} does not exist. Build the 10-million-hit database first (takes several "
            f"minutes):\n  .venv/bin/python benchmarks/generate.py --db {db} "
            "--hits 10000000 --days 365",
            file=sys.stderr,
        )
        return 2
    stats = asyncio.run(
        add_events(
            db,
            site_id=args.site_id,
            events=args.events,
            days=args.days,
            seed=args.seed,
            force=args.force,
            batch=args.batch,
        )
    )
    if stats is None:
        return 1
    out = Path(str(db) + ".events.json")
    out.write_text(json.dumps(stats, indent=2) + "\n")
    print()
    print(
        f"inserted {stats['events']:,} events in {stats['insert_seconds']} s "
        f"= {stats['insert_rows_per_s']:,} rows/s (ignored: {stats['ignored']}, "
        f"duplicate order ids: {stats['duplicates']})"
    )
    print(f"{stats['distinct_names']} distinct event names; top: {stats['top_names']}")
    print(f"close + WAL checkpoint: {stats['close_checkpoint_seconds']} s")
    print(f"total: {stats['total_seconds']} s; database {stats['db_bytes'] / 1e9:.2f} GB")
    print(f"stats written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
