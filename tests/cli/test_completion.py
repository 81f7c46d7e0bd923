"""Shell completion: the script `completion bash` prints, sourced by a real bash, completes
commands and options the way a user types them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import CLI


def _complete(line: str) -> list[str]:
    """What bash offers for ``line`` with the sourced script (as pressing Tab would)."""
    script = subprocess.run([*CLI, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    words = line.split(" ")
    probe = f"""{script}
COMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}
COMP_POINT=${{#COMP_LINE}}
_stream_backend_completion stream-backend
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    bindir = str(Path(CLI[0]).parent)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_bash_completes_commands_and_options():
    assert _complete("stream-backend ex") == ["export"] and "archives" in _complete("stream-backend ar")
    assert {"--object-lock-mode", "--object-lock-retain-days"} <= set(_complete("stream-backend export --object-lock"))
    assert set(_complete("stream-backend export --object-lock-mode ")) == {"GOVERNANCE", "COMPLIANCE"}


@pytest.mark.parametrize("shell, words", [("zsh", "compdef"), ("fish", "complete")])
def test_zsh_and_fish_scripts(shell, words):
    out = subprocess.run([*CLI, "completion", shell], capture_output=True, text=True, check=True).stdout
    assert words in out and "_STREAM_BACKEND_COMPLETE" in out
