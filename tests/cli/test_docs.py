"""docs/cli.md stays a complete reference: every command (its exit codes: test_exit_codes.py)
and every environment variable."""

from __future__ import annotations

from pathlib import Path

from stream_backend.cli import main

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_registered_command_is_documented():
    missing = [name for name in main.commands if f"`{name}" not in DOC]
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_every_environment_variable_is_documented():
    """docs/cli.md's Environment table names every variable settings.py defines, with the
    default settings.py uses."""
    import re

    from stream_backend import settings

    table = DOC[DOC.index("## Environment"):DOC.index("## Exit codes")]
    names = {v for k, v in vars(settings).items() if k.endswith("_ENV") and isinstance(v, str)}
    names |= set(settings.S3_ENDPOINT_ENVS) | {var for var, _d, _l in settings.DURATIONS.values()}
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, missing
    for var, default, _least in settings.DURATIONS.values():
        row = next(line for line in table.splitlines() if f"`{var}`" in line)
        assert re.search(rf"\| {default:g} \|", row), (var, default, row)
    assert f"`{settings.DEFAULT_CONTROLLER}`" in table and f"| {settings.DEFAULT_TIMEOUT:g} |" in table
