"""The README's first command, `bash scripts/demo`, runs the main job on the embedded
local store end to end and says every byte came back. It reuses the suite's .venv (the
demo only creates one when none exists) and a store of its own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_demo_and_it_succeeds(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^bash scripts/demo$", readme, re.M), "README lost its first command"
    env = dict(os.environ, STREAM_BACKEND_ROOT=str(tmp_path / "store"))
    for k in ("DEMO_ARCHIVE", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    p = subprocess.run(["bash", "scripts/demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "every byte came back" in out
    m = re.search(r"identical: (\d+) events", out)
    assert m and int(m.group(1)) > 0, out[-3000:]
