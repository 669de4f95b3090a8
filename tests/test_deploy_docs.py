"""The deployment files in the README are real: the systemd unit passes `systemd-analyze verify`,
the nginx site `nginx -t`, the Caddyfile `caddy validate`, the TOML file loads as settings.
Each block is taken from the README (after its `<!-- file: NAME -->` marker), so the test
checks exactly what a reader copies. The checkers are Debian packages (systemd, nginx-light,
caddy) that scripts/test installs when missing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinytrack.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def block(name: str) -> str:
    match = re.search(
        rf"<!-- file: {re.escape(name)} -->\n```\w*\n(.*?)\n```", README, flags=re.DOTALL
    )
    assert match, f"README has no block marked <!-- file: {name} -->"
    return match.group(1) + "\n"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert found, f"{name} is not installed (scripts/test installs it on Debian)"
    return found


def test_config_file_loads(tmp_path: Path) -> None:
    conf = tmp_path / "tinytrack.toml"
    conf.write_text(block("tinytrack.toml"))
    settings = Settings.from_env({}, config_file=str(conf))
    assert settings.db == "/var/lib/tinytrack/tinytrack.db"
    assert settings.trusted_proxies == "127.0.0.1,::1"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = block("tinytrack.service")
    assert "ExecStart=/opt/tinytrack/.venv/bin/tinytrack serve" in unit
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    here = Path(sys.executable).parent / "tinytrack"
    path = tmp_path / "tinytrack.service"
    path.write_text(unit.replace("/opt/tinytrack/.venv/bin/tinytrack", str(here)))
    r = subprocess.run(
        [tool("systemd-analyze"), "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # unknown keys are only warnings: none allowed


def test_systemd_verify_would_catch_a_typo(tmp_path: Path) -> None:
    here = Path(sys.executable).parent / "tinytrack"
    path = tmp_path / "tinytrack.service"
    unit = block("tinytrack.service").replace("/opt/tinytrack/.venv/bin/tinytrack", str(here))
    path.write_text(unit.replace("Restart=", "Restrat="))
    r = subprocess.run(
        [tool("systemd-analyze"), "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert "Restrat" in r.stderr


def test_caddyfile_validates(tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(block("Caddyfile"))
    r = subprocess.run(
        [tool("caddy"), "validate", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Valid configuration" in r.stdout + r.stderr


@pytest.mark.parametrize("broken", [False, True])
def test_nginx_site_passes_nginx_t(tmp_path: Path, broken: bool) -> None:
    site = block("nginx-tinytrack.conf")
    # nginx -t opens the certificate files: a throwaway self-signed pair in their place.
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=stats.example.com", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    site = site.replace("/etc/letsencrypt/live/stats.example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/stats.example.com/privkey.pem", str(key))
    if broken:
        site = site.replace("proxy_pass", "proxy_pas")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n{site}}}\n"
    )
    r = subprocess.run(
        [tool("nginx"), "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"),
         "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    if broken:
        assert r.returncode != 0 and "proxy_pas" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
