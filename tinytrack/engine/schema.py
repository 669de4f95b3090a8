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

LATEST_VERSION = MIGRATIONS[-1][0]
