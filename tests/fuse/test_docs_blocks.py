"""The admin guide's read-write block runs as written (it mounted one scope in the
foreground, so the next line never ran, then `mkdir`ed a scope inside a scope)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .mounting import CLI

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md"


def _block(after: str) -> str:
    text = GUIDE.read_text()
    start = text.index("```sh\n", text.index(after)) + len("```sh\n")
    return text[start:text.index("```", start)]


def test_read_write_block_runs_as_written(mountdir, store_root, tmp_path):
    block = _block("### Read-write mounts")
    mnt = mountdir()
    script = block.replace("/mnt/streams", str(mnt)).replace("stream-backend ", f"{CLI} ")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.log").write_text("first line\n")
    (work / "more.log").write_text("second line\n")
    env = {**os.environ, "STREAM_BACKEND_ROOT": str(store_root)}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "one more line" in p.stdout.splitlines()  # the tail of what was appended
    assert not os.path.ismount(mnt)
    assert (store_root / "demo").is_dir() and not (store_root / "demo" / "applog").exists()
    assert re.search(r"stream-backend mount --background", block)
