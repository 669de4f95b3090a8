"""The baseline for bench_ingest_single.py: a trivial Litestar app served exactly like
``tinytrack serve`` (same uvicorn settings: uvloop + httptools chosen by uvicorn's "auto", access
log off, one process).

One POST handler on the same route as tinytrack's single-hit endpoint: it decodes the body into a
small msgspec Struct and answers a small JSON dict with status 201. No database, no auth.

    python benchmarks/trivial_app.py --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post


class HitBody(msgspec.Struct, kw_only=True):
    path: str
    ip_address: str | None = None
    user_agent: str | None = None
    referrer: str | None = None


@post("/api/v1/sites/{site_id:str}/hits", status_code=201)
async def create_hit(request: Request[Any, Any, Any], site_id: str) -> dict[str, Any]:
    # Decoded by hand with msgspec, like tinytrack's handler does (not via Litestar's `data`).
    hit = msgspec.json.decode(await request.body(), type=HitBody)
    return {"status": "created", "site_id": site_id, "path": hit.path}


@get("/api/v1")
async def index() -> dict[str, str]:
    return {"name": "trivial"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[create_hit, index], debug=False)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # The same uvicorn.Config as tinytrack.cli.serve.
    config = uvicorn.Config(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
