"""End to end: `stream-backend mount` over a real local store, real kernel FUSE, real tools."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import signal
import subprocess
import time

import pytest

from support.mounting import CLI, cli, mounted, read_counter, wait_mounted, wait_unmounted

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(180)]


def put(store, scope, stream, payloads, segments=1):
    """Append payloads (round-robin over segments); returns the per-segment file views."""
    store.create_stream(scope, stream, segments=segments, exist_ok=True)
    views = [bytearray() for _ in range(segments)]
    with store.writer(scope, stream) as w:
        for i, p in enumerate(payloads):
            w.append(p, segment=i % segments)
            views[i % segments] += p
    return [bytes(v) for v in views]


def payloads(n, seed, max_size=3000):
    rnd = random.Random(seed)
    out = [rnd.randbytes(rnd.randint(0, max_size)) for _ in range(n)]
    out[3] = b""  # zero-length events hold no byte of the file view
    return out


@pytest.fixture
def populated(local_store):
    logs = put(local_store, "demo", "logs", payloads(300, 1))[0]
    multi = put(local_store, "demo", "multi", payloads(30, 2), segments=3)
    local_store.create_stream("other", "empty", exist_ok=True)
    return {"logs": logs, "multi": multi}


def test_file_view_attributes_and_tools(mountdir, local_store, store_root, populated, tmp_path):
    mp = mountdir()
    logs = populated["logs"]
    # no kernel attribute cache: each stat below asks the filesystem again
    with mounted("stream://", mp, "--attr-timeout", "0", root=store_root):
        assert sorted(os.listdir(mp)) == ["demo", "other"]
        assert sorted(os.listdir(mp / "demo")) == ["logs", "multi"]
        assert sorted(os.listdir(mp / "demo" / "multi")) == ["0", "1", "2"]
        assert os.listdir(mp / "other") == ["empty"]

        f = mp / "demo" / "logs"
        info = local_store.stream_info("demo", "logs")
        st = os.stat(f)
        assert st.st_size == len(logs) == info.length
        assert abs(st.st_mtime - info.last_append) < 1e-3  # last append time, not "now"
        assert st.st_mode & 0o777 == 0o444
        st2 = os.stat(f)  # recomputed, and the same
        assert (st2.st_ino, st2.st_mtime_ns, st2.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
        assert os.stat(mp / "other" / "empty").st_size == 0

        assert f.read_bytes() == logs
        for seg, view in enumerate(populated["multi"]):
            assert (mp / "demo" / "multi" / str(seg)).read_bytes() == view

        out = subprocess.run(
            ["dd", f"if={f}", "bs=1000", "skip=7", "status=none"], capture_output=True, check=True
        )
        assert out.stdout == logs[7000:]
        out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True)
        assert out.stdout.split()[0] == hashlib.sha256(logs).hexdigest()
        subprocess.run(["cp", str(f), str(tmp_path / "copy")], check=True)
        assert (tmp_path / "copy").read_bytes() == logs
        with open(f, "rb") as fh:  # random access goes through the offset index
            fh.seek(123_457)
            assert fh.read(5000) == logs[123_457:128_457]
        with pytest.raises(FileNotFoundError):
            os.stat(mp / "demo" / "nope")
        with pytest.raises(FileNotFoundError):
            os.stat(mp / "demo" / "multi" / "3")
        ino_logs = st.st_ino

    with mounted("stream://demo", mp, root=store_root):  # a scope: its streams at the top
        assert sorted(os.listdir(mp)) == ["logs", "multi"]
        assert os.stat(mp / "logs").st_ino == ino_logs  # inodes are stable across mounts
        assert (mp / "logs").read_bytes() == logs


def _stat_number(out: str, label: str) -> int:
    m = re.search(rf"^{label}: ([\d,]+)", out, re.M)
    assert m, f"{label!r} not in rsync --stats output:\n{out}"
    return int(m.group(1).replace(",", ""))


def test_rsync_cp_tar_through_mount(mountdir, local_store, store_root, populated, tmp_path):
    mp, dest = mountdir(), tmp_path / "dest"
    with mounted("stream://demo", mp, "--attr-timeout", "0.2", root=store_root):
        subprocess.run(["rsync", "-a", f"{mp}/", f"{dest}/"], check=True)
        assert (dest / "logs").read_bytes() == populated["logs"]
        assert (dest / "multi" / "2").read_bytes() == populated["multi"][2]

        before = read_counter(mp / "multi" / "0")
        out = subprocess.run(
            ["rsync", "-a", "--stats", f"{mp}/", f"{dest}/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert _stat_number(out, "Number of regular files transferred") == 0
        assert read_counter(mp / "multi" / "0") == before  # unchanged: not even read

        extra = random.Random(5).randbytes(10_000)
        with local_store.writer("demo", "logs") as w:
            w.append(extra)
        want = len(populated["logs"]) + len(extra)
        deadline = time.monotonic() + 10  # the attribute cache (0.2 s) lets the new size through
        while os.stat(mp / "logs").st_size != want and time.monotonic() < deadline:
            time.sleep(0.02)
        out = subprocess.run(
            ["rsync", "-a", "--append-verify", "--stats", f"{mp}/", f"{dest}/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert _stat_number(out, "Number of regular files transferred") == 1
        assert _stat_number(out, "Literal data") == len(extra)  # only the new bytes travel
        assert (dest / "logs").read_bytes() == populated["logs"] + extra

        tar = subprocess.run(
            ["tar", "-C", str(mp), "-cf", "-", "."], capture_output=True, check=True
        ).stdout
        (tmp_path / "untar").mkdir()
        subprocess.run(["tar", "-C", str(tmp_path / "untar"), "-xf", "-"], input=tar, check=True)
        assert subprocess.run(["diff", "-r", str(tmp_path / "untar"), str(dest)]).returncode == 0
        sums = subprocess.run(
            ["sha256sum", "logs", "multi/0", "multi/1", "multi/2"],
            cwd=mp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sums_dest = subprocess.run(
            ["sha256sum", "logs", "multi/0", "multi/1", "multi/2"],
            cwd=dest,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert sums == sums_dest


def test_read_only_mount_refuses_writes_and_ends_with_the_command(
    mountdir, store_root, populated, tmp_path
):
    mp = mountdir()
    with mounted("stream://demo", mp, root=store_root) as proc:
        f = mp / "logs"
        attempts = {
            "append": lambda: open(f, "ab"),
            "create": lambda: open(mp / "new", "wb"),
            "mkdir": lambda: os.mkdir(mp / "dir"),
            "unlink": lambda: os.unlink(f),
            "rename": lambda: os.rename(f, mp / "moved"),
            "truncate": lambda: os.truncate(f, 0),
        }
        for what, attempt in attempts.items():
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.EROFS, what
        assert f.read_bytes() == populated["logs"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert wait_unmounted(mp, timeout=5), "SIGTERM must unmount"

    with mounted("stream://demo", mp, root=store_root) as proc:  # Ctrl-C in a terminal
        assert (mp / "logs").read_bytes() == populated["logs"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert wait_unmounted(mp, timeout=5), "SIGINT must unmount"

    # even SIGKILL (no chance to clean up) leaves no mount behind
    proc = subprocess.Popen(
        [CLI, "mount", "stream://demo", str(mp), "--root", str(store_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_mounted(mp, proc)
    proc.kill()
    proc.wait()
    assert wait_unmounted(mp, timeout=10), "a killed mount command must not leave its mount behind"


def test_read_write_mount_appends_and_never_rewrites(
    mountdir, local_store, store_root, populated, tmp_path
):
    mp = mountdir()
    max_event = local_store.max_event_size
    data = random.Random(7).randbytes(max_event + 12345)  # spills over into a second event
    src = tmp_path / "src"
    src.write_bytes(data)
    with mounted("stream://demo", mp, "--read-write", root=store_root):
        subprocess.run(["cp", str(src), str(mp / "new")], check=True)
        assert local_store.stream_info("demo", "new").segment_count == 1
        with open(mp / "new", "ab") as fh:  # >>
            fh.write(b"tail\n")
        subprocess.run(f"echo more >> {mp / 'new'}", shell=True, check=True)
        expected = data + b"tail\nmore\n"

        def refused(fn, code):
            with pytest.raises(OSError) as info:
                fn()
            assert info.value.errno == code

        refused(lambda: open(mp / "new", "wb"), errno.EPERM)  # `> file` would truncate
        refused(lambda: os.truncate(mp / "new", 10), errno.EPERM)
        refused(lambda: os.truncate(mp / "new", len(expected) + 100), errno.EOPNOTSUPP)  # zero-fill
        refused(lambda: os.rename(mp / "new", mp / "renamed"), errno.EOPNOTSUPP)
        refused(lambda: open(mp / ".new.tmp", "wb"), errno.EINVAL)  # not a stream name
        refused(lambda: open(mp / "multi" / "9", "ab"), errno.EOPNOTSUPP)  # segments come from the shape
        seg0 = local_store.stream_info("demo", "multi").segments[0]
        with open(mp / "multi" / "0", "ab") as fh:  # a segment file appends to its segment, as in fsspec
            fh.write(b"seg0 tail")
        grown = local_store.stream_info("demo", "multi").segments[0]
        assert grown.events == seg0.events + 1 and grown.length == seg0.length + 9
        assert (mp / "multi" / "0").read_bytes()[-9:] == b"seg0 tail"
        def append_while_another_writer_holds_it():
            with open(mp / "logs", "ab") as fh:
                fh.write(b"x")
                fh.flush()

        with local_store.writer("demo", "logs"):  # a second writer is refused, not queued
            refused(append_while_another_writer_holds_it, errno.EBUSY)
        (mp / "scratch").write_bytes(b"x")
        os.unlink(mp / "scratch")  # rm deletes the stream
        assert "scratch" not in local_store.list_streams("demo")
        fd = os.open(mp / "new", os.O_WRONLY)
        try:
            refused(lambda: os.pwrite(fd, b"XX", 5), errno.EOPNOTSUPP)  # rewrite in the middle
        finally:
            os.close(fd)
        assert (mp / "new").read_bytes() == expected

    events = list(local_store.read_events("demo", "new", 0))
    assert b"".join(e.payload for e in events) == expected
    assert max(len(e.payload) for e in events) <= max_event
    assert len(events[0].payload) == max_event
    assert local_store.stream_info("demo", "logs").length == len(populated["logs"])


def test_background_mount_and_umount(mountdir, store_root, populated, tmp_path):
    mp = mountdir()
    res = cli("mount", "--background", "stream://demo", mp, "--root", store_root, timeout=60)
    try:
        assert os.path.ismount(mp)
        assert "umount" in res.stdout
        assert (mp / "logs").read_bytes() == populated["logs"]
    finally:
        cli("umount", mp)
    assert not os.path.ismount(mp)
    res = cli("umount", mp, check=False)
    assert res.returncode == 64 and "not a mount point" in res.stderr


def test_bad_input_is_one_line_with_exit_code(mountdir, store_root, populated, tmp_path):
    mp = mountdir()
    cases = [
        (["stream://nosuchscope", mp], 66),
        (["stream://demo", tmp_path / "missing"], 66),
        (["stream://demo/logs", mp], 64),
        (["bogus://x", mp], 64),
    ]
    cases.append(
        (["pravega://demo", mp, "--controller", "tcp://127.0.0.1:9", "--timeout", "2"], 69)
    )
    for args, code in cases:
        res = cli("mount", *args, "--root", store_root, check=False, timeout=30)
        assert res.returncode == code, (args, res.stderr)
        assert (
            "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        ), res.stderr
        assert not os.path.ismount(mp)


def test_read_write_store_mount_scopes(mountdir, local_store, store_root):
    local_store.create_scope("seed")
    mp = mountdir()
    with mounted("stream://", mp, "--read-write", root=store_root):
        os.mkdir(mp / "newscope")  # a scope
        (mp / "newscope" / "s1").write_bytes(b"hello")
        with pytest.raises(OSError) as info:
            os.rmdir(mp / "newscope")
        assert info.value.errno == errno.ENOTEMPTY
        with pytest.raises(OSError) as info:
            os.mkdir(mp / "newscope" / "sub")  # streams are files, not directories
        assert info.value.errno == errno.EOPNOTSUPP
        os.unlink(mp / "newscope" / "s1")
        os.rmdir(mp / "newscope")
        assert sorted(os.listdir(mp)) == ["seed"]
    assert local_store.list_scopes() == ["seed"]


def test_appends_one_after_another_from_a_shell(mountdir, local_store, store_root):
    """`echo a >> f; echo b >> f`: close() returns before the kernel releases the first
    handle, so the second open found the writer still held and failed with EBUSY now and
    then (the admin guide's read-write block failed in CI). 60 appends in a row all land."""
    import subprocess

    local_store.create_scope("sh")
    mp = mountdir()
    with mounted("stream://", mp, "--read-write", root=store_root):
        script = f'for i in $(seq 60); do echo "line $i" >> {mp}/sh/log; done'
        p = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    got = b"".join(e.payload for e in local_store.read_events("sh", "log", 0)).decode()
    assert got == "".join(f"line {i}\n" for i in range(1, 61))


def test_allow_other_lets_another_user_read(mountdir, store_root, populated):
    mp = mountdir()
    os.chmod(mp.parent, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for extra, readable in (([], False), (["--allow-other"], True)):
        with mounted("stream://demo", mp, *extra, root=store_root):
            res = subprocess.run([*nobody, "cat", str(mp / "logs")], capture_output=True)
            assert (res.returncode == 0) is readable, res.stderr
            if readable:
                assert res.stdout == populated["logs"]
                res = subprocess.run([*nobody, "sh", "-c", f"echo x >> {mp / 'logs'}"])
                assert res.returncode != 0  # still read-only


def test_rm_of_a_stream_open_for_writing_is_busy_then_deletes(mountdir, local_store, store_root, populated):
    """The kernel does not hide an open file (.fuse_hidden, a rename streams cannot do):
    rm reaches the store, which refuses while this mount's handle holds the writer, and
    deletes the stream once the handle is closed."""
    mp = mountdir()
    with mounted("stream://demo", mp, "--read-write", root=store_root):
        fd = os.open(mp / "held", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x")
            with pytest.raises(OSError) as info:
                os.unlink(mp / "held")
            assert info.value.errno == errno.EBUSY
            assert "held" in local_store.list_streams("demo")
        finally:
            os.close(fd)
        os.unlink(mp / "held")  # its RELEASE may still be on the way: the unlink waits for it
        assert "held" not in local_store.list_streams("demo")
        assert not [n for n in os.listdir(mp) if n.startswith(".fuse_hidden")]
