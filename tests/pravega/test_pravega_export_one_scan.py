"""Exporting a multi-segment Pravega stream reads it through one reader-group scan for
all segments, not one full scan per segment (the client cannot read one segment alone,
so per-segment reads cost the stream's size once per segment)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stream_backend.errors import Paused
from stream_backend.stores.pravega import PravegaStore
from stream_backend.transfer.export import ExportOptions, export_stream
from stream_backend.transfer.progress import Progress
from stream_backend.transfer.signals import PauseRequest
from stream_backend.transfer.targets import Target

CLI = str(Path(sys.executable).parent / "stream-backend")


def _fill(store, prefix: str, segments: int, events: int, keys: int) -> str:
    """A new scope with stream ``m`` of ``segments`` segments; returns the scope."""
    sc = f"{prefix}-{uuid.uuid4().hex[:8]}"
    store.create_stream(sc, "m", segments=segments)
    with store.writer(sc, "m") as w:
        for i in range(events):
            w.append(f"event-{i}-".encode() * (1 + i % 7), f"key-{i % keys}")
    return sc


def test_multi_segment_export_scans_once_and_archives_every_segment(pravega_server, tmp_path):
    s = PravegaStore(controller=pravega_server.controller, timeout=30)
    try:
        sc = _fill(s, "one", segments=4, events=400, keys=31)
        want = [[hashlib.sha256(e.payload).digest() for e in s.read_events(sc, "m", k)] for k in range(4)]
    finally:
        s.close()
    assert sum(1 for w in want if w) >= 3  # the keys spread over the segments
    env = dict(os.environ, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_PRAVEGA_DEBUG="1",
               STREAM_BACKEND_ROOT=str(tmp_path / "root"))
    p = subprocess.run([CLI, "export", f"pravega://{sc}/m", f"file://{tmp_path}/a", "--object-size", "4KiB",
                        "--progress", "none"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    scans = p.stderr.count("op mscan_open")
    assert scans == 2, f"{scans} scans: one for the offset index (totals), one for the data expected"
    # --parallel bounds the segments packed at once (memory): 4 segments, 2 at a time
    p = subprocess.run([CLI, "export", f"pravega://{sc}/m", f"file://{tmp_path}/b", "--object-size", "4KiB",
                        "--parallel", "2", "--progress", "none"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("op mscan_open") == 3  # the index, then one scan per pair
    env.pop("STREAM_BACKEND_PRAVEGA_DEBUG")
    for a in ("a", "b"):
        v = subprocess.run([CLI, "verify", f"file://{tmp_path}/{a}", "--against", f"pravega://{sc}/m"], env=env,
                           capture_output=True, text=True, timeout=300)
        assert v.returncode == 0, v.stderr[-3000:]


def test_pause_during_the_one_scan_export_resumes_to_the_same_archive(pravega_server, tmp_path):
    """A pause while the segments export together stops every share, saves each
    checkpoint, and the resumed export writes the same archive as an uninterrupted one."""
    s = PravegaStore(controller=pravega_server.controller, timeout=30)
    try:
        sc = _fill(s, "onep", segments=3, events=600, keys=17)
        opts = ExportOptions(object_size=2048, part_size=8 * 1024 * 1024)
        export_stream(s, sc, "m", Target(f"file://{tmp_path}/ref"), opts, PauseRequest(), Progress("export", "none"))
        pause = PauseRequest()

        class PauseAfterSomeObjects(Progress):
            def add_done(self, events, nbytes, resumed=False):
                super().add_done(events, nbytes, resumed)
                if not resumed and self.done_events > 150:
                    pause.request()

        target = Target(f"file://{tmp_path}/got")
        with pytest.raises(Paused):
            export_stream(s, sc, "m", target, opts, pause, PauseAfterSomeObjects("export", "none"))
        done = export_stream(s, sc, "m", target, opts, PauseRequest(), Progress("export", "none"))
        assert done["complete"] and done["run"] == 1
    finally:
        s.close()

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.relative_to(root).parts[0] in ("data", "runs")}

    ref, got = files(tmp_path / "ref"), files(tmp_path / "got")
    assert ref and got == ref
