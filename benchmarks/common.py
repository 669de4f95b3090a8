"""Shared helpers for the benchmark scripts: seeding a database, starting and stopping server
subprocesses, running wrk and reading its report, CPU accounting. Not a benchmark itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
WRK_LUA = HERE / "wrk_post.lua"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def _seed(db: Path, site_url: str, access: str) -> tuple[int, str]:
    from tinytrack.engine import Engine

    engine = await Engine.open(db, maintenance=False)
    try:
        sites = await engine.list_sites()
        site_id = sites[0].id if sites else (await engine.create_site(site_url)).id
        key = await engine.create_key(access, name=f"benchmark ({access})")  # type: ignore[arg-type]
        return site_id, key.token
    finally:
        await engine.close()


def seed_db(
    db: Path, *, access: str = "full_access", site_url: str = "https://example.com"
) -> tuple[int, str]:
    """(site id, new API key) for ``db``: its first site (created if there is none) and a new key
    of the given access type, written through the library."""
    return asyncio.run(_seed(db, site_url, access))


def code_version() -> str:
    """``git describe --always --dirty`` of the working tree being measured."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def tinytrack_serve_cmd(db: Path, port: int) -> list[str]:
    """The real server, started exactly as a user would: ``tinytrack serve`` (uvicorn with
    uvloop + httptools, access log off, one process). The per-key and per-address rate limits
    are disabled (every request comes from 127.0.0.1)."""
    return [
        PYTHON, "-m", "tinytrack", "serve",
        "--db", str(db), "--host", LOOPBACK, "--port", str(port), "--rate-limit", "0",
        "--collector-rate-limit", "0",
    ]


def trivial_serve_cmd(port: int) -> list[str]:
    return [PYTHON, str(HERE / "trivial_app.py"), "--host", LOOPBACK, "--port", str(port)]


@dataclass
class Server:
    """A server subprocess on 127.0.0.1; use as a context manager (always stopped on exit)."""

    name: str
    cmd: list[str]
    port: int
    probe: str = "/api/v1"
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        import tempfile

        self.log = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")[1])
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base + self.probe, timeout=2) as resp:
                    resp.read()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not start in {timeout} s") from None
                time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT (uvicorn's graceful shutdown: the engine commits and closes), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        assert self.proc is not None
        return _stat_cpu_seconds(Path(f"/proc/{self.proc.pid}/stat"))

    def thread_cpu_seconds(self) -> dict[int, float]:
        """User + system CPU time so far of each thread of the server process, by thread id
        (the main thread's id is the process id)."""
        assert self.proc is not None
        out: dict[int, float] = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                out[int(task.name)] = _stat_cpu_seconds(task / "stat")
            except OSError:
                continue  # the thread ended
        return out

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.log is not None:
            self.log.unlink(missing_ok=True)


def _stat_cpu_seconds(stat: Path) -> float:
    """utime + stime of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file, in seconds."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def servers(*items: Server) -> Iterator[tuple[Server, ...]]:
    with contextlib.ExitStack() as stack:
        for item in items:
            stack.enter_context(item)
        yield items


# -------------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    statuses: dict[int, int]
    non_2xx: int
    socket_errors: str | None
    latency_ms: dict[str, float]
    wrk_cpu_seconds: float
    server_cpu_seconds: float | None = None
    raw: str = ""

    def problems(self, expected_status: int) -> list[str]:
        out = []
        other = {s: n for s, n in self.statuses.items() if s != expected_status}
        if other:
            out.append(f"unexpected statuses {other}")
        if self.non_2xx:
            out.append(f"{self.non_2xx} non-2xx responses")
        if self.socket_errors:
            out.append(f"socket errors: {self.socket_errors}")
        if not self.statuses:
            out.append("no responses counted")
        return out


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("error: wrk not found. Install it with:  apt-get update && apt-get install -y wrk")
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str,
    *,
    bodies: Path,
    path: str,
    token: str,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout: str = "10s",
    server: Server | None = None,
    headers: Sequence[str] = (),
) -> WrkResult:
    """POST the bodies of ``bodies`` (one JSON document per line, cycled) to ``url`` + ``path``
    with wrk for ``seconds``; counts every response status through the Lua script. ``token``
    "-" sends no Authorization header; ``headers`` ("Name: value") are added to every request."""
    wrk = require_wrk()
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout}", "--latency", "-s", str(WRK_LUA), url,
        "--", str(bodies), path, token, *headers,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server.cpu_seconds() if server else None
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    cpu1 = server.cpu_seconds() if server else None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not total or not rps:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    duration = float(total.group(2)) * {"s": 1.0, "ms": 0.001, "m": 60.0}.get(total.group(3), 1.0)
    statuses = {
        int(code): int(n) for code, n in re.findall(r"(\d{3})=(\d+)", _line(out, "STATUS"))
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:\s+(.+)", out)
    latency = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        if m:
            latency[f"p{pct}"] = _ms(m.group(1))
    return WrkResult(
        requests=int(total.group(1)),
        seconds=duration,
        rps=float(rps.group(1)),
        statuses=statuses,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sock.group(1).strip() if sock else None,
        latency_ms=latency,
        wrk_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        server_cpu_seconds=(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        raw=out,
    )


def _line(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line
    return ""


# -------------------------------------------------------------------------------------------------
# statistics and output


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def machine_line() -> str:
    import platform

    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} | {os.cpu_count()} CPUs | "
        f"Python {platform.python_version()} | tinytrack tree {code_version()}"
    )
