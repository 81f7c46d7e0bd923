"""docs/cli.md stays a complete reference: every command, every exit code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from stream_backend import errors
from stream_backend.cli import main

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_registered_command_is_documented():
    missing = [name for name in main.commands if f"`{name}" not in DOC]
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_every_error_class_and_exit_code_is_in_the_table():
    table = {
        int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| ([^|]*) \|", DOC, re.M)
    }
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.StreamBackendError):
            assert cls.exit_code in table, f"exit code {cls.exit_code} of {name} not in docs/cli.md"
            assert (
                f"`{name}`" in table[cls.exit_code]
            ), f"{name} not listed under exit {cls.exit_code}"
