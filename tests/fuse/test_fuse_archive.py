"""Mount an archive (what `stream-backend export` wrote to S3) read-only, browse and read it."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import subprocess

import pytest

from support.mounting import cli, mounted

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(240)]


def _append(store, stream, n, seed, segments=1):
    rnd = random.Random(seed)
    views = [bytearray() for _ in range(segments)]
    with store.writer("demo", stream) as w:
        for i in range(n):
            p = rnd.randbytes(rnd.randint(0, 20_000))
            w.append(p, segment=i % segments)
            views[i % segments] += p
    return [bytes(v) for v in views]


def test_archive_mount_shows_segments_and_runs(
    mountdir, local_store, store_root, s3_bucket, tmp_path, monkeypatch
):
    for k, v in s3_bucket.server.env.items():
        monkeypatch.setenv(k, v)
    endpoint = s3_bucket.server.endpoint_url
    local_store.create_stream("demo", "logs")
    local_store.create_stream("demo", "multi", segments=2)
    run1 = _append(local_store, "logs", 120, seed=1)[0]
    multi = _append(local_store, "multi", 40, seed=2, segments=2)
    arch_logs, arch_multi = f"{s3_bucket.url}/arch/logs", f"{s3_bucket.url}/arch/multi"
    cli("export", "stream://demo/logs", arch_logs, "--endpoint-url", endpoint, "--root", store_root)
    cli(
        "export",
        "stream://demo/multi",
        arch_multi,
        "--endpoint-url",
        endpoint,
        "--root",
        store_root,
        "--compression",
        "zstd",
    )
    run2 = run1 + _append(local_store, "logs", 30, seed=3)[0]
    cli("export", "stream://demo/logs", arch_logs, "--endpoint-url", endpoint, "--root", store_root)

    mp = mountdir()
    with mounted(f"sbarchive::{arch_logs}", mp, "--endpoint-url", endpoint):
        assert sorted(os.listdir(mp)) == ["0", "runs"]
        assert sorted(os.listdir(mp / "runs")) == ["00000001", "00000002"]
        assert os.stat(mp / "0").st_size == len(run2)
        assert (mp / "0").read_bytes() == run2
        assert (mp / "runs" / "00000001" / "0").read_bytes() == run1  # any earlier point
        out = subprocess.run(
            ["sha256sum", str(mp / "0")], capture_output=True, text=True, check=True
        )
        assert out.stdout.split()[0] == hashlib.sha256(run2).hexdigest()
        out = subprocess.run(
            ["dd", f"if={mp / '0'}", "bs=4096", "skip=100", "status=none"],
            capture_output=True,
            check=True,
        )
        assert out.stdout == run2[409_600:]
        st = os.stat(mp / "0")
        assert (
            st.st_mtime > 0 and os.stat(mp / "0").st_mtime_ns == st.st_mtime_ns
        )  # stable, not now
        for attempt in (
            lambda: open(mp / "0", "ab"),
            lambda: open(mp / "new", "wb"),
            lambda: os.unlink(mp / "0"),
            lambda: os.mkdir(mp / "d"),
        ):
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.EROFS

    with mounted(f"--archive={arch_multi}", mp, "--endpoint-url", endpoint):  # the --archive form
        assert sorted(os.listdir(mp)) == ["0", "1", "runs"]
        for seg in (0, 1):
            assert (mp / str(seg)).read_bytes() == multi[seg]  # zstd objects, streamed


def test_archive_mount_errors(mountdir, s3_bucket, tmp_path, monkeypatch):
    for k, v in s3_bucket.server.env.items():
        monkeypatch.setenv(k, v)
    mp = mountdir()
    res = cli(
        "mount",
        f"sbarchive::{s3_bucket.url}/nothing-here",
        mp,
        "--endpoint-url",
        s3_bucket.server.endpoint_url,
        check=False,
    )
    assert res.returncode == 66, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = cli("mount", "--read-write", "--archive", f"{s3_bucket.url}/x", mp, check=False)
    assert res.returncode == 64
    assert not os.path.ismount(mp)


def test_an_sse_c_archive_mounts_with_its_key_only(mountdir, local_store, store_root, s3_bucket, tmp_path,
                                                   monkeypatch):
    for k, v in s3_bucket.server.env.items():
        monkeypatch.setenv(k, v)
    endpoint = s3_bucket.server.endpoint_url
    local_store.create_stream("demo", "secret")
    data = _append(local_store, "secret", 60, seed=7)[0]
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(os.urandom(32))
    arch = f"{s3_bucket.url}/ssec"
    cli("export", "stream://demo/secret", arch, "--endpoint-url", endpoint, "--root", store_root,
        "--sse-c-key-file", str(key_file))
    mp = mountdir()
    res = cli("mount", f"sbarchive::{arch}", mp, "--endpoint-url", endpoint, check=False)
    assert res.returncode == 77 and "--sse-c-key-file" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not os.path.ismount(mp)
    with mounted(f"sbarchive::{arch}", mp, "--endpoint-url", endpoint, "--sse-c-key-file", str(key_file)):
        assert (mp / "0").read_bytes() == data
