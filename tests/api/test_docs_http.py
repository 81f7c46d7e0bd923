"""docs/http.md's copy-paste block runs as written (on a free port instead of 8089)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import free_ports

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def test_copy_paste_block_runs(tmp_path):
    (block,) = [b for b in re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), re.M | re.S) if "serve" in b]
    (port,) = free_ports(1)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", block.replace("8089", str(port))], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().endswith("identical")
    assert '"url":"stream://demo/logs"' in p.stdout
