"""The README's test command is the one CI runs, and its run command names a real script."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = ci.strip().splitlines()[-1]
    assert test_command.startswith("python3.11 -m venv .venv")
    assert test_command in readme


def test_readme_run_command_is_the_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(row for row in readme.splitlines() if row.startswith("python3.11 -m venv"))
    assert line.endswith(".venv/bin/hypersearch demo")
    assert "'.[demo]'" in line
