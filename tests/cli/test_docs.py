"""docs/cli.md stays a complete reference: every command (its exit codes: test_exit_codes.py)."""

from __future__ import annotations

from pathlib import Path

from stream_backend.cli import main

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_registered_command_is_documented():
    missing = [name for name in main.commands if f"`{name}" not in DOC]
    assert not missing, f"docs/cli.md does not mention: {missing}"
