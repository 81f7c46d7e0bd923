"""The native client's wheel is abi3: the one built for 3.11 works on a newer Python too.
A fresh Python 3.13 (or 3.12) virtualenv gets it from scripts/native-build (the cached wheel, no
build) and writes, reads and scales a stream with it on the test server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _newer_python() -> str | None:
    """A working Python 3.12+ (PATH, then pyenv's versions: its shims may not select one)."""
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for name in ("python3.13", "python3.12"):
        cands = [shutil.which(name), *sorted(glob.glob(f"{pyenv}/versions/3.1[23].*/bin/{name}"), reverse=True)]
        for c in filter(None, cands):
            if subprocess.run([c, "-c", "import venv"], capture_output=True).returncode == 0:
                return c
    return None

PROBE = """
import sys, sb_pravega
c = sb_pravega.Client(sys.argv[1])
scope = sys.argv[2]
c.create_scope(scope)
c.create_stream(scope, "s", ("fixed", 0, 0, 2), ("none", 0), ["probe"])
w = c.writer(scope, "s")
w.write([(b"e%d" % i, "k%d" % (i % 5)) for i in range(100)] + [(b"", "k0")])
w.flush()
w.close()
segs = c.current_segments(scope, "s")
events = 0
for sid, _lo, _hi in segs:
    start, end, sealed = c.segment_info(scope, "s", sid)
    nxt, seqs, lens = c.scan_segment(scope, "s", sid, start, end)
    assert nxt == end and not sealed
    events += len(seqs)
c.scale_stream(scope, "s", [s for s, _l, _h in segs], [(0.0, 0.3), (0.3, 0.6), (0.6, 1.0)])
assert len(c.current_segments(scope, "s")) == 3
c.seal_stream(scope, "s")
c.delete_stream(scope, "s")
c.delete_scope(scope)
print(sys.version_info[:2], events)
"""


def test_the_wheel_works_on_a_newer_python(pravega_server, tmp_path):
    newer = _newer_python()
    assert newer, "no Python 3.12 or 3.13 found: the abi3 wheel must be tried on a Python newer than 3.11"
    venv = tmp_path / "venv"
    subprocess.run([newer, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(["bash", str(ROOT / "scripts" / "native-build"), str(py)], check=True, timeout=3600)
    p = subprocess.run([str(py), "-c", PROBE, pravega_server.controller, f"wheel{uuid.uuid4().hex[:8]}"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split()[-1] == "101" and p.stdout.split()[0] == "(3,"
    assert sys.version_info[:2] == (3, 11)  # and the suite itself runs on 3.11
