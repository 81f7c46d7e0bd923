"""Real duplicity into a real S3 server (SeaweedFS): mounted streams and a plain volume tree."""

from __future__ import annotations

import hashlib
import random
import subprocess
import time

import pytest
from dup_helpers import diff_r, dup_env, duplicity, make_tree
from support.mounting import cli, mounted, read_counter

pytestmark = [pytest.mark.s3, pytest.mark.fuse, pytest.mark.timeout(300)]


def listing(store, scope):
    """An `events`-style listing of each stream's file view: segments, lengths, digests."""
    out = {}
    for name in sorted(store.list_streams(scope)):
        info = store.stream_info(scope, name)
        segs = []
        for s in info.segments:
            data = store.read_range(scope, name, s.segment, 0, s.length)
            segs.append((s.segment, s.length, hashlib.sha256(data).hexdigest()))
        out[name] = segs
    return out


def fill(store, scope, stream, total, seed, segments=1):
    rnd = random.Random(seed)
    store.create_stream(scope, stream, segments=segments, exist_ok=True)
    with store.writer(scope, stream) as w:
        for seg in range(segments):
            left = total
            while left:
                n = min(left, rnd.randint(1, 40_000))
                w.append(rnd.randbytes(n), segment=seg)
                left -= n


def s3_target(bucket, prefix):
    return f"s3://{bucket.name}/{prefix}", ["--s3-endpoint-url", bucket.server.endpoint_url]


def object_sizes(bucket, prefix):
    c = bucket.client()
    resp = c.list_objects_v2(Bucket=bucket.name, Prefix=prefix)
    return {o["Key"].removeprefix(prefix): o["Size"] for o in resp.get("Contents", [])}


def test_mounted_streams_into_s3_incrementally(
    mountdir, local_store, store_root, s3_bucket, tmp_path
):
    fill(local_store, "apps", "orders", 2_000_000, seed=1)
    fill(local_store, "apps", "audit", 1_000_000, seed=2)
    fill(local_store, "apps", "clicks", 300_000, seed=3, segments=2)
    url, s3opts = s3_target(s3_bucket, "streams")
    env = dup_env(**s3_bucket.server.env)
    mp = mountdir()
    files = ["orders", "audit", "clicks/0", "clicks/1"]

    with mounted("stream://apps", mp, "--attr-timeout", "0.2", root=store_root):
        duplicity("full", mp, url, *s3opts, archive_dir=tmp_path / "a", env=env)

        time.sleep(1.1)  # duplicity compares mtimes in whole seconds
        appended = random.Random(9).randbytes(20_000)  # 1% of orders
        with local_store.writer("apps", "orders") as w:
            w.append(appended)
        time.sleep(0.5)  # > --attr-timeout: the mount shows the new size and mtime
        reads_before = {f: read_counter(mp / f) for f in files}
        duplicity("incr", mp, url, *s3opts, archive_dir=tmp_path / "a", env=env)
        reads_after = {f: read_counter(mp / f) for f in files}

    assert reads_after["orders"] > reads_before["orders"]
    for f in ("audit", "clicks/0", "clicks/1"):  # unchanged streams are not read at all
        assert reads_after[f] == reads_before[f], f
    sizes = object_sizes(s3_bucket, "streams/")
    # the whole increment: data volume(s), its manifest and the new signatures (measured
    # 20,432 + 194 + 16,035 = 36,661 bytes for 20,000 appended)
    inc_keys = [k for k in sizes if k.startswith("duplicity-inc.") or k.startswith("duplicity-new-signatures.")]
    assert any(".difftar" in k for k in inc_keys) and any("new-signatures" in k for k in inc_keys), sorted(sizes)
    inc = sum(sizes[k] for k in inc_keys)
    assert 0 < inc <= 2 * len(appended), (inc, sorted(sizes))

    # restore from S3 (fresh archive dir), then write the files back into new streams
    out = tmp_path / "out"
    duplicity("restore", url, out, *s3opts, archive_dir=tmp_path / "r", env=env)
    # (as docs/admin-guide.md shows: cp into a read-write mount, `write` per segment)
    local_store.create_scope("restored", exist_ok=True)
    rw = mountdir()
    with mounted("stream://restored", rw, "--read-write", root=store_root):
        for name in ("orders", "audit"):
            subprocess.run(["cp", str(out / name), str(rw / name)], check=True)
    cli("create", "--segments", "2", "stream://restored/clicks", "--root", store_root)
    for seg in (0, 1):
        cli(
            "write",
            f"stream://restored/clicks/{seg}",
            out / "clicks" / str(seg),
            "--root",
            store_root,
        )
    assert listing(local_store, "restored") == listing(local_store, "apps")


def test_volume_directory_into_s3_full_incremental_restore(s3_bucket, tmp_path):
    src = tmp_path / "pv"
    make_tree(src, seed=4, files=20, size=80_000)
    url, s3opts = s3_target(s3_bucket, "volumes/pv")
    env = dup_env(**s3_bucket.server.env)
    duplicity("full", src, url, *s3opts, archive_dir=tmp_path / "a", env=env)

    time.sleep(1.1)
    with open(src / "d0" / "f4.bin", "ab") as f:
        f.write(b"more data\n" * 100)
    (src / "d2" / "f2.bin").unlink()
    (src / "d1" / "added.txt").write_text("added after the full backup\n")
    duplicity("incr", src, url, *s3opts, archive_dir=tmp_path / "a", env=env)
    keys = object_sizes(s3_bucket, "volumes/pv/")
    assert any(k.startswith("duplicity-inc.") for k in keys)

    duplicity("restore", url, tmp_path / "out", *s3opts, archive_dir=tmp_path / "r", env=env)
    assert diff_r(src, tmp_path / "out") == ""
