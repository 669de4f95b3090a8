"""The Engine: the library API and everything the HTTP server calls. Knows no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec
from msgspec import UNSET, UnsetType

from tinytrack.engine import (
    backup,
    clock,
    collect,
    csv_export,
    csv_import,
    db,
    deletion,
    enrich,
    events,
    goals,
    ingest,
    journeys,
    kudos,
    leaderboard,
    owner,
    params,
    privacy,
    pyramid,
    queries,
    rollups,
    sessions,
    settled,
    site_names,
    sites,
    tracking,
    traffic,
    visitors,
    widgets,
)
from tinytrack.engine import clock as clock_mod
from tinytrack.engine.clock import Clock
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.writer import EventRow, HitRow, Writer
from tinytrack.errors import (
    AuthError,
    EngineClosed,
    InvalidParameter,
    NotFound,
    TinytrackError,
    ValidationFailed,
)
from tinytrack.models import (
    GROUP_BY_VALUES,
    AccessType,
    ApiKey,
    ApiKeyInfo,
    BatchResult,
    BatchRowResult,
    BeaconEventIn,
    BeaconKudoIn,
    CacheInfo,
    CreatedEvent,
    CreatedHit,
    EventCreated,
    EventFilters,
    EventGroupBy,
    EventIn,
    EventResult,
    EventsPage,
    ExportKind,
    Goal,
    GoalsPage,
    GroupBy,
    GroupedEventsPage,
    GroupedHitsPage,
    Health,
    HitCreated,
    HitFilters,
    HitIn,
    HitResult,
    HitsPage,
    Ignored,
    ImportReport,
    JourneyFilters,
    Kudo,
    KudoCreated,
    KudoDeleted,
    KudoFilters,
    KudoGiven,
    KudoIn,
    KudoResult,
    KudosPage,
    LeaderboardFilters,
    LeaderboardPage,
    Me,
    NewApiKey,
    PageViewIn,
    Period,
    SessionFilters,
    SessionsPage,
    Site,
    SiteRef,
    TimeZoneMode,
    Tracked,
    TrackIn,
    Traffic,
    TrafficPoint,
    UserJourneysPage,
    WidgetCountries,
    WidgetHits,
    WidgetKudos,
)

log = logging.getLogger("tinytrack.engine")
T = TypeVar("T")

CACHE_SECONDS = 1.0  # changes made by another process (the CLI) are seen within this time
KEY_TOUCH_SECONDS = 60  # last_used_at is written at most this often per key
MAX_BATCH = 1000
DUPLICATE_ORDER = "Order id has already been recorded"
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
        self._uids: dict[str, tuple[float, int | None]] = {}
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}
        self._raw_days = journeys.RawDays()  # today's journeys between queries
        self._settled = settled.SettledTotals()  # grouped totals of long ranges' settled part
        self._names: dict[str, tuple[float, int | None]] = {}  # find_site's cache
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
        opened: list[aiosqlite.Connection] = []
        try:
            await db.migrate(conn)
            await _ensure_meta(conn, clock_fn())
            lock = asyncio.Lock()
            fold_conn = None
            if db.is_memory(path):
                pool = db.ReaderPool([conn], lock=lock)
            else:
                for _ in range(readers):
                    opened.append(await db.connect_reader(path))
                pool = db.ReaderPool(opened)
                # The writer's folds are computed here, beside its commits (fold.py).
                fold_conn = await db.connect_reader(path)
                opened.append(fold_conn)
            writer = Writer(conn, lock=lock, fold_conn=fold_conn, max_pending_rows=max_pending_rows)
            today = int(clock_fn()) // clock_mod.SECONDS_PER_DAY
            await writer.start(
                today=today,
                blocks_complete_until=await _blocks_watermark(conn, today),
                journeys_built_until=await journeys.built_until(conn),
            )
            await writer.fold()  # what a crash (or another process) left unfolded
        except BaseException:
            # Close every connection opened so far: an aiosqlite connection left open keeps
            # its thread alive and would stop the interpreter from exiting.
            for reader in opened:
                await reader.close()
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
        await self._writer.close_fold_connection()
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
    async def _read(self, *, rollups: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """A reader connection. Unless ``rollups=False`` (reads that never touch the rollup
        tables), first waits for the writer to fold the hits it committed into the rollups, so
        every answer counts every acknowledged hit (see writer.py)."""
        if self._closed:
            raise EngineClosed("engine is closed")
        if rollups and self._writer.unfolded:
            await self._writer.fold()  # before taking a reader: :memory: shares the writer's
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
        self._names.clear()  # a name that found no site may find this one
        return await self.get_site(site_id)

    async def update_site(
        self,
        site_id: int,
        *,
        label: str | UnsetType | None = UNSET,
        timezone: str | UnsetType = UNSET,
        public: bool | UnsetType = UNSET,
        active: bool | UnsetType = UNSET,
        unique_hits: bool | UnsetType = UNSET,
        ignore_paths: Sequence[str] | UnsetType = UNSET,
    ) -> Site:
        """Change a site's settings; options left out stay as they are. An inactive site
        records nothing (the API answers ``ignored``, the browser collector 403)."""
        await self._site_info(site_id)
        changes: dict[str, object] = {}
        if not isinstance(label, UnsetType):
            if label is not None and len(label) > 200:
                raise InvalidParameter("label is too long (max 200 characters)")
            changes["label"] = label
        if not isinstance(timezone, UnsetType):
            clock.check_timezone(timezone)
            changes["timezone"] = timezone
        for name, flag in (("public", public), ("active", active), ("unique_hits", unique_hits)):
            if not isinstance(flag, UnsetType):
                changes[name] = int(flag)
        if not isinstance(ignore_paths, UnsetType):
            changes["ignore_paths"] = json.dumps([str(rule) for rule in ignore_paths])
        if changes:
            sql, args = sites.update_site(site_id, changes, self.now())

            async def update(conn: aiosqlite.Connection) -> None:
                await conn.execute(sql, args)

            await self._writer.run(update)
            self._sites.pop(site_id, None)
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
                self._read(rollups=False) as conn,
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
                self._read(rollups=False) as conn,
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

    async def record_hit(self, site_id: int, hit: HitIn) -> HitResult:
        """Store one hit. Returns ``HitCreated`` once committed, or ``Ignored`` (bot, ignore
        rule); raises ``ValidationFailed``, ``NotFound`` or ``Overloaded``."""
        return await self._record_hit(await self._site_info(site_id), hit)

    async def _record_hit(self, site: SiteInfo, hit: HitIn, reader: str | None = None) -> HitResult:
        now = self.now()
        salt = await self._salt(clock.utc_day(now))
        prepared = ingest.prepare_hit(site, hit, now=now, salt=salt, reader=reader)
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
        results, rows, _created = _prepare_batch(
            hits, lambda item: ingest.prepare_hit(site, item, now=now, salt=salt)
        )
        if rows:
            await self._writer.insert_hits(rows)
        return _batch_result(results)

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
        browser_name: str | None = None,
    ) -> HitsPage | GroupedHitsPage:
        """``GET /sites/{id}/hits``: raw hits (newest first) or grouped counts.

        Dates are inclusive days in UTC (``time_zone="utc"``) or in the site's time zone
        (``"user"``); they default to the last 30 days up to today. ``browser_name`` (exact) is a
        tinytrack extension the dashboard uses; the API has the seed's three filters.
        """
        site = await self._site_info(site_id)
        days, bounds = self._range(site, start_date, end_date, time_zone)
        _check_page(page, per_page, params.MAX_PER_PAGE)
        filters = {"country": country, "path": path, "referrer": referrer}
        if browser_name is not None:
            filters["browser_name"] = browser_name
        shown = HitFilters(
            start_date=clock.day_from_number(days[0]).isoformat(),
            end_date=clock.day_from_number(days[1]).isoformat(),
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
                groups, total = await queries.grouped_from_raw_with_settled(
                    conn,
                    site,
                    dim,
                    bounds,
                    filters,
                    page,
                    per_page,
                    kept=self._settled,
                    complete_until=self._writer.blocks_complete_until,
                )
            else:
                local = time_zone == "user" and site.timezone != "UTC"
                complete_until = self._writer.blocks_complete_until
                segments = pyramid.plan(days[0], days[1], complete_until, local=local)
                groups, total = await queries.grouped_with_settled(
                    conn,
                    site,
                    dim,
                    segments,
                    local,
                    page,
                    per_page,
                    kept=self._settled,
                    complete_until=complete_until,
                )
        return GroupedHitsPage(
            grouped_hits=[
                queries.shape_group(dim, g, with_uniques=site.unique_hits) for g in groups
            ],
            pagination=queries.pagination(page, per_page, total),
            filters=shown,
        )

    # -- events ---------------------------------------------------------------------------------

    async def record_event(self, site_id: int, event: EventIn) -> EventResult:
        """Store one event. Returns ``EventCreated`` once committed, or ``Ignored`` (bot,
        ignore rule, an order id already recorded); raises ``ValidationFailed``."""
        site = await self._site_info(site_id)
        now = self.now()
        prepared = ingest.prepare_event(
            site, event, now=now, salt=await self._salt(clock.utc_day(now))
        )
        if isinstance(prepared, Ignored):
            return prepared
        (stored,) = await self._writer.insert_events([prepared])
        if stored.duplicate:
            return Ignored(status="ignored", reason=DUPLICATE_ORDER)
        return EventCreated(status="created", event=_created_event(site, prepared, stored.id))

    async def record_events(
        self, site_id: int, items: Sequence[EventIn | ValidationFailed]
    ) -> BatchResult:
        """Store many events in one transaction, partial success (like ``record_hits``)."""
        if len(items) > MAX_BATCH:
            raise ValidationFailed([f"Batch is limited to {MAX_BATCH} events"])
        site = await self._site_info(site_id)
        now = self.now()
        salt = await self._salt(clock.utc_day(now))
        results, rows, row_results = _prepare_batch(
            items, lambda item: ingest.prepare_event(site, item, now=now, salt=salt)
        )
        if rows:
            for result, stored in zip(
                row_results, await self._writer.insert_events(rows), strict=True
            ):
                if stored.duplicate:
                    result.status, result.reason = "ignored", DUPLICATE_ORDER
        return _batch_result(results)

    async def events(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        event: str | None = None,
        value: str | None = None,
        path: str | None = None,
        grouped: bool = False,
        group_by: EventGroupBy | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> EventsPage | GroupedEventsPage:
        """``GET /sites/{id}/events``: raw events (newest first) or counts grouped by event
        name, value or path; dates, time zones and pages exactly as for ``hits``."""
        site = await self._site_info(site_id)
        days, bounds = self._range(site, start_date, end_date, time_zone)
        _check_page(page, per_page, params.MAX_PER_PAGE)
        filters = {"event": event, "value": value, "path": path}
        shown = EventFilters(
            start_date=clock.day_from_number(days[0]).isoformat(),
            end_date=clock.day_from_number(days[1]).isoformat(),
            time_zone=time_zone,
            event=event,
            value=value,
            path=path,
            grouped=grouped,
        )
        async with self._read() as conn:
            if not grouped:
                rows, total = await events.raw_events(conn, site, bounds, filters, page, per_page)
                return EventsPage(
                    events=rows,
                    pagination=queries.pagination(page, per_page, total),
                    filters=shown,
                )
            dim: EventGroupBy = group_by or "event"
            shown.group_by = dim
            if any(v is not None for v in filters.values()):
                groups, total = await events.grouped_from_raw(
                    conn, site, dim, bounds, filters, page, per_page
                )
            else:
                local = time_zone == "user" and site.timezone != "UTC"
                segments = pyramid.plan(
                    days[0], days[1], self._writer.blocks_complete_until, local=local
                )
                groups, total = await events.grouped_from_rollups(
                    conn, site, dim, segments, local, page, per_page
                )
            revenue: dict[str, Any] = {}
            if dim == "event":  # revenue per currency, for the names with any (raw rows)
                names = [g[0] for g in groups]
                revenue = await goals.revenue_by_name(conn, site.id, bounds, names, filters)
        shaped = [events.shape_group(dim, g, with_uniques=site.unique_hits) for g in groups]
        for row in shaped:
            if (totals := revenue.get(row.get("event") or "")) is not None:
                row["revenue"] = msgspec.to_builtins(totals)
        return GroupedEventsPage(
            grouped_events=shaped,
            pagination=queries.pagination(page, per_page, total),
            filters=shown,
        )

    def _range(
        self,
        site: SiteInfo,
        start_date: dt.date | None,
        end_date: dt.date | None,
        time_zone: TimeZoneMode,
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """(first day, last day) and [start, end) seconds of a date range in the chosen mode;
        defaults to the 30 days before today (in that mode) up to today."""
        tz = site.timezone if time_zone == "user" else "UTC"
        end = end_date or clock.today(tz, self._clock())
        start = start_date or (end - dt.timedelta(days=30))
        params.check_range(start, end)
        days = (clock.day_number(start), clock.day_number(end))
        return days, queries.time_bounds(site, days[0], days[1], time_zone)

    # -- kudos ----------------------------------------------------------------------------------

    async def create_kudo(self, site_id: int, kudo: KudoIn) -> KudoResult:
        """Store one kudo (uid: ``custom_uid`` or a generated one). A uid already used on this
        site raises ``ValidationFailed`` ("Uid has already been taken")."""
        site = await self._site_info(site_id)
        prepared = ingest.prepare_kudo(site, kudo)
        if isinstance(prepared, Ignored):
            return prepared
        path, uid = prepared
        now = self.now()
        generated = kudo.custom_uid is None

        async def insert(conn: aiosqlite.Connection) -> Kudo:
            nonlocal uid
            for _ in range(5):
                try:
                    cur = await conn.execute(kudos.INSERT, (site.id, uid, path, now))
                except sqlite3.IntegrityError:
                    if not generated:
                        raise ValidationFailed([kudos.UID_TAKEN]) from None
                    uid = ingest.new_kudo_uid()
                    continue
                kudo_id = int(cur.lastrowid or 0)
                return Kudo(id=kudo_id, uid=uid, path=path, created_at=clock.iso(now))
            raise RuntimeError("could not allocate a unique kudo uid")

        return KudoCreated(status="created", kudo=await self._writer.run(insert))

    async def delete_kudo(self, site_id: int, uid: str) -> KudoDeleted:
        """Delete one kudo by uid; ``NotFound`` ("Kudo not found") when there is none."""
        await self._site_info(site_id)

        async def delete(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(kudos.DELETE, (site_id, uid))
            return cur.rowcount

        if await self._writer.run(delete) < 1:
            raise NotFound("Kudo not found")
        return KudoDeleted(status="deleted", uid=uid)

    async def kudos(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        path: str | None = None,
        uid: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> KudosPage:
        """``GET /sites/{id}/kudos``: kudos in a date range, newest first."""
        site = await self._site_info(site_id)
        days, bounds = self._range(site, start_date, end_date, time_zone)
        _check_page(page, per_page, params.MAX_PER_PAGE)
        async with self._read() as conn:
            rows, total = await kudos.list_kudos(
                conn, site.id, bounds, {"path": path, "uid": uid}, page, per_page
            )
        return KudosPage(
            kudos=rows,
            pagination=queries.pagination(page, per_page, total),
            filters=KudoFilters(
                start_date=clock.day_from_number(days[0]).isoformat(),
                end_date=clock.day_from_number(days[1]).isoformat(),
                time_zone=time_zone,
                path=path,
                uid=uid,
            ),
        )

    async def kudo_count(self, site_id: int, path: str) -> int:
        """All-time kudos of one path (what a kudos button shows)."""
        await self._site_info(site_id)
        async with self._read() as conn:
            return await kudos.count_for_path(conn, site_id, enrich.normalize_path(path)[0])

    # -- the dashboard ----------------------------------------------------------------------------

    async def set_owner_password(self, password: str) -> None:
        """Set the dashboard password (stored as a scrypt hash). It also replaces the secret that
        signs session cookies, so every existing session ends."""
        if len(password) < owner.MIN_LENGTH:
            raise InvalidParameter(f"password must have at least {owner.MIN_LENGTH} characters")
        hashed = await asyncio.to_thread(owner.hash_password, password)
        secret = secrets.token_hex(32)

        async def store(conn: aiosqlite.Connection) -> None:
            await conn.execute(owner.PUT, (owner.PASSWORD_KEY, hashed))
            await conn.execute(owner.PUT, (owner.SECRET_KEY, secret))

        await self._writer.run(store)

    async def has_owner_password(self) -> bool:
        async with self._read() as conn:
            return await owner.get(conn, owner.PASSWORD_KEY) is not None

    async def check_owner_password(self, password: str) -> bool:
        """True if ``password`` is the dashboard password (a slow check, off the event loop)."""
        async with self._read() as conn:
            stored = await owner.get(conn, owner.PASSWORD_KEY)
        if stored is None:
            return False
        return await asyncio.to_thread(owner.verify_password, password, stored)

    async def session_secret(self) -> bytes | None:
        """The key that signs dashboard sessions (None until a password is set)."""
        async with self._read() as conn:
            value = await owner.get(conn, owner.SECRET_KEY)
        return bytes.fromhex(value) if value else None

    async def traffic(
        self,
        site_id: int,
        *,
        period: Period = "30d",
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        path: str | None = None,
        country: str | None = None,
        referrer: str | None = None,
        browser_name: str | None = None,
    ) -> Traffic:
        """Hits and unique hits over time in the site's time zone, with the previous period of
        the same length for comparison: the last 24 hours by hour, 7 or 30 days by day, 12
        months by month, or ``custom`` dates (by day up to 92 days, else by month)."""
        site = await self._site_info(site_id)
        now = self.now()
        tz = site.timezone
        today = clock.today(tz, now)
        bucket: traffic.Bucket = "day"
        if period == "24h":
            end = (now // 3600 + 1) * 3600
            start, previous = end - 86400, end - 2 * 86400
            bucket = "hour"
        else:
            if period == "custom":
                if start_date is None or end_date is None:
                    raise InvalidParameter("a custom period needs a start and an end date")
                first, last = start_date, end_date
                params.check_range(first, last)
            elif period == "12m":
                first = (today.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
                last = today
            else:
                days = {"7d": 7, "30d": 30}.get(period)
                if days is None:
                    raise InvalidParameter("period must be 24h, 7d, 30d, 12m or custom")
                first, last = today - dt.timedelta(days=days - 1), today
            if period == "12m" or (last - first).days > 92:
                bucket = "month"
            a, b = clock.day_number(first), clock.day_number(last)
            start, end = clock.local_midnight(tz, a), clock.local_midnight(tz, b + 1)
            previous = clock.local_midnight(tz, a - (b - a + 1))
        filters = {
            "path": path,
            "country": country,
            "referrer": referrer,
            "browser_name": browser_name,
        }
        async with self._read() as conn:
            points = await traffic.series(conn, site, start, end, bucket, filters)
            before = await traffic.series(conn, site, previous, start, bucket, filters)
        return Traffic(
            period=period,
            bucket=bucket,
            start=clock.iso(start),
            end=clock.iso(end),
            points=[TrafficPoint(label=n, hits=h, unique_hits=u) for n, h, u in points],
            hits=sum(p[1] for p in points),
            unique_hits=sum(p[2] for p in points),
            previous_hits=sum(p[1] for p in before),
            previous_unique_hits=sum(p[2] for p in before),
        )

    async def last_hit_at(self, site_id: int) -> str | None:
        """When the site's latest hit arrived (ISO 8601 UTC), or None."""
        await self._site_info(site_id)
        async with self._read() as conn:
            moment = await traffic.last_hit(conn, site_id)
        return clock.iso(moment) if moment is not None else None

    async def kudos_by_path(
        self, site_id: int, *, start_date: dt.date, end_date: dt.date, limit: int = 10
    ) -> list[tuple[str, int]]:
        """Most-kudoed paths in a date range of the site's time zone."""
        site = await self._site_info(site_id)
        _days, bounds = self._range(site, start_date, end_date, "user")
        async with self._read() as conn:
            return await traffic.kudos_by_path(conn, site.id, bounds[0], bounds[1], limit)

    # -- your data: export, import, delete, backup ------------------------------------------------

    def _export_bounds(
        self,
        site: SiteInfo,
        start_date: dt.date | None,
        end_date: dt.date | None,
        time_zone: TimeZoneMode,
    ) -> tuple[int, int]:
        """[start, end) seconds: without a start from the first row, without an end to the
        last; dates in the site's time zone with ``time_zone="user"``."""
        return csv_export.bounds(site.timezone, start_date, end_date, time_zone)

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(raw connection)`` on a reader's thread: one short read transaction."""
        async with self._read() as conn:
            return await db.on_connection_thread(conn, fn)

    async def _export(
        self,
        site_id: int,
        kind: ExportKind,
        start_date: dt.date | None,
        end_date: dt.date | None,
        time_zone: TimeZoneMode,
    ) -> csv_export.Export:
        """Check the arguments (``NotFound``, ``InvalidParameter``) and fix the snapshot."""
        if kind not in csv_export.COLUMNS:
            raise InvalidParameter("kind must be hits, events, kudos or visitors")
        site = await self._site_info(site_id)
        bounds = self._export_bounds(site, start_date, end_date, time_zone)
        return await self._on_reader(
            functools.partial(csv_export.begin, site_id=site.id, kind=kind, bounds=bounds)
        )

    async def export_csv(
        self,
        site_id: int,
        kind: ExportKind = "hits",
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
    ) -> AsyncIterator[bytes]:
        """CSV of a site's hits, events, kudos or visitor properties (RFC 4180, UTF-8, header
        row, UTC times; the columns are in the README), as chunks of bytes, oldest first (visitor
        properties: by visitor hash and key): the rows recorded before
        this call. Without dates: the whole history; ``time_zone="user"`` reads the dates in
        the site's time zone. Streams in constant memory; each chunk is its own short read.
        Unknown site or bad arguments raise here, before the first chunk."""
        export = await self._export(site_id, kind, start_date, end_date, time_zone)
        return _chunk_bytes(self._export_chunks(export))

    async def _export_chunks(self, export: csv_export.Export) -> AsyncIterator[tuple[bytes, int]]:
        """(bytes, rows) chunks, read on a connection of the export's own whose thread runs at
        a low CPU priority: a big export uses the CPU that live traffic leaves, and never
        holds the readers that answer queries. The next chunk is read while one is sent."""
        yield csv_export.header(export.kind), 0
        conn = None if db.is_memory(self.path) else await db.connect_reader(self.path)
        run: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
        if conn is None:  # :memory: has one connection, shared under the writer's lock
            run = self._on_reader
        else:
            run = functools.partial(db.on_connection_thread, conn)
            await run(csv_export.prepare_connection)

        loop = asyncio.get_running_loop()
        writer = self._writer
        Next = asyncio.Future[tuple[csv_export.Chunk, float]]

        async def chunk(after: tuple[int, int], pause: float) -> tuple[csv_export.Chunk, float]:
            """The chunk after ``after`` and the pause to make before the next one."""
            if pause:
                await asyncio.sleep(pause)
            if self._closed:
                raise EngineClosed("engine is closed")
            started, committed = loop.time(), writer.rows_committed
            result: csv_export.Chunk = await run(functools.partial(export.chunk, after))
            spent = loop.time() - started
            return result, csv_export.pause_after(spent, writer.rows_committed - committed)

        def read(after: tuple[int, int], pause: float = 0.0) -> Next:
            return asyncio.ensure_future(chunk(after, pause))

        pending: Next | None = read(export.start)
        try:
            while pending is not None:
                (data, after, rows, more), pause = await pending
                pending = read(after, pause) if more else None
                if rows:
                    yield data, rows
        finally:
            if pending is not None:  # the consumer stopped early (a client went away)
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            if conn is not None:
                await conn.close()

    async def export_rows(
        self,
        site_id: int,
        kind: ExportKind = "hits",
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
    ) -> AsyncIterator[dict[str, str]]:
        """The rows of ``export_csv`` as dicts of column -> cell text, exactly as in the file
        (formula guards kept, empty text for none)."""
        chunks = await self.export_csv(
            site_id, kind, start_date=start_date, end_date=end_date, time_zone=time_zone
        )
        return csv_export.dicts(chunks)

    async def export_to_file(
        self,
        site_id: int,
        path: str | Path,
        kind: ExportKind = "hits",
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Write ``export_csv`` to ``path`` (through ``<path>.partial``, renamed when complete,
        so a failed export leaves no half file); returns the number of data rows.
        ``progress(rows_done, rows_total)`` is called after each chunk."""
        export = await self._export(site_id, kind, start_date, end_date, time_zone)
        total = await self._on_reader(export.count) if progress is not None else 0
        return await csv_export.write_file(self._export_chunks(export), Path(path), total, progress)

    async def count_rows(
        self,
        site_id: int,
        kind: ExportKind = "hits",
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
    ) -> int:
        """How many data rows ``export_csv`` with these arguments would write now."""
        export = await self._export(site_id, kind, start_date, end_date, time_zone)
        return await self._on_reader(export.count)

    async def import_csv(
        self, site_id: int, path: str | Path, *, progress: Callable[[int, int], None] | None = None
    ) -> ImportReport:
        """Import a tinytrack CSV export into a site (rules in ``csv_import`` and the README):
        the whole file is checked first (a malformed file raises ``InvalidParameter`` and
        changes nothing), then rows go through the writer in batches, skipping the ones already
        stored and reporting bad ones with their line numbers. Running it again is safe.
        ``progress(rows_done, rows_total)`` is called after each batch."""
        site = await self._site_info(site_id)
        now = self.now()
        rules = csv_import.Rules(
            site=site, now=now, ua_cutoff=now - self._ua_retention_days * clock.SECONDS_PER_DAY
        )
        return await csv_import.import_file(
            Path(path),
            rules,
            read_db=self._on_reader,
            store=self._store_imported,
            progress=progress,
        )

    async def _store_imported(self, kind: str, rows: list[Any], uniques: list[int]) -> list[bool]:
        """Store one batch of imported rows through the writer; True where a row was stored."""
        if kind == "hits":
            await self._writer.insert_hits(rows, uniques=uniques)
            return [True] * len(rows)
        if kind == "events":
            stored = await self._writer.insert_events(rows, uniques=uniques)
            return [not s.duplicate for s in stored]

        async def insert(conn: aiosqlite.Connection) -> list[bool]:
            insert_rows = csv_import.INSERTERS[kind]
            return await db.on_connection_thread(conn, lambda raw: insert_rows(raw, rows))

        return await self._writer.run(insert)

    async def delete_site(self, site_id: int) -> dict[str, int]:
        """Delete a site and everything recorded for it (hits, events, kudos, rollups, journeys
        and every other table with a ``site_id``) in one transaction; returns the rows deleted
        per table. Its id is never given to another site."""
        await self._site_info(site_id)

        async def delete(conn: aiosqlite.Connection) -> dict[str, int]:
            return await db.on_connection_thread(
                conn, functools.partial(deletion.delete_site, site_id=site_id)
            )

        deleted = await self._writer.run(delete)
        self._sites.pop(site_id, None)
        self._uids.clear()
        self._names.clear()
        return deleted

    async def backup(self, path: str | Path) -> int:
        """A consistent copy of the live database in a new file (``VACUUM INTO`` on a
        connection of its own: one snapshot, while writes go on); returns its size in bytes.
        The copy is written to ``<path>.partial`` and renamed when complete."""
        if db.is_memory(self.path):
            raise InvalidParameter("an in-memory database cannot be backed up to a file")
        if self._closed:
            raise EngineClosed("engine is closed")
        return await asyncio.to_thread(backup.vacuum_into, self.path, Path(path))

    # -- operations -----------------------------------------------------------------------------

    async def health(self, *, within: float = 5.0) -> Health:
        """Is the database writable? One tiny write through the writer, committed like any
        other, so a read-only or full disk, a lost file lock and a stuck writer all show;
        bounded by ``within`` seconds."""
        from tinytrack import __version__

        now = str(self.now())

        async def touch(conn: aiosqlite.Connection) -> None:
            await conn.execute(db.TOUCH_HEALTH, (now,))

        problem: str | None = None
        try:
            await asyncio.wait_for(self._writer.run(touch), within)
        except TimeoutError:
            problem = f"the database did not take a write within {within:g} s"
        except sqlite3.Error as exc:
            problem = f"the database cannot be written: {exc}"
        except TinytrackError as exc:
            problem = exc.message
        if problem is None:
            return Health(status="ok", database="writable", version=__version__)
        return Health(status="error", database="not writable", version=__version__, error=problem)

    # -- browser side: the embed script's collector, the pixel, widgets -------------------------

    async def site_id_for_uid(self, uid: str) -> int:
        """The numeric id of the site with this uid (the code in embed and pixel URLs);
        ``NotFound`` otherwise. Cached like site details."""
        cached = self._uids.get(uid)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            site_id = cached[1]
        else:
            async with (
                self._read(rollups=False) as conn,
                conn.execute(sites.SELECT_ID_BY_UID, (uid,)) as cur,
            ):
                row = await cur.fetchone()
            site_id = int(row[0]) if row else None
            if len(self._uids) >= 10_000:  # uids are caller-chosen: keep the cache bounded
                self._uids.clear()
            self._uids[uid] = (now + CACHE_SECONDS, site_id)
        if site_id is None:
            raise NotFound("Site not found")
        return site_id

    async def _site_by_uid(self, uid: str) -> SiteInfo:
        return await self._site_info(await self.site_id_for_uid(uid))

    async def collect_hit(
        self,
        site_uid: str,
        view: PageViewIn,
        *,
        user_agent: str | None,
        ip_address: str | None,
        origin: str | None,
    ) -> HitResult:
        """A page view from the embed script. Accepted only for an active site whose domain
        (or its ``www.`` twin) is the page's and the browser's ``Origin`` (``NotAllowed``
        otherwise); the page URL keeps only campaign parameters and the referrer loses its
        query. Then exactly like ``record_hit``."""
        site = await self._site_by_uid(site_uid)
        collect.check_page(site, view.url, origin)
        path = view.path or (enrich.normalize_path(view.url)[0] if view.url else None)
        hit = HitIn(
            path=path,
            url=collect.page_url(view.url),
            referrer=collect.referrer_url(view.referrer),
            user_agent=user_agent,
            ip_address=ip_address,
        )
        return await self._record_hit(site, hit)

    async def collect_event(
        self,
        site_uid: str,
        event: BeaconEventIn,
        *,
        user_agent: str | None,
        ip_address: str | None,
        origin: str | None,
    ) -> EventResult:
        """An event from the embed script (a clicked ``data-tinylytics-event`` element), with
        the page checks of ``collect_hit``; then exactly like ``record_event``."""
        site = await self._site_by_uid(site_uid)
        collect.check_page(site, event.url, origin)
        name = event.event.replace("->", ".") if event.event else event.event
        return await self.record_event(
            site.id,
            EventIn(
                event=name,
                value=event.value,
                path=event.path,
                url=collect.page_url(event.url),
                user_agent=user_agent,
                ip_address=ip_address,
            ),
        )

    async def collect_kudo(
        self, site_uid: str, kudo: BeaconKudoIn, *, origin: str | None
    ) -> KudoGiven | Ignored:
        """A kudos button press, with the page checks of ``collect_hit``: stores a kudo with a
        generated uid and answers it with the path's new count."""
        site = await self._site_by_uid(site_uid)
        collect.check_page(site, kudo.url, origin)
        result = await self.create_kudo(site.id, KudoIn(path=kudo.path))
        if isinstance(result, Ignored):
            return result
        path = result.kudo.path
        async with self._read() as conn:
            count = await kudos.count_for_path(conn, site.id, path)
        return KudoGiven(uid=result.kudo.uid, path=path, count=count)

    async def record_pixel(
        self,
        site_uid: str,
        *,
        path: str | None,
        user_agent: str | None,
        ip_address: str | None,
        referrer: str | None = None,
    ) -> HitResult:
        """A tracking-pixel view (RSS feeds, e-mail): no page domain to check. The source is
        ``rss`` or ``email`` when the user agent is a known feed reader or mail client (whose
        name becomes the browser, and which is not filtered as a bot), else ``pixel``."""
        site = await self._site_by_uid(site_uid)
        reader = collect.feed_reader(user_agent)
        hit = HitIn(
            path=path if path and path.strip() else "/",
            referrer=collect.referrer_url(referrer),
            user_agent=user_agent,
            ip_address=ip_address,
            source=reader.source if reader else "pixel",
        )
        return await self._record_hit(site, hit, reader.name if reader else None)

    def _paths(self, paths: Sequence[str]) -> list[str]:
        if len(paths) > widgets.MAX_PATHS:
            raise InvalidParameter(f"At most {widgets.MAX_PATHS} paths per request")
        return list(dict.fromkeys(enrich.normalize_path(p)[0] for p in paths))

    async def widget_hits(
        self, site_uid: str, paths: Sequence[str] = (), *, unique: bool = False
    ) -> WidgetHits:
        """The hit counter: lifetime hits of the site and of each given path (unique hits when
        ``unique`` and the site tracks them)."""
        site = await self._site_by_uid(site_uid)
        wanted = self._paths(paths)
        unique = unique and site.unique_hits
        today = clock.utc_day(self._clock())
        async with self._read() as conn:
            hits, uniques = await widgets.site_totals(conn, site.id)
            counts = (
                await widgets.path_counts(
                    conn, site, wanted, today, self._writer.blocks_complete_until
                )
                if wanted
                else {}
            )
        pick = 1 if unique else 0
        return WidgetHits(
            unique=unique,
            hits=uniques if unique else hits,
            paths={p: counts[p][pick] if p in counts else 0 for p in wanted},
        )

    async def widget_kudos(self, site_uid: str, paths: Sequence[str]) -> WidgetKudos:
        """Kudos counts of the given paths (what the kudos buttons show)."""
        site = await self._site_by_uid(site_uid)
        wanted = self._paths(paths)
        if not wanted:
            return WidgetKudos(kudos={})
        async with self._read() as conn:
            counts = await widgets.kudos_counts(conn, site.id, wanted)
        return WidgetKudos(kudos={p: counts.get(p, 0) for p in wanted})

    async def widget_countries(self, site_uid: str) -> WidgetCountries:
        """Every country that has visited, as alphabetical ISO codes."""
        site = await self._site_by_uid(site_uid)
        today = clock.utc_day(self._clock())
        async with self._read() as conn:
            codes = await widgets.countries(conn, site, today, self._writer.blocks_complete_until)
        return WidgetCountries(countries=codes)

    # -- leaderboard ----------------------------------------------------------------------------

    async def leaderboard(
        self, site_id: int, *, path: str | None = None, page: int = 1, per_page: int = 100
    ) -> LeaderboardPage:
        """All-time paths by hits, with unique hits and the share of all the site's hits.

        Read on every call from the all-time path totals (``pyramid.ALL_TIME``), which every
        read first brings up to date (the fold, fold.py): never stale, so nothing is cached."""
        site = await self._site_info(site_id)
        _check_page(page, per_page, params.MAX_PER_PAGE)
        async with self._read() as conn:
            first, total = await leaderboard.span_and_total(conn, site.id)
            groups: list[queries.GroupRow] = []
            count = 0
            if first is not None:
                segments = [(pyramid.ALL_TIME, 0, 0)]  # all-time rows the writer keeps
                groups, count = await queries.grouped_from_rollups(
                    conn, site, "path", segments, False, page, per_page, value_like=path
                )
        now = clock.iso(self.now())
        return LeaderboardPage(
            leaderboard=[leaderboard.row(g, total) for g in groups],
            site=SiteRef(id=site.id, uid=site.uid, url=site.url, label=site.label),
            pagination=queries.pagination(page, per_page, count),
            cache_info=CacheInfo(
                cached_at=now, expires_at=now, always_fresh=True, computed_from="rollups"
            ),
            filters=LeaderboardFilters(path=path),
        )

    # -- user journeys --------------------------------------------------------------------------

    async def user_journeys(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        page: int = 1,
        per_page: int = params.MAX_JOURNEYS_PER_PAGE,
    ) -> UserJourneysPage:
        """``GET /sites/{id}/user_journeys``: each visitor's pages per UTC day (a journey),
        newest first, with summary and top entry / exit pages. A journey is in the date range
        (dates and time zones as for ``hits``) when its first hit is; see ``journeys``."""
        site = await self._site_info(site_id)
        if time_zone not in ("utc", "user"):
            raise InvalidParameter("time_zone must be 'utc' or 'user'")
        days, bounds = self._range(site, start_date, end_date, time_zone)
        _check_page(page, per_page, params.MAX_JOURNEYS_PER_PAGE)
        shown = JourneyFilters(
            start_date=clock.day_from_number(days[0]).isoformat(),
            end_date=clock.day_from_number(days[1]).isoformat(),
            time_zone=time_zone,
        )
        async with self._read() as conn:
            return await journeys.user_journeys_page(
                conn,
                site.id,
                days=days,
                bounds=bounds,
                local=time_zone == "user",
                page=page,
                per_page=per_page,
                filters=shown,
                raw_days=self._raw_days,
            )

    # -- other tools' formats: sessions, goals, visitor properties, site names -------------------

    async def track(self, site_id: int, item: TrackIn) -> Tracked:
        """One visitor action as another tool's format says it (``TrackIn``; see ``tracking``):
        a page view, event, goal completion, visitor / session properties or a session ping,
        with sessions and once-per-session goals. ``ValidationFailed`` or ``NotFound`` (an
        unknown session or goal number) are raised before anything is written."""
        site = await self._site_info(site_id)
        now = self.now()
        salt = await self._salt(clock.utc_day(now))
        return await tracking.track(self._writer, site, item, now=now, salt=salt)

    async def track_many(
        self, site_id: int, items: Sequence[TrackIn], *, atomic: bool = False
    ) -> list[Tracked | ValidationFailed]:
        """Many page views / events without sessions or properties, stored together: each
        invalid item is its ``ValidationFailed`` in the answer (with ``atomic``: raised, and
        nothing stored). At most 1000 items."""
        if len(items) > MAX_BATCH:
            raise ValidationFailed([f"Batch is limited to {MAX_BATCH} items"])
        site = await self._site_info(site_id)
        now = self.now()
        salt = await self._salt(clock.utc_day(now))
        return await tracking.track_many(
            self._writer, site, list(items), now=now, salt=salt, atomic=atomic
        )

    async def create_goal(self, site_id: int, name: str, *, goal_id: int | None = None) -> Goal:
        """Define a goal (``goal_id``: keep the number existing code sends; default: the next
        free one). A name already used, or an id already taken, raises ``InvalidParameter``."""
        await self._site_info(site_id)
        now = self.now()

        async def insert(conn: aiosqlite.Connection) -> int:
            made = await db.on_connection_thread(
                conn, lambda raw: goals.create(raw, site_id, name, goal_id, now)
            )
            return made[0]

        made_id = await self._writer.run(insert)
        return next(g for g in (await self.goals(site_id)).goals if g.id == made_id)

    async def goals(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
    ) -> GoalsPage:
        """Every goal with its completions and revenue (per currency); without dates over the
        whole history, else in those days (as for ``hits``)."""
        site = await self._site_info(site_id)
        bounds = self._export_bounds(site, start_date, end_date, time_zone)
        async with self._read() as conn:
            return GoalsPage(goals=await goals.list_goals(conn, site.id, bounds))

    async def sessions(
        self,
        site_id: int,
        *,
        start_date: dt.date | None = None,
        end_date: dt.date | None = None,
        time_zone: TimeZoneMode = "utc",
        visitor_hash: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> SessionsPage:
        """Sessions that started in a date range (as for ``hits``), newest first, with their
        ids, properties and visitors' properties; optionally one visitor's only."""
        site = await self._site_info(site_id)
        days, bounds = self._range(site, start_date, end_date, time_zone)
        _check_page(page, per_page, params.MAX_PER_PAGE)
        now = self.now()
        async with self._read() as conn:
            rows, total = await db.on_connection_thread(
                conn,
                lambda raw: sessions.list_sessions(
                    raw, site.id, bounds, visitor_hash, page, per_page, now
                ),
            )
        return SessionsPage(
            sessions=rows,
            pagination=queries.pagination(page, per_page, total),
            filters=SessionFilters(
                start_date=clock.day_from_number(days[0]).isoformat(),
                end_date=clock.day_from_number(days[1]).isoformat(),
                time_zone=time_zone,
                visitor_hash=visitor_hash,
            ),
        )

    async def visitor_properties(self, site_id: int, visitor_hash: str) -> dict[str, Any]:
        """The properties other tools' formats set on a visitor (by its ``visitor_hash``)."""
        await self._site_info(site_id)
        async with self._read() as conn:
            return await visitors.fetch_properties(conn, site_id, visitor_hash)

    async def find_site(self, name: str) -> int:
        """The id of the site another tool's format names (alias, id, uid or domain: see
        ``site_names``); ``NotFound`` otherwise. Cached like site details."""
        cached = self._names.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            site_id = cached[1]
        else:
            async with self._read() as conn:
                site_id = await site_names.find(conn, name)
            if len(self._names) >= 10_000:  # names are caller-chosen: keep the cache bounded
                self._names.clear()
            self._names[name] = (now + CACHE_SECONDS, site_id)
        if site_id is None:
            raise NotFound("Site not found")
        return site_id

    async def site_aliases(self, site_id: int) -> list[str]:
        await self._site_info(site_id)
        async with self._read() as conn, conn.execute(site_names.ALIASES_OF, (site_id,)) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    async def add_site_alias(self, site_id: int, name: str) -> list[str]:
        """Let other tools' formats name this site ``name`` too (e.g. the site id or project
        existing tracking code sends); an alias names one site only."""
        await self._site_info(site_id)
        alias = site_names.check_alias(name)
        now = self.now()

        async def insert(conn: aiosqlite.Connection) -> None:
            try:
                await conn.execute(site_names.INSERT_ALIAS, (alias, site_id, now))
            except sqlite3.IntegrityError:
                raise InvalidParameter(f"alias {alias!r} is already used") from None

        await self._writer.run(insert)
        self._names.clear()
        return await self.site_aliases(site_id)

    async def remove_site_alias(self, site_id: int, name: str) -> list[str]:
        await self._site_info(site_id)
        alias = name.strip()

        async def delete(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(site_names.DELETE_ALIAS, (alias, site_id))
            return cur.rowcount

        if await self._writer.run(delete) < 1:
            raise NotFound("Alias not found")
        self._names.clear()
        return await self.site_aliases(site_id)

    async def secure_tracking(self, site_id: int) -> bool:
        """Whether the public server-side tracking endpoint (Woopra's format) needs a
        full-access key for this site."""
        await self._site_info(site_id)
        async with (
            self._read() as conn,
            conn.execute(site_names.SECURE_TRACKING, (site_id,)) as cur,
        ):
            row = await cur.fetchone()
        return bool(row and row[0])

    async def set_secure_tracking(self, site_id: int, on: bool) -> None:
        await self._site_info(site_id)
        now = self.now()

        async def update(conn: aiosqlite.Connection) -> None:
            await conn.execute(site_names.SET_SECURE_TRACKING, (int(on), now, site_id))

        await self._writer.run(update)

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
            for table in ("hits", "events"):  # identifiers from this fixed list only
                for site_id in site_ids:
                    cur = await conn.execute(
                        f"UPDATE {table} SET user_agent = NULL WHERE site_id = ? "
                        "AND created_at >= ? AND created_at < ? AND user_agent IS NOT NULL",
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
        codes = rollups.ALL_CODES
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

    async def build_journeys(self) -> int:
        """Build the user journeys of every finished UTC day not built yet (see ``journeys``);
        returns how many (site, day) pairs were built. Runs hourly in the background."""
        today = clock.utc_day(self._clock())
        async with self._read() as conn:
            todo = await journeys.days_to_build(conn, today)
        # One transaction per site and day: ingestion waits at most one day's build.
        for site_id, tz, day in todo:

            async def build(
                conn: aiosqlite.Connection, site_id: int = site_id, tz: str = tz, day: int = day
            ) -> int:
                return await journeys.build_day(conn, site_id, tz, day)

            def advance(day: int = day) -> None:
                self._writer.journeys_built_until = max(self._writer.journeys_built_until, day + 1)

            await self._writer.run(build, after_commit=advance)
        return len(todo)

    async def warm_journeys(self) -> int:
        """Group today's journeys of the busiest sites ahead of queries (runs hourly), so the
        first journeys query of an hour reads at most that hour's hits; returns how many sites."""
        today = clock.utc_day(self._clock())
        async with self._read() as conn:
            return await db.on_connection_thread(
                conn, lambda raw: journeys.warm(raw, self._raw_days, today)
            )

    async def warm_grouped(self) -> int:
        """Group the settled part of the ranges asked for most (the API's default 30 days in
        UTC; the dashboard's 30 days and 12 months in the site's zone), every ``group_by``, for
        the busiest sites, so the first query after the watermark moves (daily) finds them kept
        (see ``settled``). Runs hourly; kept totals are reused, so only new ranges cost. Stops
        at half the memory budget. Returns how many totals were built."""
        now = self._clock()
        async with (
            self._read() as conn,
            conn.execute(journeys.BUSY_SITES, (clock.utc_day(now) - 1, journeys.WARM_SITES)) as cur,
        ):
            site_ids = [int(row[0]) for row in await cur.fetchall()]
        before = self._settled.builds
        for site_id in site_ids:
            try:
                site = await self._site_info(site_id)
            except NotFound:
                continue
            utc_today = clock.today("UTC", now)
            local_today = clock.today(site.timezone, now)
            ranges: list[tuple[dt.date, dt.date, TimeZoneMode]] = [
                (utc_today - dt.timedelta(days=30), utc_today, "utc"),
                (clock.period_start("30d", local_today), local_today, "user"),
                (clock.period_start("12m", local_today), local_today, "user"),
            ]
            for start, end, mode in ranges:
                for dim in GROUP_BY_VALUES:
                    if self._settled.size >= self._settled.budget // 2:
                        return self._settled.builds - before
                    await self.hits(
                        site_id, start_date=start, end_date=end, time_zone=mode,
                        grouped=True, group_by=dim, per_page=1,
                    )  # fmt: skip
        return self._settled.builds - before

    async def _maintain(self) -> None:
        while True:
            tasks = (
                self.purge_user_agents,
                self.compact_rollups,
                self.build_journeys,
                self.warm_journeys,
                self.warm_grouped,
            )
            for task in tasks:
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


def _check_page(page: int, per_page: int, maximum: int) -> None:
    if page < 1 or not 1 <= per_page <= maximum:
        raise InvalidParameter(f"page must be >= 1 and per_page between 1 and {maximum}")


In = TypeVar("In")
Row = TypeVar("Row")


def _prepare_batch(
    items: Sequence[In | ValidationFailed], prepare: Callable[[In], Row | Ignored]
) -> tuple[list[BatchRowResult], list[Row], list[BatchRowResult]]:
    """Partial success: every item becomes an error, an ignored row or a row to store.
    Returns (all results in order, the rows to store, the results of those rows)."""
    results: list[BatchRowResult] = []
    rows: list[Row] = []
    created: list[BatchRowResult] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, ValidationFailed):
                raise item
            prepared = prepare(item)
        except ValidationFailed as exc:
            results.append(BatchRowResult(index=index, status="error", errors=exc.errors))
            continue
        if isinstance(prepared, Ignored):
            results.append(BatchRowResult(index=index, status="ignored", reason=prepared.reason))
            continue
        rows.append(prepared)
        created.append(BatchRowResult(index=index, status="created"))
        results.append(created[-1])
    return results, rows, created


def _batch_result(results: list[BatchRowResult]) -> BatchResult:
    counts = {"created": 0, "ignored": 0, "error": 0}
    for result in results:
        counts[result.status] += 1
    return BatchResult(
        created_count=counts["created"],
        ignored_count=counts["ignored"],
        error_count=counts["error"],
        results=results,
    )


def _created_event(site: SiteInfo, row: EventRow, event_id: int) -> CreatedEvent:
    return CreatedEvent(
        id=event_id,
        event=row.name,
        value=row.value,
        url=events.event_url(site, row.url, row.path),
        path=row.path,
        referrer=row.referrer,
        country=row.country,
        source=row.source,
        unique_hash=row.unique_hash,
        visitor_hash=row.visitor_hash,
        created_at=clock.iso(row.created_at),
    )


def _decode(raw: bytes | msgspec.Raw, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([str(exc)]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([f"Malformed JSON: {exc}"]) from None


def decode_hit(raw: bytes | msgspec.Raw) -> HitIn:
    """Decode one JSON hit object; malformed input raises ``ValidationFailed``."""
    return _decode(raw, HitIn)


def decode_event(raw: bytes | msgspec.Raw) -> EventIn:
    """Decode one JSON event object; malformed input raises ``ValidationFailed``."""
    return _decode(raw, EventIn)


def decode_kudo(raw: bytes | msgspec.Raw) -> KudoIn:
    """Decode one JSON kudo object; malformed input raises ``ValidationFailed``."""
    return _decode(raw, KudoIn)


def _decode_batch(raw: bytes, kind: type[T], noun: str) -> list[T | ValidationFailed]:
    """Decode a top-level JSON array; each element is decoded on its own so one bad row only
    fails itself."""
    try:
        items = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise ValidationFailed(["Body must be a top-level JSON array"]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([f"Malformed JSON: {exc}"]) from None
    if len(items) > MAX_BATCH:
        raise ValidationFailed([f"Batch is limited to {MAX_BATCH} {noun}"])
    out: list[T | ValidationFailed] = []
    for item in items:
        try:
            out.append(_decode(item, kind))
        except ValidationFailed as exc:
            out.append(exc)
    return out


def decode_hit_batch(raw: bytes) -> list[HitIn | ValidationFailed]:
    """Decode a top-level JSON array of hits (see ``_decode_batch``)."""
    return _decode_batch(raw, HitIn, "hits")


def decode_event_batch(raw: bytes) -> list[EventIn | ValidationFailed]:
    """Decode a top-level JSON array of events (see ``_decode_batch``)."""
    return _decode_batch(raw, EventIn, "events")


async def _chunk_bytes(chunks: AsyncIterator[tuple[bytes, int]]) -> AsyncIterator[bytes]:
    # aclosing: a consumer that stops early closes the export's connection and prefetch now,
    # not whenever the garbage collector gets to it (maybe after the event loop is gone).
    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
        async for data, _rows in chunks:
            yield data
