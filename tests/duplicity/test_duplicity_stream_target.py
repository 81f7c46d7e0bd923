"""Real duplicity with a stream as the backup target: stream://backups/pv1."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import time

import pytest
from dup_helpers import CLI, diff_r, dup_env, duplicity, make_tree

from stream_backend.duplicity_backend import StreamTarget, target_from_url
from stream_backend.errors import UsageError

pytestmark = pytest.mark.timeout(300)


def test_full_incremental_restore_status_verify(local_store, store_root, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=1)
    url = "stream://backups/pv1"
    duplicity("full", src, url, archive_dir=tmp_path / "a", root=store_root)

    time.sleep(1.1)  # duplicity compares mtimes in whole seconds
    with open(src / "d0" / "f3.bin", "ab") as f:
        f.write(b"appended\n")
    (src / "d1" / "f1.bin").unlink()
    (src / "new.txt").write_text("new file\n")
    # --concurrency: duplicity's spawned workers must find our scheme too
    duplicity("incr", src, url, "--concurrency", "2", archive_dir=tmp_path / "a", root=store_root)

    target = StreamTarget(local_store, "backups", "pv1")
    names = target.names()
    assert any(n.startswith("duplicity-full.") and n.endswith(".manifest") for n in names)
    assert any(n.startswith("duplicity-inc.") and ".vol1.difftar" in n for n in names)
    for n in names:  # every visible file reads back whole and verified (sha256)
        target.get(n, io.BytesIO())

    # a fresh archive dir: everything (signatures, manifests, volumes) comes from the stream
    out = duplicity("collection-status", url, archive_dir=tmp_path / "b", root=store_root).stdout
    assert "Full" in out and "Incremental" in out
    duplicity("verify", url, src, archive_dir=tmp_path / "c", root=store_root)
    duplicity("restore", url, tmp_path / "out", archive_dir=tmp_path / "d", root=store_root)
    assert diff_r(src, tmp_path / "out") == ""

    # duplicity's deletes drop names from the index (space is reclaimed only by rewriting)
    time.sleep(1.1)
    duplicity("full", src, url, archive_dir=tmp_path / "a", root=store_root)
    first_chain = {n for n in target.names() if n.startswith("duplicity-inc.")}
    assert first_chain
    duplicity(
        "remove-all-but-n-full", "1", url, "--force", archive_dir=tmp_path / "a", root=store_root
    )
    left = StreamTarget(local_store, "backups", "pv1").names()
    assert not first_chain & set(left)
    assert sum(n.startswith("duplicity-full.") and n.endswith(".manifest") for n in left) == 1


def test_half_written_file_is_invisible(local_store):
    """Bytes appended without their index entry (a crash inside _put) are not a file."""
    t = StreamTarget(local_store, "backups", "t1")
    t.put("a.vol1", io.BytesIO(b"A" * 1000))
    with local_store.writer("backups", "t1") as w:  # what a crash after the data leaves
        w.append(b"garbage that never got an index entry")
    t.put("b.vol2", io.BytesIO(b"B" * 5000))
    fresh = StreamTarget(local_store, "backups", "t1")
    assert fresh.names() == ["a.vol1", "b.vol2"]
    out = io.BytesIO()
    fresh.get("b.vol2", out)
    assert out.getvalue() == b"B" * 5000
    t.put("a.vol1", io.BytesIO(b"C" * 10))  # last writer wins
    assert StreamTarget(local_store, "backups", "t1").entry("a.vol1").size == 10


def test_index_maps_files_to_seqs_and_get_is_a_ranged_read(local_store):
    """Each index entry's [first_seq, end_seq) holds exactly the file's bytes, and _get
    reads only the file's byte range of the data stream, never the whole stream."""
    rnd = random.Random(5)
    files = {f"f{i}.vol": rnd.randbytes(n) for i, n in enumerate((3000, 1, 250_000, 70_000))}
    t = StreamTarget(local_store, "backups", "ranged")
    for name, data in files.items():
        t.put(name, io.BytesIO(data))
    total = local_store.stream_info("backups", "ranged").segments[0].length
    assert total == sum(map(len, files.values()))

    class Counting:
        """The store, counting the bytes read_range hands out."""

        def __init__(self, inner):
            self.inner, self.read = inner, 0

        def read_range(self, *args):
            data = self.inner.read_range(*args)
            self.read += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.inner, name)

    for name, data in files.items():
        e = t.entry(name)
        evs = list(local_store.read_events("backups", "ranged", 0, from_seq=e.first_seq, to_seq=e.end_seq))
        assert b"".join(ev.payload for ev in evs) == data
        counting = Counting(local_store)
        out = io.BytesIO()
        assert StreamTarget(counting, "backups", "ranged").get(name, out) == len(data)
        assert out.getvalue() == data and counting.read == len(data) < total


def test_kill_9_during_backup_then_next_run_completes(local_store, store_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(3)
    for i in range(6):
        (src / f"big{i}.bin").write_bytes(rnd.randbytes(1_500_000))
    url = "stream://backups/pv2"
    args = [
        CLI,
        "duplicity",
        "--root",
        str(store_root),
        "full",
        str(src),
        url,
        "--no-encryption",
        "--archive-dir",
        str(tmp_path / "a"),
        "--volsize",
        "1",
        "--no-compression",
    ]
    proc = subprocess.Popen(
        args, env=dup_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    target = StreamTarget(local_store, "backups", "pv2")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(".difftar" in n for n in target.names()) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "backup finished before it could be killed; make the source bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    seen = target.names()
    assert not any(n.endswith(".manifest") and n.startswith("duplicity-full.") for n in seen)
    for n in seen:  # what is visible after the crash is whole
        target.get(n, io.BytesIO())

    # the next run repairs: duplicity resumes the interrupted full backup and completes it
    res = duplicity(
        "full",
        src,
        url,
        "--volsize",
        "1",
        "--no-compression",
        archive_dir=tmp_path / "a",
        root=store_root,
    )
    assert res.returncode == 0
    duplicity("verify", url, src, archive_dir=tmp_path / "v", root=store_root)
    duplicity("restore", url, tmp_path / "out", archive_dir=tmp_path / "r", root=store_root)
    assert diff_r(src, tmp_path / "out") == ""
    shutil.rmtree(tmp_path / "out")


def test_target_urls(local_store):
    assert (target_from_url("stream://backups", local_store).stream) == "duplicity"
    t = target_from_url("stream://backups/pv9", local_store)
    assert (t.scope, t.stream, t.index_stream) == ("backups", "pv9", "pv9.index")
    for bad in ("stream://backups/pv9/0", "stream://", "stream://-bad/x"):
        with pytest.raises(UsageError):
            target_from_url(bad, local_store)
    assert t.names() == []  # a target that does not exist yet is empty, not an error


def test_bad_target_is_a_one_line_backend_error(store_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    res = duplicity(
        "full",
        src,
        "stream://backups/pv1/7",
        archive_dir=tmp_path / "a",
        root=store_root,
        check=False,
    )
    assert res.returncode != 0
    assert "segment" in (res.stdout + res.stderr)
