"""Static guarantees: typed, lint-clean, and the engine knows no HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_does_not_import_litestar() -> None:
    code = (
        "import sys, tinytrack, tinytrack.engine, tinytrack.cli;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('litestar', 'uvicorn')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_server_writes_no_sql() -> None:
    for path in (ROOT / "tinytrack" / "server").rglob("*.py"):
        text = path.read_text().upper()
        for keyword in ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "AIOSQLITE", "SQLITE3"):
            assert keyword not in text, (path, keyword)


def test_mypy_strict() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "tinytrack"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "tinytrack", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
