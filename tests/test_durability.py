"""A hit acknowledged with 2xx survives kill -9 of a real server process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import tinytrack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(db: Path) -> tuple[int, str]:
    async with tinytrack.open(db) as engine:
        site = await engine.create_site("https://example.com")
        key = await engine.create_key("full_access")
        return site.id, key.token


def start_server(db: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinytrack",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--rate-limit",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        "server did not start: " + (proc.stdout.read() if proc.stdout else b"").decode()
    )


@pytest.mark.slow
def test_acknowledged_hits_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "tinytrack.db"
    site_id, key = asyncio.run(seed(db))
    port = free_port()
    proc = start_server(db, port)
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        url = f"http://127.0.0.1:{port}/api/v1/sites/{site_id}/hits"
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
            i = 0
            while not stop.is_set() and i < 5000:
                i += 1
                try:
                    r = http.post(url, json={"path": f"/c{n}/{i}", "ip_address": "8.8.8.8"})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json()["hit"]["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # while requests are still in flight
        proc.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    assert len(acked) >= 300
    conn = sqlite3.connect(db)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM hits")}
        (rolled,) = conn.execute(
            "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE dim = 0"
        ).fetchone()
        (folded,) = conn.execute(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rollups_folded_until'"
        ).fetchone()
    finally:
        conn.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged hits lost"
    # Each fold is one transaction: the rollups hold exactly the hits up to the fold mark.
    assert rolled == sum(1 for hit_id in stored if hit_id <= folded)

    # and the same file serves again at once
    proc = start_server(db, port)
    try:
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/sites/{site_id}",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.json()["lifetime_hits"] == len(stored)  # what the crash left is folded
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        if proc.stdout:
            proc.stdout.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (rolled,) = conn.execute(
            "SELECT COALESCE(SUM(hits), 0) FROM hit_rollups WHERE dim = 0"
        ).fetchone()
    assert rolled == len(stored)


@pytest.mark.slow
def test_sigterm_drains_commits_checkpoints_and_exits_0(tmp_path: Path) -> None:
    """The graceful stop a service manager does: stop accepting, finish in-flight requests,
    commit every acknowledged write, checkpoint the WAL, exit 0; the file serves again."""
    db = tmp_path / "tinytrack.db"
    site_id, key = asyncio.run(seed(db))
    port = free_port()
    proc = start_server(db, port)
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        url = f"http://127.0.0.1:{port}/api/v1/sites/{site_id}/hits"
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
            i = 0
            while not stop.is_set() and i < 5000:
                i += 1
                try:
                    r = http.post(url, json={"path": f"/c{n}/{i}", "ip_address": "8.8.8.8"})
                except httpx.HTTPError:
                    return  # the server stopped accepting
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json()["hit"]["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # while requests are still in flight
        code = proc.wait(timeout=30)  # the bound: uvicorn's 10 s grace + closing the engine
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    assert code == 0
    assert len(acked) >= 300
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed into the main file
    conn = sqlite3.connect(db)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM hits")}
    finally:
        conn.close()
    assert not set(acked) - stored, "acknowledged hits lost"

    proc = start_server(db, port)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert r.status_code == 200 and r.json()["database"] == "writable"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        if proc.stdout:
            proc.stdout.close()
