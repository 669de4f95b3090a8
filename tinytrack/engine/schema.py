"""Numbered schema migrations. Each runs in the transaction that records it (PRAGMA user_version).

Never edit a released migration: add a new one. The layout choices are explained next to the tables.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
            # secret: per-site key for hashing caller-supplied visitor ids (never exposed).
            # ignore_paths: JSON list of glob patterns; a matching path is answered 202 ignored.
            """CREATE TABLE sites (
                id           INTEGER PRIMARY KEY,
                uid          TEXT NOT NULL UNIQUE,
                url          TEXT NOT NULL,
                label        TEXT,
                timezone     TEXT NOT NULL DEFAULT 'UTC',
                public       INTEGER NOT NULL DEFAULT 0,
                active       INTEGER NOT NULL DEFAULT 1,
                unique_hits  INTEGER NOT NULL DEFAULT 1,
                ignore_paths TEXT NOT NULL DEFAULT '[]',
                secret       BLOB NOT NULL,
                created_at   INTEGER NOT NULL,
                updated_at   INTEGER NOT NULL
            )""",
            # Only a SHA-256 of each token is stored; the token is shown once at creation.
            """CREATE TABLE api_keys (
                id           INTEGER PRIMARY KEY,
                name         TEXT NOT NULL,
                access_type  TEXT NOT NULL CHECK (access_type IN ('read_only', 'full_access')),
                prefix       TEXT NOT NULL,
                token_hash   TEXT NOT NULL UNIQUE,
                created_at   INTEGER NOT NULL,
                last_used_at INTEGER,
                revoked_at   INTEGER
            )""",
            # One random salt per UTC day; rows older than yesterday are deleted, which makes
            # the hashes of earlier days impossible to recompute or link.
            """CREATE TABLE salts (
                day  INTEGER PRIMARY KEY,
                salt BLOB NOT NULL
            )""",
            # Raw hits: one time-ordered index only. Dashboards and grouped queries read the
            # rollups below; this table is read for raw listings, filters, journeys and exports.
            # created_at is Unix seconds (UTC). No IP address column exists, on purpose.
            """CREATE TABLE hits (
                id            INTEGER PRIMARY KEY,
                site_id       INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                created_at    INTEGER NOT NULL,
                path          TEXT NOT NULL,
                url           TEXT,
                referrer      TEXT,
                source        TEXT,
                country       TEXT NOT NULL,
                browser_name  TEXT,
                platform_name TEXT,
                is_mobile     INTEGER NOT NULL,
                user_agent    TEXT,
                unique_hash   TEXT NOT NULL,
                visitor_hash  TEXT NOT NULL,
                is_unique     INTEGER NOT NULL
            )""",
            "CREATE INDEX hits_site_time ON hits(site_id, created_at)",
            # Rollups: hits and unique hits per site, dimension, value and day. Each row is keyed
            # by BOTH the UTC day and the site-local day of its hits (at most two rows per value
            # and UTC day), so one table answers time_zone=utc and time_zone=user exactly.
            # dim codes: see tinytrack.engine.rollups.DIMENSIONS. NULL values are stored as ''.
            """CREATE TABLE hit_rollups (
                site_id   INTEGER NOT NULL,
                dim       INTEGER NOT NULL,
                utc_day   INTEGER NOT NULL,
                local_day INTEGER NOT NULL,
                value     TEXT NOT NULL,
                hits      INTEGER NOT NULL,
                uniques   INTEGER NOT NULL,
                PRIMARY KEY (site_id, dim, utc_day, local_day, value)
            ) WITHOUT ROWID""",
        ),
    ),
)

MIGRATIONS += (
    (
        2,
        (
            # The rollup pyramid: the daily rollups summed over aligned blocks of 4, 16 and 64
            # days (level 1, 2, 3; block = day // 4**level). A 365-day question then reads a few
            # dozen blocks instead of 365 days of rows. Built lazily for blocks entirely in the
            # past (see tinytrack.engine.pyramid); meta 'blocks_complete_until' = D means every
            # block ending before day D is here and kept current. Keyed by UTC and local block
            # like the daily table, so both time_zone modes stay exact.
            """CREATE TABLE hit_rollup_blocks (
                site_id     INTEGER NOT NULL,
                dim         INTEGER NOT NULL,
                level       INTEGER NOT NULL,
                utc_block   INTEGER NOT NULL,
                local_block INTEGER NOT NULL,
                value       TEXT NOT NULL,
                hits        INTEGER NOT NULL,
                uniques     INTEGER NOT NULL,
                PRIMARY KEY (site_id, dim, level, utc_block, local_block, value)
            ) WITHOUT ROWID""",
        ),
    ),
)

MIGRATIONS += (
    (
        3,
        (
            # Events: like hits (same enrichment and privacy hashes) plus a name in
            # category.action form, an optional value (the seed's event_properties["value"]),
            # optional flat properties (JSON object), revenue and an order id. Revenue is stored
            # exactly as an integer number of millionths of the currency unit. Grouped event
            # questions read the rollups (dims 10-13 in hit_rollups, see rollups.py).
            """CREATE TABLE events (
                id             INTEGER PRIMARY KEY,
                site_id        INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                created_at     INTEGER NOT NULL,
                name           TEXT NOT NULL,
                value          TEXT,
                path           TEXT,
                url            TEXT,
                referrer       TEXT,
                source         TEXT,
                country        TEXT NOT NULL,
                browser_name   TEXT,
                platform_name  TEXT,
                is_mobile      INTEGER NOT NULL,
                user_agent     TEXT,
                unique_hash    TEXT NOT NULL,
                visitor_hash   TEXT NOT NULL,
                is_unique      INTEGER NOT NULL,
                properties     TEXT,
                revenue_micros INTEGER,
                currency       TEXT,
                order_id       TEXT
            )""",
            "CREATE INDEX events_site_time ON events(site_id, created_at)",
            # An order id is recorded once per site: a repeated one is answered 202 ignored.
            """CREATE UNIQUE INDEX events_site_order ON events(site_id, order_id)
               WHERE order_id IS NOT NULL""",
            # Kudos: a uid is unique within its site (the API deletes by site + uid).
            """CREATE TABLE kudos (
                id         INTEGER PRIMARY KEY,
                site_id    INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                uid        TEXT NOT NULL,
                path       TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                UNIQUE (site_id, uid)
            )""",
            "CREATE INDEX kudos_site_time ON kudos(site_id, created_at)",
            "CREATE INDEX kudos_site_path ON kudos(site_id, path)",
            # User journeys of finished UTC days, built once from the raw hits (journeys.py):
            # one row per visitor and UTC day (a visitor hash changes with the daily salt, so a
            # journey never spans UTC days). pages is a JSON array of paths in order.
            """CREATE TABLE journeys (
                site_id      INTEGER NOT NULL,
                utc_day      INTEGER NOT NULL,
                visitor_hash TEXT NOT NULL,
                local_day    INTEGER NOT NULL,
                start_at     INTEGER NOT NULL,
                end_at       INTEGER NOT NULL,
                page_count   INTEGER NOT NULL,
                pages        TEXT NOT NULL,
                entry_path   TEXT NOT NULL,
                exit_path    TEXT NOT NULL,
                referrer     TEXT,
                country      TEXT,
                browser      TEXT,
                PRIMARY KEY (site_id, utc_day, visitor_hash)
            ) WITHOUT ROWID""",
            "CREATE INDEX journeys_site_start ON journeys(site_id, start_at)",
            # Per built day: kind 0 = all journeys (value ''), 1 = entry page, 2 = exit page;
            # journeys = how many, multi = how many of them viewed more than one page.
            """CREATE TABLE journey_stats (
                site_id   INTEGER NOT NULL,
                kind      INTEGER NOT NULL,
                utc_day   INTEGER NOT NULL,
                local_day INTEGER NOT NULL,
                value     TEXT NOT NULL,
                journeys  INTEGER NOT NULL,
                multi     INTEGER NOT NULL,
                PRIMARY KEY (site_id, kind, utc_day, local_day, value)
            ) WITHOUT ROWID""",
            # Which (site, UTC day) pairs are built. A late hit for a built day deletes the
            # day's journeys, stats and this row in its own transaction; the day is then read
            # from the raw hits until it is built again.
            """CREATE TABLE journey_days (
                site_id INTEGER NOT NULL,
                utc_day INTEGER NOT NULL,
                PRIMARY KEY (site_id, utc_day)
            ) WITHOUT ROWID""",
        ),
    ),
)

MIGRATIONS += (
    (
        4,
        (
            # What the other tools' formats need, in the native model (see tracking.py):
            # sessions of a visitor with an inactivity timeout, properties of a visitor, goals,
            # other names a site is known by, and a site's "secure tracking" switch.
            #
            # A session is a run of one visitor's actions (visitor_hash) with no gap longer than
            # its timeout (seconds). Hits and events are not linked by a column: an action
            # belongs to the session of its visitor that covers its time. Its id is what the
            # API reports and what a Clicky session_id names. properties: JSON object.
            """CREATE TABLE sessions (
                id           INTEGER PRIMARY KEY,
                site_id      INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                visitor_hash TEXT NOT NULL,
                started_at   INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                timeout      INTEGER NOT NULL,
                actions      INTEGER NOT NULL,
                referrer     TEXT,
                properties   TEXT
            )""",
            "CREATE INDEX sessions_visitor ON sessions(site_id, visitor_hash, last_seen_at)",
            "CREATE INDEX sessions_site_start ON sessions(site_id, started_at)",
            # Properties of a visitor (keyed by the visitor hash, never by a clear identifier):
            # one row per key; value is JSON (a string, number or boolean).
            """CREATE TABLE visitor_properties (
                site_id      INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                visitor_hash TEXT NOT NULL,
                key          TEXT NOT NULL,
                value        TEXT NOT NULL,
                updated_at   INTEGER NOT NULL,
                PRIMARY KEY (site_id, visitor_hash, key)
            ) WITHOUT ROWID""",
            # Goals: a name with a number of its own per site (Clicky code names goals by
            # number). A completion is an event named 'goal.<name>' (with its revenue) whose
            # order id 'goal:<id>:session:<session id>' makes it count once per session.
            """CREATE TABLE goals (
                site_id    INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                id         INTEGER NOT NULL,
                name       TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (site_id, id),
                UNIQUE (site_id, name)
            ) WITHOUT ROWID""",
            # Other names of a site: a Woopra project, a Tracify customer site id, the site id
            # existing Clicky or Web Analyzer code sends. Unique across sites.
            """CREATE TABLE site_aliases (
                name       TEXT PRIMARY KEY,
                site_id    INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
                created_at INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX site_aliases_site ON site_aliases(site_id)",
            # 1: the public server-side tracking endpoint (Woopra's) needs a full-access key.
            "ALTER TABLE sites ADD COLUMN secure_tracking INTEGER NOT NULL DEFAULT 0",
        ),
    ),
)

MIGRATIONS += (
    (
        5,
        (
            # All-time totals per path for the leaderboard (pyramid.ALL_TIME = level 9, blocks
            # 0/0), from the daily rollups; the writer keeps them current from here on.
            """INSERT INTO hit_rollup_blocks
                   (site_id, dim, level, utc_block, local_block, value, hits, uniques)
               SELECT site_id, dim, 9, 0, 0, value, SUM(hits), SUM(uniques) FROM hit_rollups
               WHERE dim = 1 GROUP BY site_id, value""",
        ),
    ),
)

MIGRATIONS += (
    (
        6,
        (
            # Revenue per event name (grouped events, goals) reads only events with revenue:
            # without this it scanned every event of the range (~230 ms for 1M events).
            """CREATE INDEX IF NOT EXISTS events_revenue ON events(site_id, created_at)
               WHERE revenue_micros IS NOT NULL""",
        ),
    ),
)

MIGRATIONS += (
    (
        7,
        (
            # Hits are folded into the rollups after their commit (writer.py); every hit so far
            # was counted in its own transaction, so all of them are folded.
            """INSERT OR REPLACE INTO meta (key, value)
               SELECT 'rollups_folded_until', COALESCE(MAX(id), 0) FROM hits""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]
