"""docs/http-api.md's copy-paste block runs as written (on a free port instead of 8089)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import free_ports

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"


def _run(block: str, tmp_path, **extra_env) -> str:
    (port,) = free_ports(1)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra_env}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", block.replace("8089", str(port))], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), re.M | re.S)


def test_copy_paste_block_runs(tmp_path):
    (block,) = [b for b in _blocks() if "serve" in b and not b.startswith("#")]
    out = _run(block, tmp_path)
    assert out.strip().endswith("identical")
    assert '"url":"stream://demo/logs"' in out


def test_requests_block_prints_what_the_docs_show(tmp_path):
    (block,) = [b for b in _blocks() if b.startswith("# requests")]
    text = DOC.read_text()
    shown = text[text.index(block):].split("```text\n", 1)[1].split("```", 1)[0]
    assert _run(block, tmp_path) == shown


def test_download_block_prints_what_the_docs_show(tmp_path, s3_bucket):
    (block,) = [b for b in _blocks() if b.startswith("# download")]
    text = DOC.read_text()
    shown = text[text.index(block):].split("```text\n", 1)[1].split("```", 1)[0]
    assert _run(block, tmp_path, BUCKET=s3_bucket.name, **s3_bucket.server.env) == shown
