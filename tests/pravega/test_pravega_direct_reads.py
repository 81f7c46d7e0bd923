"""Reads that do not scan: one segment of a Pravega stream is read alone, straight from
the segment store, and an export reads each segment's bytes once."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from stream_backend.errors import Paused
from stream_backend.stores.pravega import PravegaStore
from stream_backend.transfer.export import ExportOptions, export_stream
from stream_backend.transfer.progress import Progress
from stream_backend.transfer.signals import PauseRequest
from stream_backend.transfer.targets import open_target

from support import CLI
from support.transfer import archive_files, pausing_progress



def _fill(store, prefix: str, segments: int, events: int, keys: int) -> str:
    """A new scope with stream ``m`` of ``segments`` segments; returns the scope."""
    sc = f"{prefix}-{uuid.uuid4().hex[:8]}"
    store.create_stream(sc, "m", segments=segments)
    with store.writer(sc, "m") as w:
        for i in range(events):
            w.append(f"event-{i}-".encode() * (1 + i % 7), f"key-{i % keys}")
    return sc


class _Counting(PravegaStore):
    """Counts the bytes each segment-store call asks for, per segment id."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.asked: dict[int, int] = {}

    def _call_on(self, target, op, *args, **kw):
        got = super()._call_on(target, op, *args, **kw)
        if op == "read_segment":
            self.asked[args[2]] = self.asked.get(args[2], 0) + len(got)
        elif op == "scan_segment":
            self.asked[args[2]] = self.asked.get(args[2], 0) + (got[0] - args[3])
        return got


def test_one_segment_is_read_alone_and_an_export_reads_each_segment_once(pravega_server, tmp_path):
    s = _Counting(controller=pravega_server.controller, timeout=30)
    try:
        sc = _fill(s, "one", segments=4, events=400, keys=31)
        info = s.stream_info(sc, "m")
        sizes = {seg.segment: seg.tail_seq - seg.head_seq for seg in info.segments}
        assert sum(1 for v in sizes.values() if v) >= 3  # the keys spread over the segments
        s.asked.clear()
        data = b"".join(e.payload for e in s.read_events(sc, "m", 2))
        assert set(s.asked) == {2} and s.asked[2] == sizes[2]  # segment 2, once, nothing else
        assert s.read_range(sc, "m", 2, 10, 100) == data[10:110]
        s.asked.clear()
        done = export_stream(s, sc, "m", open_target(f"file://{tmp_path}/a"), ExportOptions(object_size=4096),
                             PauseRequest(), Progress("export", "none"))
        assert done["complete"] and done["events"] == 400
        # each segment's bytes once for the data (its offset index is already in memory)
        assert {k: v for k, v in s.asked.items() if v} == {k: v for k, v in sizes.items() if v}
    finally:
        s.close()
    env = dict(os.environ, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_ROOT=str(tmp_path / "root"))
    v = subprocess.run([CLI, "verify", f"file://{tmp_path}/a", "--against", f"pravega://{sc}/m"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert v.returncode == 0, v.stderr[-3000:]


def test_pause_during_a_multi_segment_export_resumes_to_the_same_archive(pravega_server, tmp_path):
    """A pause while the segments export in parallel stops every share, saves each
    checkpoint, and the resumed export writes the same archive as an uninterrupted one."""
    s = PravegaStore(controller=pravega_server.controller, timeout=30)
    try:
        sc = _fill(s, "onep", segments=3, events=600, keys=17)
        opts = ExportOptions(object_size=2048, part_size=8 * 1024 * 1024)
        export_stream(s, sc, "m", open_target(f"file://{tmp_path}/ref"), opts, PauseRequest(), Progress("export", "none"))
        pause = PauseRequest()

        target = open_target(f"file://{tmp_path}/got")
        with pytest.raises(Paused):
            export_stream(s, sc, "m", target, opts, pause, pausing_progress(pause, 150))
        done = export_stream(s, sc, "m", target, opts, PauseRequest(), Progress("export", "none"))
        assert done["complete"] and done["run"] == 1
    finally:
        s.close()

    ref, got = archive_files(tmp_path / "ref"), archive_files(tmp_path / "got")
    assert ref and got == ref
