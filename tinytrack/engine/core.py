"""The Engine: the library API and everything the HTTP server calls. Knows no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite
import msgspec

from tinytrack.engine import (
    clock,
    db,
    enrich,
    ingest,
    params,
    privacy,
    pyramid,
    queries,
    rollups,
    sites,
)
from tinytrack.engine import clock as clock_mod
from tinytrack.engine.clock import Clock
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.writer import HitRow, Writer
from tinytrack.errors import (
    AuthError,
    EngineClosed,
    InvalidParameter,
    NotFound,
    ValidationFailed,
)
from tinytrack.models import (
    AccessType,
    ApiKey,
    ApiKeyInfo,
    BatchResult,
    BatchRowResult,
    CreatedHit,
    GroupBy,
    GroupedHitsPage,
    HitCreated,
    HitFilters,
    HitIn,
    HitResult,
    HitsPage,
    Ignored,
    Me,
    NewApiKey,
    Site,
    TimeZoneMode,
)

log = logging.getLogger("tinytrack.engine")

CACHE_SECONDS = 1.0  # changes made by another process (the CLI) are seen within this time
KEY_TOUCH_SECONDS = 60  # last_used_at is written at most this often per key
MAX_BATCH = 1000
DEFAULT_UA_RETENTION_DAYS = 7


class Engine:
    """An open tinytrack database. Create with ``await Engine.open(path)`` or
    ``async with tinytrack.open(path) as engine``; every method is a coroutine."""

    def __init__(
        self,
        path: str | Path,
        conn: aiosqlite.Connection,
        readers: db.ReaderPool,
        writer: Writer,
        clock_fn: Clock,
        ua_retention_days: int,
    ) -> None:
        self.path = path
        self._conn = conn
        self._readers = readers
        self._writer = writer
        self._clock = clock_fn
        self._ua_retention_days = ua_retention_days
        self._salts: dict[int, bytes] = {}
        self._sites: dict[int, tuple[float, SiteInfo | None]] = {}
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}
        self._closed = False
        self._maintenance: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path = "tinytrack.db",
        *,
        clock: Clock | None = None,
        readers: int = 2,
        max_pending_rows: int = 20_000,
        ua_retention_days: int = DEFAULT_UA_RETENTION_DAYS,
        maintenance: bool = True,
    ) -> Engine:
        clock_fn = clock or clock_mod.system_clock
        conn = await db.connect_writer(path)
        try:
            await db.migrate(conn)
            await _ensure_meta(conn, clock_fn())
            lock = asyncio.Lock()
            if db.is_memory(path):
                pool = db.ReaderPool([conn], lock=lock)
            else:
                pool = db.ReaderPool([await db.connect_reader(path) for _ in range(readers)])
            writer = Writer(conn, lock=lock, max_pending_rows=max_pending_rows)
            today = int(clock_fn()) // clock_mod.SECONDS_PER_DAY
            await writer.start(
                today=today, blocks_complete_until=await _blocks_watermark(conn, today)
            )
        except BaseException:
            await conn.close()
            raise
        engine = cls(path, conn, pool, writer, clock_fn, ua_retention_days)
        if maintenance:
            engine._maintenance = asyncio.create_task(engine._maintain(), name="tinytrack-maint")
        return engine

    async def close(self) -> None:
        """Commit every queued write, checkpoint the WAL and close. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self._writer.close()
        await self._readers.close()
        with contextlib.suppress(sqlite3.Error):
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._conn.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def now(self) -> int:
        return int(self._clock())

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._closed:
            raise EngineClosed("engine is closed")
        async with self._readers.acquire() as conn:
            yield conn

    # -- account --------------------------------------------------------------------------------

    async def me(self, key: ApiKey) -> Me:
        async with (
            self._read() as conn,
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('created_at', 'owner_email')"
            ) as cur,
        ):
            meta = {k: v for k, v in await cur.fetchall()}
        return Me(
            id=1,
            email=meta.get("owner_email"),
            is_subscribed=True,  # self-hosted: every feature is yours
            created_at=clock.iso(int(meta.get("created_at", 0))),
            api_key=ApiKeyInfo(
                name=key.name, access_type=key.access_type, last_used_at=key.last_used_at
            ),
        )

    # -- sites ----------------------------------------------------------------------------------

    async def create_site(
        self,
        url: str,
        *,
        label: str | None = None,
        timezone: str = "UTC",
        public: bool = False,
        unique_hits: bool = True,
        ignore_paths: Sequence[str] = (),
    ) -> Site:
        url = _check_site_url(url)
        clock.check_timezone(timezone)
        if label is not None and len(label) > 200:
            raise InvalidParameter("label is too long (max 200 characters)")
        rules = [str(rule) for rule in ignore_paths]
        now = self.now()

        async def insert(conn: aiosqlite.Connection) -> int:
            for _ in range(5):
                try:
                    cur = await conn.execute(
                        sites.INSERT_SITE,
                        (
                            sites.new_uid(),
                            url,
                            label,
                            timezone,
                            int(public),
                            int(unique_hits),
                            json.dumps(rules),
                            privacy.new_salt(),
                            now,
                            now,
                        ),
                    )
                    return int(cur.lastrowid or 0)
                except sqlite3.IntegrityError:  # uid collision: draw another
                    continue
            raise RuntimeError("could not allocate a unique site uid")

        site_id = await self._writer.run(insert)
        return await self.get_site(site_id)

    async def list_sites(self) -> list[Site]:
        async with self._read() as conn:
            return await sites.fetch_sites(conn)

    async def get_site(self, site_id: int) -> Site:
        async with self._read() as conn:
            found = await sites.fetch_sites(conn, site_id)
        if not found:
            raise NotFound("Site not found")
        return found[0]

    async def check_site(self, site_id: int) -> None:
        """Raise ``NotFound`` unless the site exists (cached; cheap enough for every request)."""
        await self._site_info(site_id)

    async def _site_info(self, site_id: int) -> SiteInfo:
        cached = self._sites.get(site_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            info = cached[1]
        else:
            async with (
                self._read() as conn,
                conn.execute(sites.SELECT_SITE_INFO, (site_id,)) as cur,
            ):
                row = await cur.fetchone()
            info = sites.site_info(row) if row else None
            self._sites[site_id] = (now + CACHE_SECONDS, info)
        if info is None:
            raise NotFound("Site not found")
        return info

    # -- API keys -------------------------------------------------------------------------------

    async def create_key(
        self, access_type: AccessType = "read_only", *, name: str = ""
    ) -> NewApiKey:
        if access_type not in sites.KEY_PREFIXES:
            raise InvalidParameter("access_type must be 'read_only' or 'full_access'")
        if len(name) > 200:
            raise InvalidParameter("name is too long (max 200 characters)")
        token = sites.new_token(access_type)
        prefix = token[: sites.PREFIX_LENGTH]
        now = self.now()

        async def insert(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                sites.INSERT_KEY,
                (name or f"{access_type} key", access_type, prefix, sites.token_hash(token), now),
            )
            return int(cur.lastrowid or 0)

        key_id = await self._writer.run(insert)
        return NewApiKey(key=await self.get_key(key_id), token=token)

    async def list_keys(self) -> list[ApiKey]:
        async with self._read() as conn, conn.execute(sites.SELECT_KEYS) as cur:
            return [sites.key_record(row) for row in await cur.fetchall()]

    async def get_key(self, key_id: int) -> ApiKey:
        async with self._read() as conn, conn.execute(sites.SELECT_KEY_BY_ID, (key_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("API key not found")
        return sites.key_record(row)

    async def revoke_key(self, key: int | str) -> ApiKey:
        """Revoke by numeric id, by the prefix shown in ``key list``, or by the token itself."""
        found: ApiKey | None = None
        for candidate in await self.list_keys():
            if (isinstance(key, int) and candidate.id == key) or (
                isinstance(key, str)
                and (
                    candidate.prefix == key or (key.startswith(candidate.prefix) and len(key) > 20)
                )
            ):
                found = candidate
        if found is None:
            raise NotFound("API key not found")
        now = self.now()
        key_id = found.id

        async def revoke(conn: aiosqlite.Connection) -> None:
            await conn.execute(sites.REVOKE_KEY, (now, key_id))

        await self._writer.run(revoke)
        self._keys.clear()
        return await self.get_key(key_id)

    async def authenticate(self, token: str | None) -> ApiKey:
        """The key for a bearer token; ``AuthError`` if missing, unknown or revoked."""
        if not token:
            raise AuthError("Missing API key")
        if len(token) > 200:
            raise AuthError("Invalid API key")
        digest = sites.token_hash(token)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now:
            key = cached[1]
        else:
            async with (
                self._read() as conn,
                conn.execute(sites.SELECT_KEY_BY_HASH, (digest,)) as cur,
            ):
                row = await cur.fetchone()
            key = sites.key_record(row) if row else None
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[digest] = (now + CACHE_SECONDS, key)
        if key is None:
            raise AuthError("Invalid API key")
        if key.revoked_at is not None:
            raise AuthError("API key has been revoked")
        self._touch(key)
        return key

    def _touch(self, key: ApiKey) -> None:
        """Record last use, at most once a minute per key, without delaying the request."""
        now = self._clock()
        if now - self._touched.get(key.id, 0.0) < KEY_TOUCH_SECONDS:
            return
        self._touched[key.id] = now
        key_id, stamp = key.id, int(now)

        async def touch(conn: aiosqlite.Connection) -> None:
            await conn.execute(sites.TOUCH_KEY, (stamp, key_id))

        self._writer.run_later(touch)

    # -- writing hits ---------------------------------------------------------------------------

    async def _salt(self, day: int) -> bytes:
        salt = self._salts.get(day)
        if salt is not None:
            return salt

        async def ensure(conn: aiosqlite.Connection) -> bytes:
            await conn.execute(
                "INSERT OR IGNORE INTO salts (day, salt) VALUES (?, ?)", (day, privacy.new_salt())
            )
            # A salt older than yesterday can never be needed again: forget it for good.
            await conn.execute("DELETE FROM salts WHERE day < ?", (day - 1,))
            async with conn.execute("SELECT salt FROM salts WHERE day = ?", (day,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            return bytes(row[0])

        salt = await self._writer.run(ensure)
        self._salts = {d: s for d, s in self._salts.items() if d >= day - 1}
        self._salts[day] = salt
        return salt

    async def _prepare(self, site: SiteInfo, hit: HitIn, now: int) -> HitRow | Ignored:
        return ingest.prepare_hit(site, hit, now=now, salt=await self._salt(clock.utc_day(now)))

    async def record_hit(self, site_id: int, hit: HitIn) -> HitResult:
        """Store one hit. Returns ``HitCreated`` once committed, or ``Ignored`` (bot, ignore
        rule); raises ``ValidationFailed``, ``NotFound`` or ``Overloaded``."""
        site = await self._site_info(site_id)
        now = self.now()
        prepared = await self._prepare(site, hit, now)
        if isinstance(prepared, Ignored):
            return prepared
        (stored,) = await self._writer.insert_hits([prepared])
        return HitCreated(status="created", hit=_created_hit(site, prepared, stored.id))

    async def record_hits(
        self, site_id: int, hits: Sequence[HitIn | ValidationFailed]
    ) -> BatchResult:
        """Store many hits in one transaction, partial success: each item is created, ignored
        or an error (an item may be a ``ValidationFailed`` from decoding, reported as is)."""
        if len(hits) > MAX_BATCH:
            raise ValidationFailed([f"Batch is limited to {MAX_BATCH} hits"])
        site = await self._site_info(site_id)
        now = self.now()
        salt = await self._salt(clock.utc_day(now))
        results: list[BatchRowResult] = []
        rows: list[HitRow] = []
        for index, item in enumerate(hits):
            try:
                if isinstance(item, ValidationFailed):
                    raise item
                prepared = ingest.prepare_hit(site, item, now=now, salt=salt)
            except ValidationFailed as exc:
                results.append(BatchRowResult(index=index, status="error", errors=exc.errors))
                continue
            if isinstance(prepared, Ignored):
                results.append(
                    BatchRowResult(index=index, status="ignored", reason=prepared.reason)
                )
                continue
            rows.append(prepared)
            results.append(BatchRowResult(index=index, status="created"))
        if rows:
            await self._writer.insert_hits(rows)
        counts = {"created": 0, "ignored": 0, "error": 0}
        for result in results:
            counts[result.status] += 1
        return BatchResult(
            created_count=counts["created"],
            ignored_count=counts["ignored"],
            error_count=counts["error"],
            results=results,
        )

    # -- reading hits ---------------------------------------------------------------------------

    async def hits(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        country: str | None = None,
        path: str | None = None,
        referrer: str | None = None,
        grouped: bool = False,
        group_by: GroupBy | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> HitsPage | GroupedHitsPage:
        """``GET /sites/{id}/hits``: raw hits (newest first) or grouped counts.

        Dates are inclusive days in UTC (``time_zone="utc"``) or in the site's time zone
        (``"user"``); they default to the last 30 days up to today.
        """
        site = await self._site_info(site_id)
        tz = site.timezone if time_zone == "user" else "UTC"
        end = end_date or clock.today(tz, self._clock())
        start = start_date or (end - dt.timedelta(days=30))
        params.check_range(start, end)
        if not 1 <= per_page <= params.MAX_PER_PAGE or page < 1:
            raise InvalidParameter("page must be >= 1 and per_page between 1 and 1000")
        days = (clock.day_number(start), clock.day_number(end))
        bounds = queries.time_bounds(site, days[0], days[1], time_zone)
        filters = {"country": country, "path": path, "referrer": referrer}
        shown = HitFilters(
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            time_zone=time_zone,
            country=country,
            path=path,
            referrer=referrer,
            grouped=grouped,
        )
        async with self._read() as conn:
            if not grouped:
                rows, total = await queries.raw_hits(conn, site, bounds, filters, page, per_page)
                return HitsPage(
                    hits=rows, pagination=queries.pagination(page, per_page, total), filters=shown
                )
            dim: GroupBy = group_by or "path"
            shown.group_by = dim
            if any(v is not None for v in filters.values()):
                # Rollups hold one dimension at a time; filtered questions read the raw rows.
                groups, total = await queries.grouped_from_raw(
                    conn, site, dim, bounds, filters, page, per_page
                )
            else:
                local = time_zone == "user" and site.timezone != "UTC"
                segments = pyramid.plan(
                    days[0], days[1], self._writer.blocks_complete_until, local=local
                )
                groups, total = await queries.grouped_from_rollups(
                    conn, site, dim, segments, local, page, per_page
                )
        return GroupedHitsPage(
            grouped_hits=[
                queries.shape_group(dim, g, with_uniques=site.unique_hits) for g in groups
            ],
            pagination=queries.pagination(page, per_page, total),
            filters=shown,
        )

    # -- maintenance ----------------------------------------------------------------------------

    async def purge_user_agents(self) -> int:
        """Forget stored user-agent strings older than the retention period; returns how many.

        Parsed browser / platform / mobile fields stay. A watermark in ``meta`` keeps each run
        to the rows that became due since the last one.
        """
        cutoff = self.now() - self._ua_retention_days * clock.SECONDS_PER_DAY

        async def purge(conn: aiosqlite.Connection) -> int:
            async with conn.execute("SELECT value FROM meta WHERE key = 'ua_purged_until'") as cur:
                row = await cur.fetchone()
            since = int(row[0]) if row else 0
            if since >= cutoff:
                return 0
            total = 0
            async with conn.execute("SELECT id FROM sites") as cur:
                site_ids = [r[0] for r in await cur.fetchall()]
            for site_id in site_ids:
                cur = await conn.execute(
                    "UPDATE hits SET user_agent = NULL WHERE site_id = ? AND created_at >= ? "
                    "AND created_at < ? AND user_agent IS NOT NULL",
                    (site_id, since, cutoff),
                )
                total += max(cur.rowcount, 0)
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('ua_purged_until', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(cutoff),),
            )
            return total

        return await self._writer.run(purge)

    async def compact_rollups(self) -> int:
        """Build the rollup blocks that now lie entirely in the past (see ``pyramid``); returns
        how many blocks were built. Runs hourly in the background; safe to call any time."""
        today = clock.utc_day(self._clock())
        start = self._writer.blocks_complete_until
        if start >= today:
            return 0
        async with self._read() as conn, conn.execute("SELECT id FROM sites") as cur:
            site_ids = [row[0] for row in await cur.fetchall()]
        built = 0
        codes = [rollups.TOTAL, *(code for code, _ in rollups.DIMENSIONS.values())]
        # One transaction per block end day, oldest first, so the watermark only ever moves
        # over blocks that are committed, and ingestion waits at most one block's work.
        groups = list(pyramid.blocks_ending_between(start, today).items())
        groups.append((today - 1, []))  # then move the watermark up to today
        for end, blocks in groups:

            async def build(
                conn: aiosqlite.Connection, blocks: list[tuple[int, int]] = blocks, end: int = end
            ) -> None:
                for level, block in blocks:
                    size = pyramid.BLOCK_DAYS[level]
                    first = block * size
                    for site_id in site_ids:
                        for code in codes:
                            await conn.execute(pyramid.DELETE_BLOCK, (site_id, code, level, block))
                            await conn.execute(
                                pyramid.BUILD_BLOCK,
                                (level, size, size, site_id, code, first, first + size - 1, size),
                            )
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('blocks_complete_until', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(end + 1),),
                )

            def advance(end: int = end) -> None:
                self._writer.blocks_complete_until = max(
                    self._writer.blocks_complete_until, end + 1
                )

            await self._writer.run(build, after_commit=advance)
            built += len(blocks)
        return built

    async def _maintain(self) -> None:
        while True:
            for task in (self.purge_user_agents, self.compact_rollups):
                try:
                    await task()
                except Exception:
                    log.exception("maintenance task %s failed", task.__name__)
            await asyncio.sleep(3600)


async def _blocks_watermark(conn: aiosqlite.Connection, today: int) -> int:
    """The rollup-block watermark; on a new database (or one from before the pyramid) it starts
    at the first day with data, so only blocks that can hold data are ever built."""
    async with conn.execute("SELECT value FROM meta WHERE key = 'blocks_complete_until'") as cur:
        row = await cur.fetchone()
    if row is not None:
        return int(row[0])
    async with conn.execute("SELECT MIN(utc_day) FROM hit_rollups") as cur:
        first = await cur.fetchone()
    start = int(first[0]) if first and first[0] is not None else today
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES ('blocks_complete_until', ?)", (str(start),)
    )
    return start


async def _ensure_meta(conn: aiosqlite.Connection, now: float) -> None:
    await conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", (str(int(now)),)
    )


def _check_site_url(url: str) -> str:
    text = url.strip()
    if not text:
        raise InvalidParameter("url can't be blank")
    if "://" not in text:
        text = "https://" + text
    if len(text) > 2048 or not enrich.host_of(text):
        raise InvalidParameter(f"not a valid site URL: {url!r}")
    return text.rstrip("/")


def _created_hit(site: SiteInfo, row: HitRow, hit_id: int) -> CreatedHit:
    return CreatedHit(
        id=hit_id,
        url=row.url or site.base_url + row.path,
        path=row.path,
        referrer=row.referrer,
        country=row.country,
        browser_name=row.browser_name,
        platform_name=row.platform_name,
        is_mobile=bool(row.is_mobile),
        source=row.source,
        unique_hash=row.unique_hash,
        visitor_hash=row.visitor_hash,
        created_at=clock.iso(row.created_at),
    )


def decode_hit(raw: bytes | msgspec.Raw) -> HitIn:
    """Decode one JSON hit object; malformed input raises ``ValidationFailed``."""
    try:
        return msgspec.json.decode(raw, type=HitIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([str(exc)]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([f"Malformed JSON: {exc}"]) from None


def decode_hit_batch(raw: bytes) -> list[HitIn | ValidationFailed]:
    """Decode a top-level JSON array of hits; each element is decoded on its own so one bad
    row only fails itself."""
    try:
        items = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise ValidationFailed(["Body must be a top-level JSON array"]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([f"Malformed JSON: {exc}"]) from None
    if len(items) > MAX_BATCH:
        raise ValidationFailed([f"Batch is limited to {MAX_BATCH} hits"])
    out: list[HitIn | ValidationFailed] = []
    for item in items:
        try:
            out.append(decode_hit(item))
        except ValidationFailed as exc:
            out.append(exc)
    return out
