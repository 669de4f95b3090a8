"""The README stays true: its two set-up commands, its library example, every --help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinytrack.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SERVE_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/tinytrack serve"
TEST_COMMAND = "bash scripts/test"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_has_exactly_the_two_setup_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)
    assert [b.strip() for b in blocks[:2]] == [SERVE_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/test" in ci
    script = (ROOT / "scripts" / "test").read_text()
    assert "pytest" in script and '"$status" -eq 5' in script


def test_library_example_runs_and_prints_what_the_readme_says() -> None:
    example = next(b for b in code_blocks("python") if "tinytrack.open" in b)
    expected = re.search(r"^# (\[.*\])$", example, flags=re.M)
    assert expected is not None
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == expected.group(1)


def test_events_kudos_leaderboard_journeys_example_runs() -> None:
    example = next(b for b in code_blocks("python") if "record_event" in b)
    subprocess.run([sys.executable, "-c", example], timeout=60, check=True)


def test_testing_helper_example_runs() -> None:
    example = next(b for b in code_blocks("python") if "tinytrack.testing" in b)
    subprocess.run([sys.executable, "-c", example], timeout=60, check=True)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve"],
        ["config"],
        ["site"],
        ["key"],
        *[[group, action] if action else [group] for group, action in COMMANDS],
    ],
)
def test_every_command_has_help(argv: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "tinytrack", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "usage: tinytrack" in r.stdout
    if (argv and argv[0] in ("serve", "site", "key") and len(argv) == 2) or (
        argv and argv[0] not in ("site", "key")
    ):
        assert "--db" in r.stdout


def test_readme_mentions_every_cli_command() -> None:
    for group, action in COMMANDS:
        assert (
            f"tinytrack {group} {action}" in README if action else f"tinytrack {group} " in README
        )
    assert "tinytrack serve" in README
    assert "tinytrack config" in README
