"""Settings: flags > TINYTRACK_* variables > TOML config file > defaults, and `tinytrack config`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tinytrack import cli
from tinytrack.config import Settings
from tinytrack.errors import InvalidParameter


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tinytrack.toml"
    path.write_text(text)
    return str(path)


def test_precedence(tmp_path: Path) -> None:
    conf = write(tmp_path, 'port = 9001\nhost = "0.0.0.0"\nrate_limit = 5\ndb = "/srv/a.db"\n')
    env = {"TINYTRACK_CONFIG": conf, "TINYTRACK_RATE_LIMIT": "7", "TINYTRACK_HOST": "::"}
    settings, sources = Settings.resolve(env, host="127.0.0.2")
    assert (settings.port, settings.rate_limit, settings.host, settings.db) == (
        9001,
        7,
        "127.0.0.2",
        "/srv/a.db",
    )
    assert sources["port"] == f"config file {conf}"
    assert sources["rate_limit"] == "environment TINYTRACK_RATE_LIMIT"
    assert sources["host"] == "command line"
    assert sources["log_level"] == "default"
    # --config beats TINYTRACK_CONFIG
    other = str(tmp_path / "other.toml")
    Path(other).write_text("port = 7000\n")
    assert Settings.from_env(env, config_file=other).port == 7000


def test_trusted_proxies_as_a_list(tmp_path: Path) -> None:
    conf = write(tmp_path, 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n')
    assert Settings.from_env({}, config_file=conf).trusted_proxies == "127.0.0.1,10.0.0.0/8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown setting 'prot'"),
        ('port = "80"\n', "port must be a number"),
        ("host = 5\n", "host must be a string"),
        ("port = \n", "not valid TOML"),
        ("\x00\xff", "not valid TOML"),
        ("port = 70000\n", "port must be between"),
        ('trusted_proxies = ["x"]\n', "not an IP address"),
        ("trusted_proxies = [1]\n", "must list strings"),
        ('log_level = "loud"\n', "log_level must be one of"),
    ],
)
def test_bad_config_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    conf = write(tmp_path, text)
    with pytest.raises(InvalidParameter, match=message):
        Settings.from_env({}, config_file=conf)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="does not exist"):
        Settings.from_env({}, config_file=str(tmp_path / "nope.toml"))


def test_config_command_prints_effective_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path, "port = 9001\n")
    monkeypatch.setenv("TINYTRACK_COLLECTOR_RATE_LIMIT", "40")
    assert cli.main(["config", "--config", conf, "--host", "0.0.0.0"]) == 0
    text = capsys.readouterr().out
    assert 'host = "0.0.0.0"' in text and "# command line" in text
    assert "port = 9001" in text and f"# config file {conf}" in text
    assert "collector_rate_limit = 40" in text
    assert cli.main(["config", "--json", "--config", conf]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["port"] == 9001
    assert data["sources"]["collector_rate_limit"] == "environment TINYTRACK_COLLECTOR_RATE_LIMIT"
    assert cli.main(["config", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_secrets_are_masked() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithSecret(Settings):
        admin_password: str = ""

    assert WithSecret(admin_password="hunter2").masked()["admin_password"] == "***"
    assert WithSecret().masked()["admin_password"] == ""
    assert Settings().masked()["db"] == "tinytrack.db"
