"""The Python example in docs/filesystem.md runs as written (store paths pointed at tmp)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "filesystem.md"


def test_filesystem_md_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/filesystem.md lost its example"
    code = blocks[-1].split("# Pravega")[
        0
    ]  # the Pravega half needs a server: tests/fs/test_pravega_fs.py
    code = code.replace("/mnt/pv/streams", str(tmp_path / "store")).replace(
        "/tmp/logs-copy", str(tmp_path / "copy")
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.log").write_bytes(b"one\ntwo\n" * 1000)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    fs = scope["fs"]
    assert fs.cat("logs/app") == b"one\ntwo\n" * 1000 + b"more\n"
    assert fs.ls("logs/clicks", detail=False) == ["logs/clicks/0", "logs/clicks/1", "logs/clicks/2"]
    assert (tmp_path / "copy" / "app").read_bytes() == fs.cat("logs/app")
