"""Local-store specifics: layout, writer lock across processes, concurrent readers,
index persistence (no rescan on open), errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stream_backend.errors import (
    PermissionDeniedError,
    SealedError,
    UsageError,
    WriterBusyError,
)
from stream_backend.stores.local import offset_index
from stream_backend.stores.local import LocalStore

sys.path.insert(0, str(Path(__file__).parent))
from _child_writer import payload  # noqa: E402

CHILD = str(Path(__file__).parent / "_child_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def test_layout_and_dense_seqs(local_store, store_root):
    local_store.create_stream("sc", "st", segments=2)
    d = store_root / "sc" / "st"
    names = sorted(os.listdir(d))
    assert names == [
        "segment-000000.idx",
        "segment-000000.log",
        "segment-000001.idx",
        "segment-000001.log",
        "stream.json",
        "writer.lock",
    ]
    meta = json.loads((d / "stream.json").read_text())
    assert meta["format"] == 1 and meta["segments"] == 2 and meta["sealed"] is False
    assert meta["max_event_size"] == local_store.max_event_size
    with local_store.writer("sc", "st") as w:
        for i in range(10):
            w.append(b"%d" % i)  # no key: round robin
    for seg in (0, 1):
        evs = list(local_store.read_events("sc", "st", seg))
        assert [e.seq for e in evs] == list(range(5))
        assert all(e.routing_key is None and e.timestamp for e in evs)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_BACKEND_ROOT", str(tmp_path / "envroot"))
    s = LocalStore()
    assert s.root == str(tmp_path / "envroot")
    s.create_scope("x")
    assert (tmp_path / "envroot" / "x").is_dir()


def test_root_not_creatable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(PermissionDeniedError) as ei:
        LocalStore(root=str(blocker / "sub"))
    assert "\n" not in str(ei.value)


def test_unwritable_root_is_permission_denied(tmp_path, monkeypatch):
    """Writes under a root we may not write raise one line, exit code 77 (simulated:
    the suite runs as root, which ignores permission bits)."""
    s = LocalStore(root=str(tmp_path))
    s.create_stream("a", "s")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(PermissionDeniedError) as ei:
        s.create_scope("b")
    assert ei.value.exit_code == 77 and "\n" not in str(ei.value)
    with pytest.raises(PermissionDeniedError):
        s.create_stream("a", "t")
    monkeypatch.undo()
    real_open = os.open

    def no_write_open(path, flags, *a):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", no_write_open)
    with pytest.raises(PermissionDeniedError):
        s.writer("a", "s")
    assert s.stream_info("a", "s").events == 0  # reading still works


def test_bad_max_event_size(tmp_path):
    with pytest.raises(UsageError):
        LocalStore(root=str(tmp_path), max_event_size=0)


def test_last_append_is_stable_across_reopen(tmp_path):
    s = LocalStore(root=str(tmp_path))
    s.create_stream("a", "b")
    with s.writer("a", "b") as w:
        w.append(b"x")
    t1 = s.stream_info("a", "b").last_append
    s.close()
    time.sleep(0.05)
    s = LocalStore(root=str(tmp_path))
    s.writer("a", "b").close()  # opening a writer touches files, not the append time
    assert s.stream_info("a", "b").last_append == t1
    s.close()


def test_second_writer_in_another_process_is_busy(tmp_path):
    root = tmp_path / "r"
    s = LocalStore(root=str(root))
    s.create_stream("c", "s")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, CHILD, str(root), "c", "s", "1"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout.readline().startswith(b"ready")
        t0 = time.time()
        with pytest.raises(WriterBusyError) as ei:
            s.writer("c", "s")
        assert time.time() - t0 < 2, "must fail at once, not wait"
        assert "\n" not in str(ei.value)
        with pytest.raises(WriterBusyError):
            s.delete_stream("c", "s")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with s.writer("c", "s") as w:  # the kernel released the dead writer's lock
        n = s.segment_info("c", "s", 0).tail_seq
        w.append(payload(n), routing_key=f"k{n % 3}")
    s.delete_stream("c", "s")
    assert s.list_streams("c") == []


def test_seal_while_writer_open(local_store):
    local_store.create_stream("a", "s")
    w = local_store.writer("a", "s")
    w.append(b"1")
    w.flush()
    local_store.seal_stream("a", "s")
    with pytest.raises(SealedError):
        w.append(b"2")
    w.close()
    assert [e.payload for e in local_store.read_events("a", "s", 0)] == [b"1"]


def test_concurrent_readers_see_a_consistent_prefix(tmp_path):
    """Reader threads (own store objects) while a writer process appends and flushes."""
    root = tmp_path / "r"
    s = LocalStore(root=str(root))
    s.create_stream("c", "s")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, CHILD, str(root), "c", "s", "7", "0.01"], stdout=subprocess.PIPE, env=env
    )
    errors: list[BaseException] = []
    seen = [0, 0, 0]
    stop = threading.Event()
    expect = b"".join(payload(i) for i in range(10000))

    def events_reader(k):
        st = LocalStore(root=str(root))
        try:
            while not stop.is_set():
                n = 0
                for e in st.read_events("c", "s", 0):
                    assert e.seq == n and e.payload == payload(n)
                    n += 1
                seen[k] = max(seen[k], n)
        except BaseException as e:
            errors.append(e)
        finally:
            st.close()

    def range_reader(k):
        st = LocalStore(root=str(root))
        try:
            while not stop.is_set():
                info = st.segment_info("c", "s", 0)
                data = st.read_range("c", "s", 0, 0, info.length)
                assert len(data) == info.length and data == expect[: len(data)]
                tail = st.read_range("c", "s", 0, max(0, info.length - 5000), 10**6)
                assert expect.startswith(tail, max(0, info.length - 5000))
                seen[k] = max(seen[k], info.tail_seq)
        except BaseException as e:
            errors.append(e)
        finally:
            st.close()

    def follower(k):
        st = LocalStore(root=str(root))
        try:
            n = 0
            for e in st.read_events("c", "s", 0, follow=True):
                assert e.seq == n and e.payload == payload(n)
                n += 1
                seen[k] = n
        except BaseException as e:
            errors.append(e)
        finally:
            st.close()

    threads = [
        threading.Thread(target=events_reader, args=(0,)),
        threading.Thread(target=range_reader, args=(1,)),
        threading.Thread(target=follower, args=(2,), daemon=True),
    ]
    try:
        assert proc.stdout.readline().startswith(b"ready")
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60  # until every reader has read a stream that grew
        while min(seen) < 500 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert min(seen) >= 500 or errors, seen
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        stop.set()
        for t in threads[:2]:
            t.join(30)
    final = s.segment_info("c", "s", 0).tail_seq
    assert 0 < final < 10000
    s.seal_stream("c", "s")
    threads[2].join(30)
    assert not threads[2].is_alive(), "follower did not stop after seal"
    assert not errors, errors
    assert seen[2] == final
    assert seen[0] > 0 and seen[1] > 0


def test_open_uses_the_index_without_a_rescan(tmp_path, monkeypatch):
    """Opening a big segment reads at most one index gap (plus a record) of the log."""
    s = LocalStore(root=str(tmp_path))
    s.create_stream("a", "s")
    blob = os.urandom(100)
    with s.writer("a", "s") as w:
        for i in range(60000):  # ~8 MiB of log
            w.append(blob)
    s.close()
    log_size = (tmp_path / "a" / "s" / "segment-000000.log").stat().st_size
    idx_size = (tmp_path / "a" / "s" / "segment-000000.idx").stat().st_size
    assert idx_size < log_size / 500, "index must be sparse"

    read = [0]
    real_pread = os.pread

    def counting_pread(fd, n, off):
        b = real_pread(fd, n, off)
        read[0] += len(b)
        return b

    monkeypatch.setattr(os, "pread", counting_pread)
    s = LocalStore(root=str(tmp_path))
    info = s.segment_info("a", "s", 0)
    assert info.events == 60000 and info.length == 6000000
    assert read[0] <= 2 * offset_index.SPACING
    read[0] = 0
    assert s.read_range("a", "s", 0, 3_333_333, 4096) == (blob * 42)[33 : 33 + 4096]
    assert read[0] <= 2 * offset_index.SPACING
    read[0] = 0
    ev = next(iter(s.read_events("a", "s", 0, from_seq=45678)))
    assert ev.seq == 45678 and ev.offset == 4567800
    s.close()


def test_missing_index_is_rebuilt_and_persisted(tmp_path):
    s = LocalStore(root=str(tmp_path))
    s.create_stream("a", "s")
    with s.writer("a", "s") as w:
        for i in range(3000):
            w.append(os.urandom(64) * 2)
    s.close()
    idx = tmp_path / "a" / "s" / "segment-000000.idx"
    original = idx.read_bytes()
    idx.unlink()
    s = LocalStore(root=str(tmp_path))
    assert s.segment_info("a", "s", 0).events == 3000  # readers rebuild in memory
    assert not idx.exists()
    s.writer("a", "s").close()  # the writer persists it
    assert idx.read_bytes() == original
    s.close()


def test_lying_index_entry_is_caught_before_use(tmp_path):
    """An entry pointing at another record (in memory, past load-time validation) is
    detected against the record header, the index rebuilt, and the right bytes served."""
    s = LocalStore(root=str(tmp_path))
    s.create_stream("a", "s")
    blob = bytes(range(256)) * 4
    with s.writer("a", "s") as w:
        for i in range(2000):
            w.append(blob[: 100 + i % 900])
    data = s.read_range("a", "s", 0, 0, 10**9)
    s.close()
    for field in ("poss", "foffs", "seqs"):
        s = LocalStore(root=str(tmp_path))
        v = s._view("a", "s", 0)
        assert len(v.idx) > 5
        arr = getattr(v.idx, field)
        arr[3] = arr[4]  # entry 3 now lies
        off = v.idx.foffs[3] + 10 if field != "foffs" else v.idx.foffs[2] + 10
        assert s.read_range("a", "s", 0, off, 5000) == data[off : off + 5000]
        idx = s.offset_index("a", "s", 0)
        evs = list(s.read_events("a", "s", 0))
        for e in evs[::97]:
            assert idx.offset_of(e.seq) == e.offset
            assert idx.locate(e.offset) == (e.seq, 0)
        assert s._view("a", "s", 0).persisted == 0, "the lie must have been noticed (rebuilt)"
        s.close()


def test_same_process_second_writer_through_another_root_spelling(tmp_path):
    """POSIX locks are per process: a second writer here must be refused by the store
    itself, also when the root is reached through a symlink."""
    real = tmp_path / "real"
    a = LocalStore(root=str(real))
    a.create_stream("x", "y")
    (tmp_path / "link").symlink_to(real)
    b = LocalStore(root=str(tmp_path / "link"))
    with a.writer("x", "y") as w:
        with pytest.raises(WriterBusyError):
            b.writer("x", "y")
        w.append(b"still mine")
    with b.writer("x", "y") as w:
        w.append(b"now b")
    assert [e.payload for e in a.read_events("x", "y", 0)] == [b"still mine", b"now b"]
