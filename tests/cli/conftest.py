"""CLI fixtures: run ``stream-backend`` in-process (CliRunner) or as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import support


CLI = [support.CLI]


class Runner:
    """Runs the CLI against one store root and checks the no-traceback promise."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {"STREAM_BACKEND_ROOT": str(root)}

    def __call__(self, *args, input=None, code=0):
        from stream_backend.cli import main

        result = CliRunner().invoke(
            main, [str(a) for a in args], input=input, env=self.env, catch_exceptions=False
        )
        out = result.output
        assert "Traceback" not in out, out
        assert result.exit_code == code, f"exit {result.exit_code} != {code}: {out}"
        if code not in (0, 2):  # click's own usage errors (2) print a usage block
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("stream-backend: error: "), result.stderr
        return result

    def proc(self, *args, input=None, code=0, **kwargs):
        """The real executable; ``input`` bytes go to stdin."""
        env = {**os.environ, **self.env}
        p = subprocess.run(
            [*CLI, *map(str, args)],
            input=input,
            capture_output=True,
            env=env,
            timeout=120,
            **kwargs,
        )
        err = p.stderr.decode(errors="replace")
        assert "Traceback" not in err, err
        assert p.returncode == code, f"exit {p.returncode} != {code}: {err}"
        return p


@pytest.fixture
def cli(store_root):
    return Runner(store_root)


@pytest.fixture
def has_shell_tools():
    for tool in ("head", "cmp"):
        assert shutil.which(tool), f"{tool} is needed by the CLI pipe tests"
