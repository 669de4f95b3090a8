"""``tinytrack`` command line: a thin layer over the library. Domain errors become exit codes
here and only here (see EXIT_CODES)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from tinytrack import __version__
from tinytrack.config import LOG_LEVELS, Settings
from tinytrack.engine import Engine, params
from tinytrack.errors import InvalidParameter, NotFound, TinytrackError
from tinytrack.models import ExportKind, to_builtins

EXIT_CODES: dict[type[TinytrackError], int] = {InvalidParameter: 2, NotFound: 3}


def _program() -> str:
    """How the user can call us again: `tinytrack` if it is on PATH, else the full path."""
    if shutil.which("tinytrack"):
        return "tinytrack"
    here = Path(sys.executable).with_name("tinytrack")
    if here.exists():
        return shlex.quote(str(here))
    return shlex.quote(sys.executable) + " -m tinytrack"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinytrack",
        description="Privacy-first web analytics in one SQLite file.",
    )
    parser.add_argument("--version", action="version", version=f"tinytrack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--db",
            default=None,
            help="SQLite database file (default: $TINYTRACK_DB or ./tinytrack.db)",
        )
        p.add_argument(
            "--config",
            default=None,
            metavar="FILE",
            help="TOML file of settings (default: $TINYTRACK_CONFIG; flags and "
            "TINYTRACK_* variables win over it)",
        )
        return p

    def server_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="port (default 8000)")
        p.add_argument(
            "--rate-limit",
            type=int,
            default=None,
            help="API requests per key per hour (default 1000; 0 = unlimited)",
        )
        p.add_argument(
            "--collector-rate-limit",
            type=int,
            default=None,
            help="browser hits/events per client address per minute (default 25; 0 = unlimited)",
        )
        p.add_argument(
            "--track-rate-limit",
            type=int,
            default=None,
            help="Web Analyzer-format tracking requests per key per minute "
            "(default 60; 0 = unlimited)",
        )
        p.add_argument(
            "--trusted-proxies",
            default=None,
            metavar="LIST",
            help="reverse proxies whose X-Forwarded-For/Forwarded headers are believed: "
            "comma-separated addresses or CIDR ranges, e.g. 127.0.0.1,::1 (default: none)",
        )
        p.add_argument(
            "--max-pending-rows",
            type=int,
            default=None,
            help="hits allowed to wait for the writer before writes get 503 (default 20000)",
        )
        p.add_argument(
            "--ua-retention-days",
            type=int,
            default=None,
            help="days a raw user-agent string is kept (default 7)",
        )
        p.add_argument(
            "--log-level",
            default=None,
            choices=LOG_LEVELS,
            help="server log level (default info)",
        )
        return with_db(p)

    server_options(sub.add_parser("serve", help="run the HTTP server"))
    config = server_options(
        sub.add_parser("config", help="print the effective settings and where each comes from")
    )
    config.add_argument("--json", action="store_true", help="print one JSON object")

    site = sub.add_parser("site", help="manage sites").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = with_db(site.add_parser("add", help="add a site to track"))
    add.add_argument("url", help="the site's address, e.g. https://example.com")
    add.add_argument("--label", default=None, help="a name for the site")
    add.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Warsaw")
    add.add_argument("--json", action="store_true", help="print one JSON object")
    site_list = with_db(site.add_parser("list", help="list sites"))
    site_list.add_argument("--json", action="store_true", help="print JSON")
    site_delete = with_db(site.add_parser("delete", help="delete a site and all its data"))
    site_delete.add_argument("site", help="site id or uid")
    site_delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    alias = with_db(
        site.add_parser(
            "alias", help="list, add or remove another name of a site (other tools' formats)"
        )
    )
    alias.add_argument("site", help="site id or uid")
    alias.add_argument("name", nargs="?", help="the name to add, e.g. a Woopra project or CSID")
    alias.add_argument("--remove", action="store_true", help="remove the name instead")
    goal = with_db(site.add_parser("goal", help="list a site's goals, or define one"))
    goal.add_argument("site", help="site id or uid")
    goal.add_argument("name", nargs="?", help="the goal's name (none: list the goals)")
    goal.add_argument("--id", type=int, default=None, help="the goal's number (default: next)")
    goal.add_argument("--json", action="store_true", help="print JSON")
    secure = with_db(
        site.add_parser(
            "secure-tracking",
            help="require a full-access key on the public Woopra-format endpoint",
        )
    )
    secure.add_argument("site", help="site id or uid")
    secure.add_argument("state", choices=["on", "off"], help="on or off")

    export = with_db(
        sub.add_parser("export", help="write a site's hits, events, kudos or visitors as CSV")
    )
    export.add_argument("--site", required=True, help="site id or uid")
    export.add_argument("--kind", choices=["hits", "events", "kudos", "visitors"], default="hits")
    export.add_argument("--start", default=None, help="first day, YYYY-MM-DD (default: all)")
    export.add_argument("--end", default=None, help="last day, YYYY-MM-DD")
    export.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")
    imp = with_db(sub.add_parser("import", help="import a tinytrack CSV export into a site"))
    imp.add_argument("file", help="a CSV file written by tinytrack export")
    imp.add_argument("--site", required=True, help="site id or uid")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    backup = with_db(
        sub.add_parser(
            "backup", help="write a consistent copy of the database (safe while serving)"
        )
    )
    backup.add_argument("file", help="the new file to write")

    key = sub.add_parser("key", help="manage API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = with_db(key.add_parser("create", help="create an API key (shown once)"))
    access = create.add_mutually_exclusive_group()
    access.add_argument(
        "--read-only",
        dest="access",
        action="store_const",
        const="read_only",
        help="GET endpoints only (default)",
    )
    access.add_argument(
        "--full-access",
        dest="access",
        action="store_const",
        const="full_access",
        help="also allowed to write hits",
    )
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    key_list = with_db(key.add_parser("list", help="list API keys (never the secrets)"))
    key_list.add_argument("--json", action="store_true", help="print JSON")
    revoke = with_db(key.add_parser("revoke", help="revoke an API key"))
    revoke.add_argument("key", help="key id, prefix (as in `key list`) or the key itself")
    revoke.add_argument("--json", action="store_true", help="print one JSON object")

    password = with_db(
        sub.add_parser("password", help="set the dashboard password (asked twice on a terminal)")
    )
    password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input instead"
    )

    board = with_db(sub.add_parser("leaderboard", help="all-time top paths of a site"))
    board.add_argument("--site", required=True, help="site id or uid")
    board.add_argument("--path", default=None, help="only paths containing this text (any case)")
    board.add_argument("--limit", type=int, default=20, help="rows per page (default 20)")
    board.add_argument("--page", type=int, default=1, help="page number (default 1)")
    board.add_argument("--json", action="store_true", help="print the API's JSON object")

    kudos = with_db(sub.add_parser("kudos", help="kudos of a site, newest first"))
    kudos.add_argument("--site", required=True, help="site id or uid")
    kudos.add_argument("--path", default=None, help="only this exact path")
    kudos.add_argument("--start", default=None, help="first day, YYYY-MM-DD (default: 30 days ago)")
    kudos.add_argument("--end", default=None, help="last day, YYYY-MM-DD (default: today)")
    kudos.add_argument("--limit", type=int, default=100, help="rows per page (default 100)")
    kudos.add_argument("--page", type=int, default=1, help="page number (default 1)")
    kudos.add_argument("--json", action="store_true", help="print the API's JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("serve", "config"):
            settings = server_settings(args)
            return serve(settings) if args.command == "serve" else show_config(args)
        settings = Settings.from_env(db=args.db, config_file=args.config)
        command = COMMANDS[(args.command, getattr(args, "action", None))]
        return asyncio.run(_with_engine(settings, command, args))
    except TinytrackError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return next((c for kind, c in EXIT_CODES.items() if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:
        return 130


async def _with_engine(
    settings: Settings,
    command: Callable[[Engine, argparse.Namespace, TextIO], Awaitable[None]],
    args: argparse.Namespace,
) -> int:
    # The configured retention also applies here (an import drops user agents older than it).
    engine = await Engine.open(
        settings.db, maintenance=False, ua_retention_days=settings.ua_retention_days
    )
    try:
        await command(engine, args, sys.stdout)
    finally:
        await engine.close()
    return 0


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(to_builtins(value), indent=None) + "\n")


async def site_add(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site = await engine.create_site(args.url, label=args.label, timezone=args.timezone)
    if args.json:
        _print_json(out, site)
        return
    out.write(f"Added site {site.url}\n  id:  {site.id}\n  uid: {site.uid}\n")
    settings = Settings.from_env(config_file=args.config)
    server = f"http://{settings.host}:{settings.port}"
    out.write(
        "\nOn your pages (with your server's public address in place of the local one):\n"
        f'  <script src="{server}/embed/{site.uid}.js" defer></script>\n'
    )
    keys = await engine.list_keys()
    if not any(k.access_type == "full_access" and k.revoked_at is None for k in keys):
        out.write(f"\nNext: create an API key with  {_program()} key create --full-access\n")


async def site_list(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    sites = await engine.list_sites()
    if args.json:
        _print_json(out, sites)
        return
    if not sites:
        out.write(f"No sites yet. Add one with  {_program()} site add https://example.com\n")
        return
    out.write(f"{'ID':>4}  {'UID':<10}  {'HITS':>9}  {'UNIQUE':>9}  {'TIMEZONE':<20} URL\n")
    for s in sites:
        out.write(
            f"{s.id:>4}  {s.uid:<10}  {s.lifetime_hits:>9}  {s.lifetime_unique_hits:>9}  "
            f"{s.timezone:<20} {s.url}{'  (' + s.label + ')' if s.label else ''}\n"
        )


async def key_create(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    new = await engine.create_key(args.access or "read_only", name=args.name)
    if args.json:
        _print_json(out, {**to_builtins(new.key), "key": new.token})
        return
    out.write(
        f"Created {new.key.access_type} key {new.key.id} ({new.key.name}):\n\n"
        f"  {new.token}\n\nStore it now: it is shown only this once (only a hash is kept).\n"
    )


async def key_list(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    keys = await engine.list_keys()
    if args.json:
        _print_json(out, keys)
        return
    if not keys:
        out.write(f"No API keys yet. Create one with  {_program()} key create --read-only\n")
        return
    out.write(f"{'ID':>4}  {'PREFIX':<16}{'ACCESS':<13}{'LAST USED':<22}{'STATUS':<9}NAME\n")
    for k in keys:
        status = "revoked" if k.revoked_at else "active"
        out.write(
            f"{k.id:>4}  {k.prefix + '…':<16}{k.access_type:<13}{k.last_used_at or '-':<22}"
            f"{status:<9}{k.name}\n"
        )


async def key_revoke(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    target: int | str = int(args.key) if args.key.isdigit() else args.key
    key = await engine.revoke_key(target)
    if args.json:
        _print_json(out, key)
        return
    out.write(f"Revoked key {key.id} ({key.prefix}…, {key.name}).\n")


async def _site_id(engine: Engine, given: str) -> int:
    """A site by numeric id or by uid."""
    for site in await engine.list_sites():
        if str(site.id) == given or site.uid == given:
            return site.id
    raise NotFound(f"no site with id or uid {given!r} (see `{_program()} site list`)")


async def site_alias(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    if args.name is None:
        names = await engine.site_aliases(site_id)
    elif args.remove:
        names = await engine.remove_site_alias(site_id, args.name)
    else:
        names = await engine.add_site_alias(site_id, args.name)
    out.write("".join(f"{name}\n" for name in names) or "No aliases.\n")


async def site_goal(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    if args.name is not None:
        goal = await engine.create_goal(site_id, args.name, goal_id=args.id)
        if args.json:
            _print_json(out, goal)
        else:
            out.write(f"Goal {goal.id}: {goal.name} (events named {goal.event!r})\n")
        return
    goals = (await engine.goals(site_id)).goals
    if args.json:
        _print_json(out, goals)
        return
    for g in goals:
        revenue = ", ".join(f"{r.amount:g} {r.currency or ''}".strip() for r in g.revenue)
        out.write(f"{g.id:>6}  {g.completions:>7}  {revenue or '-':<20} {g.name}\n")
    if not goals:
        out.write("No goals yet.\n")


async def site_secure_tracking(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    await engine.set_secure_tracking(site_id, args.state == "on")
    out.write(f"Secure tracking {args.state} for site {site_id}.\n")


async def leaderboard(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    board = await engine.leaderboard(
        site_id, path=args.path or None, page=args.page, per_page=args.limit
    )
    if args.json:
        _print_json(out, board)
        return
    if not board.leaderboard:
        out.write("No hits yet." if args.path is None else f"No path contains {args.path!r}.")
        out.write("\n")
        return
    out.write(f"{'#':>4}  {'HITS':>9}  {'UNIQUE':>9}  {'SHARE':>7}  PATH\n")
    first = (args.page - 1) * args.limit
    for rank, row in enumerate(board.leaderboard, start=first + 1):
        out.write(
            f"{rank:>4}  {row.total_hits:>9}  {row.unique_hits:>9}  {row.percentage:>6.2f}%  "
            f"{row.path}\n"
        )
    p = board.pagination
    out.write(f"page {p.current_page} of {p.total_pages} ({p.total_count} paths)\n")


async def kudos_list(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    start = params.parse_date("--start", args.start) if args.start else None
    end = params.parse_date("--end", args.end) if args.end else None
    page = await engine.kudos(
        site_id,
        start_date=start,
        end_date=end,
        path=args.path or None,
        page=args.page,
        per_page=args.limit,
    )
    if args.json:
        _print_json(out, page)
        return
    f = page.filters
    if not page.kudos:
        out.write(f"No kudos from {f.start_date} to {f.end_date}.\n")
        return
    out.write(f"{'CREATED':<22}{'UID':<26}PATH\n")
    for kudo in page.kudos:
        out.write(f"{kudo.created_at:<22}{kudo.uid:<26}{kudo.path}\n")
    p = page.pagination
    out.write(
        f"page {p.current_page} of {p.total_pages} ({p.total_count} kudos, "
        f"{f.start_date} to {f.end_date})\n"
    )


async def set_password(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    import getpass

    if args.stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != secret:
            raise InvalidParameter("the two passwords differ")
    await engine.set_owner_password(secret)
    settings = Settings.from_env(config_file=args.config)
    out.write(
        "Password set (stored as a scrypt hash; any open dashboard session has ended).\n"
        f"Log in at http://{settings.host}:{settings.port}/dashboard\n"
    )


class Progress:
    """A one-line progress bar on ``stream`` (stderr) when it is a terminal; silent otherwise,
    so piped or redirected output stays clean. Redrawn at most every 0.1 s."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self._drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._drawn < 0.1 and done < total:
            return
        self._drawn = now
        if total:
            share = min(done / total, 1.0)
            bar = "#" * int(share * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {share:6.1%} {done:,}/{total:,} rows")
        else:
            self.stream.write(f"\r{self.label} {done:,} rows")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _date(text: str | None, name: str) -> dt.date | None:
    return params.parse_date(name, text) if text is not None else None


async def export_cmd(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    start, end = _date(args.start, "--start"), _date(args.end, "--end")
    bar = Progress(f"export {args.kind}")
    try:
        if args.output:
            rows = await engine.export_to_file(
                site_id, args.output, args.kind, start_date=start, end_date=end, progress=bar
            )
        else:
            rows = await _export_to_stdout(engine, site_id, args.kind, start, end, bar)
    finally:
        bar.close()
    if args.output:
        out.write(f"Wrote {rows:,} {args.kind} to {args.output}\n")


async def _export_to_stdout(
    engine: Engine,
    site_id: int,
    kind: ExportKind,
    start: dt.date | None,
    end: dt.date | None,
    bar: Progress,
) -> int:
    total = 0
    if bar.live:
        total = await engine.count_rows(site_id, kind, start_date=start, end_date=end)
    rows = 0
    target = sys.stdout.buffer
    chunks = await engine.export_csv(site_id, kind, start_date=start, end_date=end)
    try:
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            async for data in chunks:
                target.write(data)  # the CLI's own loop: a blocking write stalls nobody
                rows += data.count(b"\r\n")  # progress only (a quoted cell may hold a line end)
                bar(max(rows - 1, 0), total)
            target.flush()
    except BrokenPipeError:  # `tinytrack export ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return max(rows - 1, 0)


async def import_cmd(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    bar = Progress("import")
    try:
        report = await engine.import_csv(site_id, args.file, progress=bar)
    finally:
        bar.close()
    if args.json:
        _print_json(out, report)
        return
    out.write(
        f"{report.kind}: {report.rows:,} rows read, {report.imported:,} imported, "
        f"{report.duplicates:,} skipped as duplicates, {report.rejected_count:,} rejected\n"
    )
    for row in report.rejected[:50]:
        out.write(f"  line {row.line}: {row.reason}\n")
    if report.rejected_count > 50:
        out.write(
            f"  ... and {report.rejected_count - 50:,} more "
            f"(--json lists the first {len(report.rejected):,})\n"
        )


async def site_delete(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    site_id = await _site_id(engine, args.site)
    site = await engine.get_site(site_id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidParameter("refusing to delete without confirmation: add --yes")
        answer = input(  # noqa: ASYNC250 (the CLI's own loop, waiting for its user)
            f"Delete {site.url} (id {site.id}) and all its data ({site.lifetime_hits:,} hits, "
            "events, kudos, ...) for good? Type the site's uid to confirm: "
        )
        if answer.strip() != site.uid:
            raise InvalidParameter("not confirmed; nothing was deleted")
    deleted = await engine.delete_site(site_id)
    counts = ", ".join(f"{n:,} {table}" for table, n in deleted.items() if n)
    out.write(
        f"Deleted site {site.url} (id {site.id}) and all its data"
        f"{' (' + counts + ')' if counts else ''}.\n"
    )


async def backup_cmd(engine: Engine, args: argparse.Namespace, out: TextIO) -> None:
    size = await engine.backup(args.file)
    out.write(f"Wrote a consistent copy of the database to {args.file} ({size:,} bytes)\n")


COMMANDS: dict[
    tuple[str, str | None], Callable[[Engine, argparse.Namespace, TextIO], Awaitable[None]]
] = {
    ("site", "add"): site_add,
    ("site", "list"): site_list,
    ("site", "delete"): site_delete,
    ("site", "alias"): site_alias,
    ("site", "goal"): site_goal,
    ("site", "secure-tracking"): site_secure_tracking,
    ("export", None): export_cmd,
    ("import", None): import_cmd,
    ("backup", None): backup_cmd,
    ("key", "create"): key_create,
    ("key", "list"): key_list,
    ("key", "revoke"): key_revoke,
    ("leaderboard", None): leaderboard,
    ("kudos", None): kudos_list,
    ("password", None): set_password,
}


def next_steps(settings: Settings, sites: int, keys: int) -> str:
    base = f"http://{settings.host}:{settings.port}"
    prog = _program()
    db = "" if settings.db == "tinytrack.db" else f" --db {shlex.quote(settings.db)}"
    where = os.path.abspath(settings.db)
    lines = [f"tinytrack {__version__} serving {base}/api/v1  (database: {where})", ""]
    if sites and keys:
        lines.append(f"{sites} site(s), {keys} active key(s). API reference: {base}/api/v1")
        return "\n".join(lines)
    lines += [
        "Next steps, in another terminal in this folder:",
        f"  1. add your site:       {prog} site add https://example.com --label 'My site'{db}",
        f"  2. create an API key:   {prog} key create --full-access --name backend{db}",
        "  3. record a hit (use the site id from step 1 and the key from step 2):",
        f"       curl -X POST {base}/api/v1/sites/1/hits -H 'Authorization: Bearer KEY' \\",
        "            -H 'Content-Type: application/json' -d '{\"path\": \"/hello\"}'",
        "  4. read it back:",
        f"       curl '{base}/api/v1/sites/1/hits?grouped=true&group_by=path' "
        "-H 'Authorization: Bearer KEY'",
        "  5. or count page views from the browser: put this on your pages (the uid from step 1)",
        f'       <script src="{base}/embed/SITE_UID.js" defer></script>',
    ]
    return "\n".join(lines)


def _server_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "db": args.db,
        "host": args.host,
        "port": args.port,
        "rate_limit": args.rate_limit,
        "collector_rate_limit": args.collector_rate_limit,
        "track_rate_limit": args.track_rate_limit,
        "trusted_proxies": args.trusted_proxies,
        "max_pending_rows": args.max_pending_rows,
        "ua_retention_days": args.ua_retention_days,
        "log_level": args.log_level,
    }


def server_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(config_file=args.config, **_server_overrides(args))


def show_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``tinytrack config``: what ``serve`` with the same flags would run with."""
    out = out or sys.stdout
    settings, sources = Settings.resolve(config_file=args.config, **_server_overrides(args))
    values = settings.masked()
    if args.json:
        _print_json(out, {"settings": values, "sources": sources})
        return 0
    out.write("# effective settings: flags > TINYTRACK_* variables > config file > defaults\n")
    for name, value in values.items():
        line = f"{name} = {json.dumps(value)}"
        out.write(f"{line:<44} # {sources[name]}\n")
    return 0


# The server process's garbage collector: a young-generation collection runs every 700 net new
# container objects and walks every young container, including a batch's thousands of row
# tuples while they wait for their COMMIT. Measured with gc.callbacks in `tinytrack serve` under
# benchmarks/bench_ingest_batch.py: 7.3-7.8 s of 48.8 s in GC (15%; 11-15k collections);
# with 20,000, 0.02 s (4-5 collections). Alternating runs: 34.8k-45.9k hits/s with the default
# (3 runs), 43.7k-55.7k with 20,000 (4 runs). Cyclic garbage is still collected once 20,000
# objects accumulate. Only the server command sets this: the library leaves its host's GC be.
GC_THRESHOLD = 20_000


def serve(settings: Settings) -> int:
    import gc
    import signal
    from types import FrameType

    import uvicorn

    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn records the signal and re-raises it after shutting down, so the exit
            # status becomes -15. A stop that committed every write is a success: exit 0.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    from tinytrack.server.app import create_app

    async def counts() -> tuple[int, int]:
        engine = await Engine.open(settings.db, maintenance=False)
        try:
            sites = await engine.list_sites()
            keys = [k for k in await engine.list_keys() if k.revoked_at is None]
            return len(sites), len(keys)
        finally:
            await engine.close()

    n_sites, n_keys = asyncio.run(counts())
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    print(next_steps(settings, n_sites, n_keys), flush=True)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
