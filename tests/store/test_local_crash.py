"""Local store crash safety: kill -9 of a writer, torn tails, corruption never served."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream_backend.errors import CorruptionError
from stream_backend.stores.local import records
from stream_backend.stores.local import LocalStore

sys.path.insert(0, str(Path(__file__).parent))
from _child_writer import payload  # noqa: E402

CHILD = str(Path(__file__).parent / "_child_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _check_stream(root, scope, stream) -> int:
    """Every event present equals the deterministic payload of its seq; return count."""
    s = LocalStore(root=str(root))
    try:
        n = 0
        for e in s.read_events(scope, stream, 0):
            assert e.seq == n
            assert e.payload == payload(n), f"event {n} differs"
            assert e.routing_key == f"k{n % 3}"
            n += 1
        info = s.segment_info(scope, stream, 0)
        assert info.tail_seq == n
        assert info.length == sum(len(payload(i)) for i in range(n))
        return n
    finally:
        s.close()


def _first_line(proc, timeout: float) -> str:
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if r else ""


@pytest.mark.slow
def test_kill9_loses_nothing_acknowledged(tmp_path):
    root = tmp_path / "store"
    s = LocalStore(root=str(root))
    s.create_stream("crash", "s")
    s.close()
    rng = random.Random(20261125)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    acked_total = 0
    kills = 0
    for round_ in range(24):
        proc = subprocess.Popen(
            [sys.executable, CHILD, str(root), "crash", "s", str(rng.randrange(1 << 30))],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            first = _first_line(proc, 60)
            assert first.startswith("ready"), f"child did not start: {first!r}"
            assert int(first.split()[1]) >= acked_total
            time.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            kills += 1
            proc.wait(10)
            lines = [l for l in proc.stdout.read().decode().split("\n") if l.startswith("ack")]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if lines:
            acked_total = max(acked_total, int(lines[-1].split()[1]))
        present = _check_stream(root, "crash", "s")
        assert (
            present >= acked_total
        ), f"round {round_}: {acked_total} acknowledged, {present} present"
    assert kills >= 20
    assert acked_total > 100, acked_total
    # a new writer appends after all that
    s = LocalStore(root=str(root))
    n = s.segment_info("crash", "s", 0).tail_seq
    with s.writer("crash", "s") as w:
        w.append(payload(n), routing_key=f"k{n % 3}", segment=0)
    s.close()
    assert _check_stream(root, "crash", "s") == n + 1


def _log(root, scope, stream, seg=0) -> Path:
    return Path(root) / scope / stream / f"segment-{seg:06d}.log"


def _idx(root, scope, stream, seg=0) -> Path:
    return Path(root) / scope / stream / f"segment-{seg:06d}.idx"


def _fill(root, n=200, scope="sc", stream="st"):
    s = LocalStore(root=str(root))
    s.create_stream(scope, stream)
    with s.writer(scope, stream) as w:
        for i in range(n):
            w.append(payload(i), routing_key=f"k{i % 3}")
    s.close()


@pytest.mark.parametrize("cut", [1, 10, records.HEADER_SIZE, records.HEADER_SIZE + 5, -1])
def test_torn_tail_is_truncated_on_writer_open(tmp_path, cut):
    root = tmp_path / "r"
    _fill(root, 50)
    log = _log(root, "sc", "st")
    good = log.stat().st_size
    rec = records.encode(payload(50) or b"x", b"k2", 50, sum(len(payload(i)) for i in range(50)), 1)
    torn = rec[:cut] if cut > 0 else rec[:-1]
    with open(log, "ab") as f:
        f.write(torn)
    # readers treat the torn tail as "not there yet"
    s = LocalStore(root=str(root))
    assert s.segment_info("sc", "st", 0).tail_seq == 50
    assert [e.payload for e in s.read_events("sc", "st", 0)] == [payload(i) for i in range(50)]
    # the writer cuts it off and appends after the last good record
    with s.writer("sc", "st") as w:
        assert log.stat().st_size == good
        w.append(payload(50), routing_key="k2")
    s.close()
    assert _check_stream(root, "sc", "st") == 51


def test_torn_tail_with_bad_checksum_past_committed(tmp_path):
    """A complete-looking record past the acknowledged end with a bad checksum is torn."""
    root = tmp_path / "r"
    _fill(root, 20)
    log = _log(root, "sc", "st")
    rec = bytearray(
        records.encode(payload(20), b"k2", 20, sum(len(payload(i)) for i in range(20)), 1)
    )
    rec[-1] ^= 0xFF
    with open(log, "ab") as f:
        f.write(rec)
    s = LocalStore(root=str(root))
    assert s.segment_info("sc", "st", 0).tail_seq == 20
    with s.writer("sc", "st") as w:
        w.append(payload(20), routing_key="k2")
    s.close()
    assert _check_stream(root, "sc", "st") == 21


def test_zero_filled_tail_without_index(tmp_path):
    root = tmp_path / "r"
    _fill(root, 20)
    with open(_log(root, "sc", "st"), "ab") as f:
        f.write(b"\0" * 5000)
    _idx(root, "sc", "st").unlink()
    s = LocalStore(root=str(root))
    with s.writer("sc", "st") as w:
        w.append(payload(20), routing_key="k2")
    s.close()
    assert _check_stream(root, "sc", "st") == 21


@pytest.mark.parametrize("where", ["payload", "header", "last"])
def test_corruption_is_never_served(tmp_path, where):
    root = tmp_path / "r"
    _fill(root, 200)
    log = _log(root, "sc", "st")
    data = bytearray(log.read_bytes())
    # find record boundaries
    starts, o = [], 0
    while o < len(data):
        starts.append(o)
        o += records.extent(data, o)
    victim = {"payload": 100, "header": 120, "last": 199}[where]
    while not payload(victim):
        victim -= 1
    p = starts[victim]
    flip = p + records.HEADER_SIZE + 2 + len(payload(victim)) // 2 if where != "header" else p + 9
    data[flip] ^= 0x40
    log.write_bytes(bytes(data))
    foff = sum(len(payload(i)) for i in range(victim))

    s = LocalStore(root=str(root))
    try:
        got = []
        with pytest.raises(CorruptionError) as ei:
            for e in s.read_events("sc", "st", 0):
                got.append(e.payload)
        assert "sc/st" in str(ei.value) and "segment 0" in str(ei.value)
        assert got == [payload(i) for i in range(len(got))]
        assert len(got) <= victim
        with pytest.raises(CorruptionError):
            s.read_range("sc", "st", 0, foff, 1)
        with pytest.raises(CorruptionError):
            s.read_range("sc", "st", 0, 0, foff + 10**6)
        # bytes elsewhere are still served
        assert s.read_range("sc", "st", 0, 0, 100) == b"".join(payload(i) for i in range(200))[:100]
        # a writer never truncates acknowledged (corrupt) data away. It checks the log's
        # tail when it opens (not the whole log): a damaged last record stops it; damage
        # further back is the readers' to find, and an append lands after it, whole
        if where == "last":
            with pytest.raises(CorruptionError, match="sc/st segment 0: corrupt record"):
                with s.writer("sc", "st") as w:
                    w.append(b"after")
            assert log.stat().st_size == len(data)
        else:
            with s.writer("sc", "st") as w:
                w.append(b"after")
            grown = log.read_bytes()
            assert grown[: len(data)] == bytes(data) and grown.endswith(b"after")
        with pytest.raises(CorruptionError):
            list(LocalStore(root=str(root)).read_events("sc", "st", 0))
    finally:
        s.close()


def test_corruption_without_index_is_not_mistaken_for_a_torn_tail(tmp_path):
    root = tmp_path / "r"
    _fill(root, 100)
    log = _log(root, "sc", "st")
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 1
    log.write_bytes(bytes(data))
    _idx(root, "sc", "st").unlink()
    s = LocalStore(root=str(root))
    with pytest.raises(CorruptionError):
        s.segment_info("sc", "st", 0)
    with pytest.raises(CorruptionError):
        s.writer("sc", "st")
    assert log.stat().st_size == len(data)
    s.close()
