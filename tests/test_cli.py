"""The CLI through real subprocesses on a real database file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import tinytrack
from tinytrack.cli import next_steps
from tinytrack.config import Settings


def run(db: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "tinytrack", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def test_site_and_key_lifecycle_with_json(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    site = json.loads(
        run(
            db,
            "site",
            "add",
            "example.com",
            "--label",
            "Blog",
            "--timezone",
            "Europe/Warsaw",
            "--json",
        ).stdout
    )
    assert site["id"] == 1 and len(site["uid"]) == 10
    assert site["url"] == "https://example.com" and site["timezone"] == "Europe/Warsaw"
    listed = json.loads(run(db, "site", "list", "--json").stdout)
    assert [s["uid"] for s in listed] == [site["uid"]]

    ro = json.loads(run(db, "key", "create", "--name", "reports", "--json").stdout)
    fa = json.loads(run(db, "key", "create", "--full-access", "--json").stdout)
    assert ro["key"].startswith("tt-ro-") and ro["access_type"] == "read_only"
    assert fa["key"].startswith("tt-fa-") and fa["access_type"] == "full_access"
    keys = json.loads(run(db, "key", "list", "--json").stdout)
    assert {k["prefix"] for k in keys} == {ro["prefix"], fa["prefix"]}
    assert all("key" not in k and "token_hash" not in k for k in keys)
    assert ro["key"] not in db.read_bytes().decode("latin-1")  # stored hashed only

    revoked = json.loads(run(db, "key", "revoke", ro["prefix"], "--json").stdout)
    assert revoked["revoked_at"] is not None
    text = run(db, "key", "list").stdout
    assert "revoked" in text and "reports" in text


def test_human_output_tells_what_to_do_next(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = run(db, "site", "add", "https://example.com").stdout
    assert "id:  1" in out and "uid:" in out and "key create --full-access" in out
    out = run(db, "key", "create", "--full-access").stdout
    assert "tt-fa-" in out and "shown only this once" in out


def test_next_steps_for_a_new_user() -> None:
    text = next_steps(Settings(), sites=0, keys=0)
    assert "site add https://example.com" in text
    assert "key create --full-access" in text
    assert "curl -X POST http://127.0.0.1:8000/api/v1/sites/1/hits" in text


def test_errors_are_clear_with_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    r = run(db, "site", "add", "https://example.com", "--timezone", "Mars/Olympus", ok=False)
    assert r.returncode == 2
    assert "error: Unknown time zone" in r.stderr and "Traceback" not in r.stderr
    r = run(db, "key", "revoke", "tt-ro-nothere", ok=False)
    assert r.returncode == 3
    assert "error: API key not found" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tinytrack", "key", "create", "--read-only", "--full-access"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_env_variable_sets_the_database(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    r = subprocess.run(
        [sys.executable, "-m", "tinytrack", "site", "add", "https://a.example", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TINYTRACK_DB": str(db), "PATH": ""},
    )
    assert r.returncode == 0, r.stderr
    assert db.exists()


def test_leaderboard_and_kudos_commands(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    site = json.loads(run(db, "site", "add", "https://example.com", "--json").stdout)

    async def seed() -> None:
        async with tinytrack.open(db) as engine:
            for path in ["/blog/a", "/blog/a", "/about", "/Blog/B"]:
                await engine.record_hit(site["id"], tinytrack.HitIn(path=path))
            await engine.create_kudo(site["id"], tinytrack.KudoIn(path="/blog/a", custom_uid="k1"))

    asyncio.run(seed())
    board = json.loads(run(db, "leaderboard", "--site", site["uid"], "--json").stdout)
    assert [(r["path"], r["total_hits"]) for r in board["leaderboard"]] == [
        ("/blog/a", 2),
        ("/Blog/B", 1),
        ("/about", 1),
    ]
    text = run(db, "leaderboard", "--site", str(site["id"]), "--path", "blog").stdout
    assert "/blog/a" in text and "/Blog/B" in text and "/about" not in text
    assert "50.00%" in text
    kudos = json.loads(run(db, "kudos", "--site", str(site["id"]), "--json").stdout)
    assert [k["uid"] for k in kudos["kudos"]] == ["k1"]
    assert "k1" in run(db, "kudos", "--site", str(site["id"])).stdout
    r = run(db, "kudos", "--site", "nope", ok=False)
    assert r.returncode == 3 and "no site" in r.stderr
    r = run(db, "leaderboard", "--site", "1", "--limit", "5000", ok=False)
    assert r.returncode == 2 and "per_page" in r.stderr
