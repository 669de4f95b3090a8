"""``/api/v1`` additions for what the other tools' formats record (tinytrack.server.compat):
sessions (with the ids Clicky's ``session_id`` names), goals with completions and revenue, and
a visitor's properties. Same keys, errors and rate limit as the rest of ``/api/v1``.

    GET  /api/v1/sites/{id}/sessions                 sessions started in a date range
    GET  /api/v1/sites/{id}/goals                    goals, completions, revenue per currency
    POST /api/v1/sites/{id}/goals                    define a goal {"name": ..., "id": n?}
    GET  /api/v1/sites/{id}/visitors/{visitor_hash}  a visitor's properties
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from msgspec import Meta, Struct

from tinytrack.engine.params import parse_goals_params, parse_sessions_params
from tinytrack.errors import ValidationFailed
from tinytrack.models import Goal, GoalsPage, SessionsPage
from tinytrack.server.api_v1 import SINGLE_BODY_LIMIT, authorize, engine_of, site_id_of

Q = str | None


def _q(description: str) -> QueryParameter:
    return QueryParameter(description=description)


def _given(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


class GoalIn(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    id: Annotated[int, Meta(ge=1)] | None = None


@get(
    "/api/v1/sites/{site_id:str}/sessions",
    summary="Sessions (ids, times, actions, properties) started in a date range",
    tags=["other formats"],
)
async def read_sessions(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: 30 days before end)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive (default: today)")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
    visitor_hash: Annotated[Q, _q("Only this visitor's sessions")] = None,
    page: Annotated[Q, _q("Page number, from 1")] = None,
    per_page: Annotated[Q, _q("Page size, at most 1000 (default 100)")] = None,
) -> SessionsPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_sessions_params(
        _given(
            start_date=start_date,
            end_date=end_date,
            time_zone=time_zone,
            visitor_hash=visitor_hash,
            page=page,
            per_page=per_page,
        )
    )
    return await engine_of(request.app.state).sessions(sid, **kwargs)


@get(
    "/api/v1/sites/{site_id:str}/goals",
    summary="Goals with completions and revenue (default: all time)",
    tags=["other formats"],
)
async def read_goals(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    start_date: Annotated[Q, _q("Range start, YYYY-MM-DD (default: the whole history)")] = None,
    end_date: Annotated[Q, _q("Range end, YYYY-MM-DD, inclusive")] = None,
    time_zone: Annotated[Q, _q("utc (default) or user: the site's time zone")] = None,
) -> GoalsPage:
    await authorize(request)
    sid = site_id_of(site_id)
    kwargs = parse_goals_params(
        _given(start_date=start_date, end_date=end_date, time_zone=time_zone)
    )
    return await engine_of(request.app.state).goals(sid, **kwargs)


@post(
    "/api/v1/sites/{site_id:str}/goals",
    summary="Define a goal (full access): a name, and optionally the number existing code uses",
    tags=["other formats"],
    request_max_body_size=SINGLE_BODY_LIMIT,
    status_code=201,
)
async def create_goal(request: Request[Any, Any, Any], site_id: FromPath[str]) -> Goal:
    await authorize(request, write=True)
    sid = site_id_of(site_id)
    engine = engine_of(request.app.state)
    await engine.check_site(sid)
    try:
        body = msgspec.json.decode(await request.body(), type=GoalIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([str(exc)]) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed([f"Malformed JSON: {exc}"]) from None
    return await engine.create_goal(sid, body.name, goal_id=body.id)


@get(
    "/api/v1/sites/{site_id:str}/visitors/{visitor_hash:str}",
    summary="A visitor's properties (set by other tools' formats)",
    tags=["other formats"],
)
async def read_visitor(
    request: Request[Any, Any, Any], site_id: FromPath[str], visitor_hash: FromPath[str]
) -> dict[str, Any]:
    await authorize(request)
    sid = site_id_of(site_id)
    properties = await engine_of(request.app.state).visitor_properties(sid, visitor_hash[:64])
    return {"visitor_hash": visitor_hash[:64], "properties": properties}


ROUTES = [read_sessions, read_goals, create_goal, read_visitor]
