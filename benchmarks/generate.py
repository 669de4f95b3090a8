"""Realistic synthetic traffic for the tinytrack benchmarks.

Two uses:

* ``Traffic(seed).hits(n)`` yields hit dicts (the JSON body of ``POST /sites/{id}/hits``) for the
  HTTP benchmarks;
* ``python benchmarks/generate.py --db benchmarks/data/bench10m.db --hits 10000000 --days 365``
  builds a database of N hits spread over N days ending today, written through the engine's real
  write path (``ingest.prepare_hit`` + the group-commit ``Writer``), so hits, unique flags and
  rollups are exactly what the server would have produced. Then it runs the real user-agent
  retention pass once, so the file looks like one a server has been maintaining all along.

The model: Zipf-distributed paths (a few thousand distinct), visits of a few page views by a pool
of returning visitors (IP address from a per-country pool of real public addresses + one of ~30
real browser user agents), entry referrers (~40% none, search engines, social sites, a long tail
of hosts), in-visit referrers pointing at the previous page, a weekly rhythm, a diurnal curve and
slow growth over the period. Everything is derived from ``--seed``: the same arguments give the
same data.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SITE_URL = "https://example.com"
DAY = 86_400

# ~30 real browser user agents with rough market weights (desktop and mobile). No bots: every hit
# built from these is stored (201), never ignored.
USER_AGENTS: tuple[tuple[str, float], ...] = (
    # Chrome desktop
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 14.0),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36", 5.0),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 7.0),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 2.0),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 0.8),
    # Edge, Opera, Brave-like, Vivaldi
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 5.0),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 0.7),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", 0.8),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18", 0.3),
    # Firefox desktop
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 3.5),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", 1.0),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 1.2),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", 0.6),
    # Safari desktop
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", 4.5),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.6 Safari/605.1.15", 1.5),
    # iPhone / iPad
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 12.0),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 5.0),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", 2.0),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15", 0.5),
    ("Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Mobile/15E148 Safari/604.1", 1.5),
    # Android
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", 13.0),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.39 Mobile Safari/537.36", 2.0),
    ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", 3.0),
    ("Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Mobile Safari/537.36", 2.0),
    ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", 0.8),
    ("Mozilla/5.0 (Linux; Android 12; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0", 0.5),
    ("Mozilla/5.0 (Linux; Android 13; 2201116SG) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", 0.4),
    ("Mozilla/5.0 (Linux; Android 11; moto g(50)) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/128.0.0.0 Mobile Safari/537.36", 0.7),
    ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 0.6),
    # in-app browser
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Mobile/15E148 Instagram 357.0.0.25.101 (iPhone14,5; iOS 17_5)", 0.6),
)

# Share of visitors per country (rough; the rest of the world is spread over the long tail).
COUNTRY_WEIGHTS: dict[str, float] = {
    "US": 28, "DE": 8, "GB": 7, "IN": 6, "FR": 4.5, "CA": 4, "BR": 3.5, "NL": 3, "JP": 3,
    "AU": 2.5, "ES": 2.5, "PL": 2, "IT": 2, "SE": 1.5, "RU": 1.5, "CH": 1.2, "MX": 1.2,
    "KR": 1, "CN": 1, "TR": 1, "ID": 1, "BE": 0.8, "ZA": 0.8, "AR": 0.8, "NO": 0.7,
    "SG": 0.7, "DK": 0.6, "FI": 0.6, "AT": 0.6, "IE": 0.6, "CZ": 0.6, "VN": 0.6, "TW": 0.6,
    "CO": 0.5, "EG": 0.5, "NZ": 0.4, "PT": 0.4, "IL": 0.4, "UA": 0.4, "RO": 0.4,
}
IPS_PER_COUNTRY = 400

SEARCH_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://www.google.com/", 60), ("https://www.google.de/", 5),
    ("https://www.google.co.uk/", 4), ("https://www.google.fr/", 2),
    ("https://www.google.co.in/", 3), ("https://www.google.ca/", 2),
    ("https://www.google.com.br/", 1.5), ("https://www.google.pl/", 1),
    ("https://www.google.nl/", 1), ("https://www.bing.com/", 8), ("https://duckduckgo.com/", 6),
    ("https://search.yahoo.com/", 1.5), ("https://www.ecosia.org/", 1),
    ("https://search.brave.com/", 1.5), ("https://kagi.com/", 0.5), ("https://yandex.ru/", 0.8),
    ("https://www.baidu.com/", 0.4),
)
SOCIAL_REFERRERS: tuple[tuple[str, float], ...] = (
    ("https://t.co/", 20), ("https://news.ycombinator.com/", 18), ("https://www.reddit.com/", 15),
    ("https://www.facebook.com/", 8), ("https://www.linkedin.com/", 7), ("https://lnkd.in/", 3),
    ("https://bsky.app/", 4), ("https://www.youtube.com/", 3), ("https://github.com/", 8),
    ("https://l.instagram.com/", 2), ("https://mastodon.social/", 4), ("https://lobste.rs/", 3),
)
REFERRER_MIX = (("search", 0.55), ("social", 0.18), ("tail", 0.27))
NO_REFERRER = 0.40  # share of hits sent without a referrer (direct visits, stripped referrers)
TAIL_HOSTS = 6000
TLDS = ("com", "net", "org", "io", "dev", "blog", "de", "co.uk", "fr", "nl", "app")
WORDS = (
    "code", "byte", "dev", "notes", "daily", "weekly", "hacker", "stack", "cloud", "data", "web",
    "pixel", "river", "forest", "lab", "studio", "garden", "craft", "logic", "signal", "stream",
)


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def build_paths(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct paths, most popular first."""
    head = ["/", "/blog/", "/pricing", "/about", "/docs/", "/features", "/contact", "/changelog"]
    body: list[str] = []
    for i in range(1, n):
        kind = i % 10
        if kind < 7:
            body.append(f"/blog/post-{i}")
        elif kind < 9:
            body.append(f"/docs/{('guide', 'api', 'howto', 'faq')[i % 4]}/page-{i}")
        else:
            body.append(f"/tags/tag-{i}")
    rng.shuffle(body)
    return (head + body)[:n]


def build_ip_pool(rng: random.Random, per_country: int = IPS_PER_COUNTRY) -> dict[str, list[str]]:
    """Real public IPv4 addresses that the bundled IP table maps to each country of
    ``COUNTRY_WEIGHTS`` (found by sampling the address space with ``rng``)."""
    import iptocc

    pool: dict[str, list[str]] = {code: [] for code in COUNTRY_WEIGHTS}
    missing = set(pool)
    for _ in range(5_000_000):
        if not missing:
            break
        ip = (
            f"{rng.randint(1, 223)}.{rng.randint(0, 255)}."
            f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        )
        if ip.startswith(("10.", "127.", "192.168.", "169.254.")):
            continue
        code = iptocc.country_code(ip)
        if code in missing:
            pool[code].append(ip)
            if len(pool[code]) >= per_country:
                missing.discard(code)
    return {code: ips for code, ips in pool.items() if ips}


class Traffic:
    """A seeded source of realistic page views for one site."""

    def __init__(
        self,
        seed: int = 42,
        *,
        paths: int = 3000,
        visitors: int = 50_000,
        site_url: str = SITE_URL,
    ) -> None:
        self.rng = rng = random.Random(seed)
        self.site_url = site_url.rstrip("/")
        self.paths = build_paths(paths, rng)
        self._path_cum = _cumulative(_zipf_weights(len(self.paths), 1.05))
        self._ua = [ua for ua, _ in USER_AGENTS]
        self._ua_cum = _cumulative([w for _, w in USER_AGENTS])
        self._search = [u for u, _ in SEARCH_REFERRERS]
        self._search_cum = _cumulative([w for _, w in SEARCH_REFERRERS])
        self._social = [u for u, _ in SOCIAL_REFERRERS]
        self._social_cum = _cumulative([w for _, w in SOCIAL_REFERRERS])
        self._tail_hosts = [
            f"https://{'www.' if i % 3 == 0 else ''}{WORDS[i % len(WORDS)]}"
            f"{WORDS[(i * 7) % len(WORDS)]}{i}.{TLDS[i % len(TLDS)]}"
            for i in range(TAIL_HOSTS)
        ]
        self._tail_cum = _cumulative(_zipf_weights(TAIL_HOSTS, 0.9))
        ip_pool = build_ip_pool(rng)
        countries = list(ip_pool)
        country_cum = _cumulative([COUNTRY_WEIGHTS[c] for c in countries])
        # A visitor = (ip address, user agent). Returning visitors are drawn from this pool with
        # a skew, so some come back daily and most rarely.
        self.visitors: list[tuple[str, str]] = []
        for _ in range(visitors):
            country = countries[self._pick(country_cum)]
            ip = rng.choice(ip_pool[country])
            self.visitors.append((ip, self._ua[self._pick(self._ua_cum)]))

    def _pick(self, cum: list[float]) -> int:
        return bisect.bisect(cum, self.rng.random() * cum[-1])

    def path(self) -> str:
        return self.paths[self._pick(self._path_cum)]

    def entry_referrer(self) -> str | None:
        """Referrer of the first page of a visit."""
        rng = self.rng
        if rng.random() < NO_REFERRER:
            return None
        r = rng.random()
        if r < REFERRER_MIX[0][1]:
            return self._search[self._pick(self._search_cum)]
        if r < REFERRER_MIX[0][1] + REFERRER_MIX[1][1]:
            base = self._social[self._pick(self._social_cum)]
            if "reddit" in base and rng.random() < 0.5:
                return f"{base}r/{rng.choice(('programming', 'python', 'webdev', 'selfhosted'))}/"
            return base
        host = self._tail_hosts[self._pick(self._tail_cum)]
        if rng.random() < 0.6:
            return f"{host}/posts/{rng.randrange(1, 40)}"
        return host + "/"

    def visitor(self) -> tuple[str, str]:
        # Skewed towards the start of the pool: a core of regulars and a long tail.
        index = int(len(self.visitors) * self.rng.random() ** 2.5)
        return self.visitors[index]

    def visit(self) -> list[dict[str, Any]]:
        """The page views of one visit, in order (hit dicts without timestamps)."""
        rng = self.rng
        ip, ua = self.visitor()
        pages = 1
        while pages < 20 and rng.random() < 0.55:
            pages += 1
        referrer = self.entry_referrer()
        path = self.path()
        if referrer is None and rng.random() < 0.03:
            path += "?utm_source=newsletter&utm_medium=email"
        out: list[dict[str, Any]] = []
        for i in range(pages):
            hit: dict[str, Any] = {"path": path, "ip_address": ip, "user_agent": ua}
            if referrer is not None:
                hit["referrer"] = referrer
            out.append(hit)
            if i + 1 < pages:
                previous = path.partition("?")[0]
                path = self.path()
                # Next page: the browser reports the previous page, unless the referrer policy
                # strips it.
                referrer = None if rng.random() < NO_REFERRER else self.site_url + previous
        return out

    def hits(self, n: int) -> Iterator[dict[str, Any]]:
        """``n`` hit dicts (JSON bodies for ``POST /api/v1/sites/{id}/hits``)."""
        produced = 0
        while produced < n:
            for hit in self.visit():
                if produced == n:
                    return
                yield hit
                produced += 1

    def daily_counts(self, total: int, days: int, end: dt.date, now: float) -> list[int]:
        """Hits per day for ``days`` days ending ``end``: growth, weekly rhythm, noise; the last
        day (if it is today) only gets the part of the day already elapsed. Sums to ``total``."""
        rng = self.rng
        weights = []
        for i in range(days):
            day = end - dt.timedelta(days=days - 1 - i)
            w = (1.0 + 0.8 * i / max(days - 1, 1)) * (0.72 if day.weekday() >= 5 else 1.0)
            w *= rng.lognormvariate(0.0, 0.12)
            start = _day_start(day)
            if start + DAY > now:
                w *= max(now - start, 1.0) / DAY
            weights.append(w)
        scale = total / sum(weights)
        counts = [int(w * scale) for w in weights]
        remainders = sorted(range(days), key=lambda i: weights[i] * scale - counts[i], reverse=True)
        for i in remainders[: total - sum(counts)]:
            counts[i] += 1
        return counts

    def day_hits(self, day: dt.date, count: int, now: float) -> list[tuple[int, dict[str, Any]]]:
        """``count`` (timestamp, hit) pairs within ``day`` (UTC, never after ``now``), sorted."""
        rng = self.rng
        start = _day_start(day)
        end = min(start + DAY, int(now))
        span = max(end - start, 1)
        out: list[tuple[int, dict[str, Any]]] = []
        while len(out) < count:
            # Diurnal curve: more traffic in the (UTC) afternoon.
            while True:
                offset = rng.random() * span
                hour = (offset / 3600.0) % 24
                if rng.random() < 0.55 + 0.45 * math.sin(math.pi * (hour - 6) / 24) ** 2:
                    break
            ts = start + offset
            for hit in self.visit():
                if len(out) == count:
                    break
                out.append((min(int(ts), end - 1), hit))
                ts += rng.expovariate(1 / 40.0)
        out.sort(key=lambda pair: pair[0])
        return out


def _day_start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp())


# -------------------------------------------------------------------------------------------------
# Database builder


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


async def build_database(
    db: Path,
    *,
    hits: int,
    days: int,
    seed: int,
    batch: int = 1000,
    purge: bool = True,
    in_flight: int = 2,
) -> dict[str, Any]:
    from tinytrack.engine import Engine
    from tinytrack.engine.ingest import prepare_hit
    from tinytrack.engine.writer import HitRow
    from tinytrack.models import HitIn, Ignored

    now = time.time()
    end = dt.datetime.fromtimestamp(now, dt.UTC).date()
    traffic = Traffic(seed, visitors=max(5_000, min(hits // 40, 400_000)))
    counts = traffic.daily_counts(hits, days, end, now)
    first_day = end - dt.timedelta(days=days - 1)

    engine = await Engine.open(db, maintenance=False)
    started = time.perf_counter()
    written = ignored = 0
    try:
        site = await engine.create_site(SITE_URL, label="benchmark site")
        info = await engine._site_info(site.id)
        writer = engine._writer
        tasks: list[asyncio.Task[Any]] = []
        last_report = started
        last_written = 0

        async def submit(rows: list[HitRow]) -> None:
            nonlocal written
            # Keep a couple of batches queued so preparing rows overlaps SQLite's work.
            if len(tasks) >= in_flight:
                await tasks.pop(0)
            tasks.append(asyncio.ensure_future(writer.insert_hits(rows)))
            written += len(rows)

        decode = HitIn
        for index, count in enumerate(counts):
            day = first_day + dt.timedelta(days=index)
            day_number = (day - dt.date(1970, 1, 1)).days
            salt = await engine._salt(day_number)
            rows: list[HitRow] = []
            for ts, hit in traffic.day_hits(day, count, now):
                row = prepare_hit(info, decode(**hit), now=ts, salt=salt)
                if isinstance(row, Ignored):
                    ignored += 1
                    continue
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
            await task
        insert_seconds = time.perf_counter() - started
        purge_seconds = compact_seconds = 0.0
        purged = blocks = 0
        if purge:
            print("running the user-agent retention pass (real engine code) ...", flush=True)
            t0 = time.perf_counter()
            purged = await engine.purge_user_agents()
            purge_seconds = time.perf_counter() - t0
        # Build the rollup pyramid now (the server's hourly maintenance would otherwise do it
        # in the background just after start, in the middle of a query benchmark).
        print("building the rollup pyramid (real engine code) ...", flush=True)
        t0 = time.perf_counter()
        blocks = await engine.compact_rollups()
        compact_seconds = time.perf_counter() - t0
        print(f"rollup pyramid: {blocks} blocks in {compact_seconds:.1f} s", flush=True)
    finally:
        t0 = time.perf_counter()
        await engine.close()  # commits, checkpoints the WAL (TRUNCATE)
        close_seconds = time.perf_counter() - t0
    total_seconds = time.perf_counter() - started
    return {
        "db": str(db),
        "site_id": site.id,
        "hits": written,
        "ignored": ignored,
        "days": days,
        "first_day": first_day.isoformat(),
        "last_day": end.isoformat(),
        "seed": seed,
        "insert_seconds": round(insert_seconds, 1),
        "insert_rows_per_s": round(written / insert_seconds),
        "ua_purged_rows": purged,
        "ua_purge_seconds": round(purge_seconds, 1),
        "close_checkpoint_seconds": round(close_seconds, 1),
        "pyramid_blocks": blocks,
        "pyramid_seconds": round(compact_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "db_bytes": db.stat().st_size,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tinytrack_tree": _code_version(),
    }


def _code_version() -> str:
    try:
        from common import code_version
    except ImportError:
        return "unknown"
    return code_version()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="database file to create")
    parser.add_argument("--hits", type=int, default=10_000_000, help="number of hits (10M)")
    parser.add_argument("--days", type=int, default=365, help="days of data ending today (365)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=1000, help="rows per writer job (1000)")
    parser.add_argument("--force", action="store_true", help="replace an existing database")
    parser.add_argument(
        "--no-purge", action="store_true", help="skip the user-agent retention pass at the end"
    )
    parser.add_argument(
        "--sample", type=int, metavar="N", help="print N hit bodies as JSON lines and exit"
    )
    args = parser.parse_args(argv)

    if args.sample is not None:
        for hit in Traffic(args.seed).hits(args.sample):
            sys.stdout.write(json.dumps(hit) + "\n")
        return 0
    if args.db is None:
        parser.error("--db is required (or --sample N)")
    if args.hits < 1 or args.days < 1:
        parser.error("--hits and --days must be positive")
    db: Path = args.db
    if db.exists():
        if not args.force:
            print(f"error: {db} exists (use --force to replace it)", file=sys.stderr)
            return 1
        _remove_db(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {args.hits:,} hits over {args.days} days into {db} (seed {args.seed})")
    stats = asyncio.run(
        build_database(
            db,
            hits=args.hits,
            days=args.days,
            seed=args.seed,
            batch=args.batch,
            purge=not args.no_purge,
        )
    )
    Path(str(db) + ".json").write_text(json.dumps(stats, indent=2) + "\n")
    print()
    print(f"inserted {stats['hits']:,} hits in {stats['insert_seconds']} s "
          f"= {stats['insert_rows_per_s']:,} rows/s (ignored: {stats['ignored']})")
    if not args.no_purge:
        print(f"user-agent retention pass: {stats['ua_purged_rows']:,} rows "
              f"in {stats['ua_purge_seconds']} s")
    print(f"close + WAL checkpoint: {stats['close_checkpoint_seconds']} s")
    print(f"total: {stats['total_seconds']} s; database {stats['db_bytes'] / 1e9:.2f} GB")
    print(f"stats written to {db}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
