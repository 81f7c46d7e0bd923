"""docs/cli.md's exit-code table is what the code does: every error class it names has
that code, every error class of the tool is in the table, and the main help lists the
same codes. (The commands' behaviour for each code is tested where the code arises:
tests/transfer/test_first_hour.py, test_disk_errors.py, test_verify_against.py, ...)"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from click.testing import CliRunner

from stream_backend import errors
from stream_backend.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _table() -> dict[int, set[str]]:
    text = DOC.read_text()
    section = text[text.index("## Exit codes"):]
    section = section[: section.index("\n## ", 3)]
    rows = {}
    for m in re.finditer(r"^\| (\d+) \| ([^|]*) \|", section, re.M):
        rows[int(m.group(1))] = set(re.findall(r"`(\w+)`", m.group(2)))
    return rows


def test_every_error_class_has_the_code_the_table_gives():
    table = _table()
    classes = {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, errors.StreamBackendError)}
    listed = set()
    for code, names in table.items():
        for name in names:
            assert name in classes, f"docs/cli.md names {name}, which errors.py does not have"
            assert classes[name].exit_code == code, f"{name} exits {classes[name].exit_code}, docs say {code}"
            listed.add(name)
    assert set(classes) == listed, f"not in docs/cli.md: {sorted(set(classes) - listed)}"


def test_main_help_lists_the_table_codes():
    out = CliRunner().invoke(main, ["--help"]).output
    listed = {int(c) for c in re.findall(r"\b(\d{1,3})\b", out[out.index("Exit codes"):])}
    table = set(_table()) - {1, 130}  # 1: any other failure; 130: Ctrl-C outside a transfer
    assert table <= listed, sorted(table - listed)
