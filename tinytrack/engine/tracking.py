"""``Engine.track``: one visitor action in the native model, for the other tools' formats.

Order of work, so that a rejected request writes nothing: everything is validated and the row
is prepared first (pure: ``ingest``); then ONE writer job resolves the session (by id, or the
visitor's session covering the action's time, or a new one), the goal (created when named for
the first time) and writes visitor / session properties; then the hit or event goes through the
writer like any other (and into the rollups like any other). A repeated goal completion is not
stored twice: its order id is per goal and session, and revenue sent later is added to the
completion if it had none.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import aiosqlite

from tinytrack.engine import db, enrich, goals, ingest, privacy, sessions, visitors
from tinytrack.engine.ingest import SiteInfo
from tinytrack.engine.writer import EventRow, HitRow, Writer
from tinytrack.errors import InvalidParameter, NotFound, ValidationFailed
from tinytrack.models import EventIn, HitIn, Ignored, Tracked, TrackIn

SESSION_NOT_FOUND = "Session not found"
NO_OPEN_SESSION = "No open session for this visitor"
GOAL_BLANK = "Goal can't be blank"


@dataclass(slots=True)
class _Step:
    """What the session / goal / properties job decided."""

    session: sessions.Session | None = None
    first: bool = False
    goal: tuple[int, str] | None = None


def _hit(item: TrackIn, *, referrer: bool = True) -> HitIn:
    return HitIn(
        path=item.path,
        url=item.url,
        referrer=item.referrer if referrer else None,
        user_agent=item.user_agent,
        visitor_id=item.visitor_id,
        ip_address=item.ip_address,
        country=item.country,
        source=item.source,
    )


def _event(
    item: TrackIn,
    *,
    referrer: bool = True,
    name: str | None = None,
    order_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> EventIn:
    properties = item.properties
    if extra:
        properties = {**(properties or {}), **extra}
    return EventIn(
        event=name or item.event,
        value=item.value,
        path=item.path,
        url=item.url,
        referrer=item.referrer if referrer else None,
        user_agent=item.user_agent,
        visitor_id=item.visitor_id,
        ip_address=item.ip_address,
        country=item.country,
        source=item.source,
        properties=properties,
        revenue=item.revenue,
        currency=item.currency,
        order_id=order_id or item.order_id,
    )


def _prepare(
    site: SiteInfo, item: TrackIn, at: int, salt: bytes, **options: Any
) -> HitRow | EventRow | Ignored | None:
    if item.kind == "pageview":
        return ingest.prepare_hit(site, _hit(item, **options), now=at, salt=salt)
    if item.kind in ("event", "goal"):
        if item.kind == "goal" and "name" not in options:
            options["name"] = "goal.check"  # validates everything but the (later) goal name
        return ingest.prepare_event(site, _event(item, **options), now=at, salt=salt)
    return None


def _visitor_hash(site: SiteInfo, item: TrackIn, salt: bytes) -> str:
    """As ``ingest`` computes it: a caller's visitor id with the site's secret, else the request
    identity with the day's salt."""
    if item.visitor_id and item.visitor_id.strip():
        return privacy.stable_visitor_hash(site.secret, site.id, "v:" + item.visitor_id.strip())
    ua = item.user_agent.strip() if item.user_agent else None
    return privacy.visitor_hash(salt, site.id, privacy.identity(item.ip_address, ua))


def validate(item: TrackIn) -> None:
    """What ``ingest`` does not check itself: the goal, and the country of a visit or ping."""
    if item.kind == "goal":
        spec = (item.goal or "").strip()
        if not spec:
            raise ValidationFailed([GOAL_BLANK])
        if not goals.is_number(spec):
            try:
                goals.check_name(spec)
            except InvalidParameter as exc:
                raise ValidationFailed([exc.message]) from None
    if item.country is not None and not enrich.valid_country(item.country):
        raise ValidationFailed([ingest.BAD_COUNTRY])


async def track(writer: Writer, site: SiteInfo, item: TrackIn, *, now: int, salt: bytes) -> Tracked:
    validate(item)
    kind = item.kind
    at = min(item.at, now) if item.at is not None else now
    # Raises ValidationFailed before any write.
    prepared: HitRow | EventRow | Ignored | None = _prepare(site, item, at, salt)
    if isinstance(prepared, Ignored):
        return Tracked(status="ignored", kind=kind, reason=prepared.reason)
    if not site.active:
        return Tracked(status="ignored", kind=kind, reason=ingest.SITE_INACTIVE)
    if prepared is None and item.user_agent:
        bot = enrich.parse_ua(item.user_agent.strip()).bot
        if bot:
            return Tracked(status="ignored", kind=kind, reason=bot)
    visitor_hash = (
        prepared.visitor_hash if prepared is not None else _visitor_hash(site, item, salt)
    )

    keeps_session = (
        item.session_id is not None
        or item.session_timeout is not None
        or item.session_properties is not None
        or kind in ("goal", "ping")
    )
    timeout = sessions.clamp_timeout(item.session_timeout) if item.session_timeout else None
    action = kind in ("pageview", "event")
    referrer = prepared.referrer if prepared is not None else None

    def step(conn: sqlite3.Connection) -> _Step:
        out = _Step()
        session: sessions.Session | None = None
        if item.session_id is not None:
            session = sessions.by_id(conn, site.id, item.session_id)
            if session is None:
                raise NotFound(SESSION_NOT_FOUND)
        elif keeps_session:
            session = sessions.covering(conn, site.id, visitor_hash, at)
            if session is None and kind == "ping":
                return out
            if session is None:
                session = sessions.start(
                    conn, site.id, visitor_hash, at, timeout or sessions.DEFAULT_TIMEOUT
                )
        if kind == "goal":
            assert item.goal is not None
            out.goal = goals.resolve(conn, site.id, item.goal, now)
        if session is not None:
            out.first = sessions.record(
                conn,
                session,
                at,
                action=action,
                alive=kind == "ping",
                timeout=timeout,
                referrer=referrer,
            )
            if item.session_properties:
                sessions.merge_properties(conn, session, item.session_properties)
        who = session.visitor_hash if session is not None else visitor_hash
        if item.visitor_properties:
            visitors.set_properties(conn, site.id, who, item.visitor_properties, now)
        out.session = session
        return out

    async def job(conn: aiosqlite.Connection) -> _Step:
        return await db.on_connection_thread(conn, step)

    needs_job = keeps_session or bool(item.visitor_properties)
    if prepared is None:  # properties, custom data or a ping: the job is all there is
        done = await writer.run(job) if needs_job else _Step()
        who = done.session.visitor_hash if done.session is not None else visitor_hash
        if kind == "ping" and done.session is None:
            return Tracked(status="ignored", kind=kind, reason=NO_OPEN_SESSION, visitor_hash=who)
        session_id = done.session.id if done.session is not None else None
        return Tracked(status="updated", kind=kind, session_id=session_id, visitor_hash=who)

    row: HitRow | EventRow = prepared
    decided: list[tuple[_Step, HitRow | EventRow, int | None]] = []

    def final_row(done: _Step) -> tuple[HitRow | EventRow, int | None]:
        """The row as the session / goal step decided it (referrer once, goal name, ids)."""
        session = done.session
        options: dict[str, Any] = {}
        if item.referrer_once and session is not None and not done.first:
            options["referrer"] = False
        goal_id: int | None = None
        if done.goal is not None:
            goal_id, goal_name = done.goal
            assert session is not None
            options.update(
                name=goals.PREFIX + goal_name,
                order_id=goals.order_id(goal_id, session.id),
                extra={"goal_id": goal_id, "session_id": session.id},
            )
        final = row
        if options:
            again = _prepare(site, item, at, salt, **options)
            assert again is not None and not isinstance(again, Ignored)
            final = again
        if session is not None:
            final = final._replace(visitor_hash=session.visitor_hash)
        return final, goal_id

    def before(conn: sqlite3.Connection) -> list[Any]:
        # The session / goal / properties step and the row commit in ONE transaction: a
        # request refused or failing at the insert leaves no session or goal behind.
        done = step(conn)
        final, goal_id = final_row(done)
        decided[:] = [(done, final, goal_id)]
        return [final]

    hook = before if needs_job else None
    if isinstance(row, HitRow):
        (stored,) = await writer.insert_hits([row], before=hook)
    else:
        (stored,) = await writer.insert_events([row], before=hook)
    done, prepared, goal_id = decided[0] if decided else (_Step(), row, None)
    session = done.session
    session_id = session.id if session is not None else None
    who = session.visitor_hash if session is not None else visitor_hash
    result = Tracked(
        status="created",
        kind=kind,
        id=stored.id,
        session_id=session_id,
        visitor_hash=who,
        goal_id=goal_id,
    )
    if not stored.duplicate:
        return result
    result.status = "duplicate"
    if (
        isinstance(prepared, EventRow)
        and goal_id is not None
        and prepared.revenue_micros is not None
    ):
        event_id, micros, currency = stored.id, prepared.revenue_micros, prepared.currency

        async def add_revenue(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(goals.ADD_REVENUE, (micros, currency, event_id, site.id))
            return cur.rowcount

        if await writer.run(add_revenue) > 0:
            result.status = "updated"
    return result


def _simple(item: TrackIn) -> bool:
    return (
        item.kind in ("pageview", "event")
        and item.session_id is None
        and item.session_timeout is None
        and not item.visitor_properties
        and not item.session_properties
    )


async def track_many(
    writer: Writer,
    site: SiteInfo,
    items: list[TrackIn],
    *,
    now: int,
    salt: bytes,
    atomic: bool,
) -> list[Tracked | ValidationFailed]:
    """Page views and events without session bookkeeping, stored together (the events in one
    writer job, the hits in another). Each invalid item is its ``ValidationFailed`` in the
    answer, the others are stored; with ``atomic`` the first invalid one is raised (its message
    prefixed with its index) and nothing is stored. A repeated order id is ``duplicate``."""
    if not all(_simple(item) for item in items):
        raise InvalidParameter("track_many takes page views and events without sessions")
    out: list[Tracked | ValidationFailed] = []
    hits: list[tuple[int, HitRow]] = []
    rows: list[tuple[int, EventRow]] = []
    for index, item in enumerate(items):
        try:
            validate(item)
            at = min(item.at, now) if item.at is not None else now
            prepared = _prepare(site, item, at, salt)
        except ValidationFailed as exc:
            if atomic:
                raise ValidationFailed([f"{index}: {error}" for error in exc.errors]) from None
            out.append(exc)
            continue
        if isinstance(prepared, Ignored):
            out.append(Tracked(status="ignored", kind=item.kind, reason=prepared.reason))
            continue
        assert prepared is not None
        out.append(Tracked(status="created", kind=item.kind, visitor_hash=prepared.visitor_hash))
        if isinstance(prepared, HitRow):
            hits.append((index, prepared))
        else:
            rows.append((index, prepared))
    if hits:
        for (index, _row), stored in zip(
            hits, await writer.insert_hits([row for _, row in hits]), strict=True
        ):
            result = out[index]
            assert isinstance(result, Tracked)
            result.id = stored.id
    if rows:
        for (index, _event_row), stored in zip(
            rows, await writer.insert_events([row for _, row in rows]), strict=True
        ):
            result = out[index]
            assert isinstance(result, Tracked)
            result.id = stored.id
            if stored.duplicate:
                result.status = "duplicate"
    return out
