"""sbarchive://: an archive (built with the format API) read as files, from memory://, a
local directory and SeaweedFS, with ranged reads that fetch only what they need."""

from __future__ import annotations

import random
import uuid

import fsspec
import pytest

from stream_backend.archive import SegmentPacker, build_run_manifest, build_segment_part, serialize_identity
from stream_backend.errors import CorruptionError, FormatVersionError, NotFoundError
from stream_backend.fs.archivefs import ArchiveFileSystem

SOURCE = {"store": "stream", "scope": "sc", "stream": "st", "segments": 2}


def make_runs(seed=1, runs=2, per_run=30, big=5000):
    """{run: {segment: [(seq, payload, key, ts)]}} with spillover-sized and empty events."""
    rng = random.Random(seed)
    out, seqs, t = {}, {0: 0, 1: 0}, 10**18
    for r in range(1, runs + 1):
        out[r] = {}
        for s in (0, 1):
            evs = []
            for _ in range(per_run if s == 0 else per_run // 3):
                n = rng.choice([0, 1, 17, 300, big])
                t += rng.randint(1, 10**9)
                evs.append((seqs[s], rng.randbytes(n), rng.choice([None, "k1", "ключ"]), t))
                seqs[s] += 1
            out[r][s] = evs
    return out


def write_archive(fs, prefix, runs, object_size=2048, compression="none"):
    """What export writes, done with the format API directly."""
    fs.pipe_file(f"{prefix}/archive.json", serialize_identity(SOURCE))
    prev, start = None, {0: 0, 1: 0}
    for r, segs in runs.items():
        parts = []
        for s, evs in segs.items():
            end = start[s] + len(evs)
            infos = []
            for o in SegmentPacker(evs, s, start_seq=start[s], object_size=object_size, compression=compression,
                                  end_seq=end):
                with fs.open(f"{prefix}/{o.key}", "wb") as f:
                    for chunk in o.chunks():
                        f.write(chunk)
                infos.append(o.info)
            part = build_segment_part(r, s, start[s], end, infos, compression=compression, object_size=object_size)
            fs.pipe_file(f"{prefix}/{part.key}", part.serialize())
            parts.append(part)
            start[s] = end
        m = build_run_manifest(r, parts, SOURCE, previous=prev)
        fs.pipe_file(f"{prefix}/{m.key}", m.serialize())
        prev = m


def view(runs, segment, upto=None):
    return b"".join(p for r, segs in runs.items() if upto is None or r <= upto for _, p, _, _ in segs[segment])


def check_reads(afs, runs, rng, n_ranges=40):
    for seg in (0, 1):
        want = view(runs, seg)
        assert afs.cat_file(str(seg)) == want
        assert afs.info(str(seg))["size"] == len(want)
        for _ in range(n_ranges):
            a = rng.randint(0, len(want))
            b = rng.randint(a, min(len(want), a + rng.choice([1, 10, 3000, 20000])))
            assert afs.cat_file(str(seg), start=a, end=b) == want[a:b], (seg, a, b)
        assert afs.cat_file(str(seg), start=-10) == want[-10:]
        with afs.open(str(seg), "rb", block_size=1000) as f:
            f.seek(len(want) // 2)
            assert f.read(5000) == want[len(want) // 2: len(want) // 2 + 5000]
            f.seek(3)
            assert f.read(100) == want[3:103]
        # as of run 1: only that run's events
        assert afs.cat_file(f"runs/00000001/{seg}") == view(runs, seg, upto=1)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_memory_archive_layout_and_reads(compression):
    runs = make_runs()
    prefix = f"/arch-{uuid.uuid4().hex}"
    mem = fsspec.filesystem("memory")
    write_archive(mem, prefix, runs, compression=compression)
    afs = ArchiveFileSystem(fo=f"memory://{prefix}", skip_instance_cache=True)
    assert afs.ls("", detail=False) == ["0", "1", "runs"]
    assert afs.ls("runs", detail=False) == ["runs/00000001", "runs/00000002"]
    assert afs.ls("runs/00000001", detail=False) == ["runs/00000001/0", "runs/00000001/1"]
    info = afs.info("0")
    assert info["type"] == "file" and info["events"] == 60 and info["run"] == 2
    assert info["mtime"] == runs[2][0][-1][3] / 1e9  # last event time, never "now"
    assert afs.info("runs")["type"] == "directory" and afs.isdir("runs/00000002") and afs.isfile("1")
    assert not afs.exists("2") and not afs.exists("runs/00000003") and not afs.exists("nope")
    check_reads(afs, runs, random.Random(5))
    with pytest.raises(PermissionError):
        afs.open("0", "wb")
    with pytest.raises(IsADirectoryError):
        afs.cat_file("runs")


def test_local_directory_through_the_entry_point(tmp_path):
    runs = make_runs(seed=2, runs=1)
    local = fsspec.filesystem("file", auto_mkdir=True)
    write_archive(local, str(tmp_path / "arch"), runs, object_size=700)
    # the chained URL form a user (and `stream-backend mount`) types
    with fsspec.open(f"sbarchive://1::{tmp_path}/arch", "rb") as f:
        assert f.read() == view(runs, 1)
    fs, path = fsspec.core.url_to_fs(f"sbarchive::{tmp_path}/arch")
    assert isinstance(fs, ArchiveFileSystem) and path == ""
    assert fs.ls(path, detail=False) == ["0", "1", "runs"]
    check_reads(fs, runs, random.Random(6), n_ranges=10)


def test_new_runs_appear_and_damage_is_reported(tmp_path):
    runs = make_runs(seed=3, runs=3)
    mem = fsspec.filesystem("memory")
    prefix = f"/arch-{uuid.uuid4().hex}"
    write_archive(mem, prefix, {1: runs[1]})
    afs = ArchiveFileSystem(fo=f"memory://{prefix}", skip_instance_cache=True, cache_ttl=3600)
    assert afs.cat_file("0") == view(runs, 0, upto=1)
    # a second export run continues the chain; the view follows after a refresh
    mem2 = fsspec.filesystem("memory")
    other = f"/arch-{uuid.uuid4().hex}"
    write_archive(mem2, other, {1: runs[1], 2: runs[2]})
    for key in mem2.find(other):
        rel = key[len(other) + 1:]
        if rel.startswith("runs/00000002") or not mem.exists(f"{prefix}/{rel}"):
            mem.pipe_file(f"{prefix}/{rel}", mem2.cat_file(key))
    assert afs.ls("runs", detail=False) == ["runs/00000001"]  # cached
    afs.invalidate_cache()
    assert afs.ls("runs", detail=False, refresh=True) == ["runs/00000001", "runs/00000002"]
    assert afs.cat_file("0") == view(runs, 0, upto=2)
    # flip one byte of one data object: reading it fails with a clear corruption error
    key = sorted(k for k in mem.find(f"{prefix}/data/000000") if k.endswith(".sbo"))[3]
    blob = bytearray(mem.cat_file(key))
    blob[len(blob) // 2] ^= 0x10
    mem.pipe_file(key, bytes(blob))
    with pytest.raises(CorruptionError, match=key.rsplit("/", 1)[-1]) as info:
        afs.cat_file("0")
    assert isinstance(info.value, OSError)
    # a missing archive and a newer format are told apart
    with pytest.raises(FileNotFoundError) as info:
        ArchiveFileSystem(fo=f"memory:///nothing-{uuid.uuid4().hex}", skip_instance_cache=True)
    assert isinstance(info.value, NotFoundError)
    newer = serialize_identity(SOURCE).replace(b'"version":1', b'"version":99')
    mem.pipe_file(f"{prefix}/archive.json", newer)
    with pytest.raises(FormatVersionError):
        ArchiveFileSystem(fo=f"memory://{prefix}", skip_instance_cache=True)


def test_s3_archive_ranged_reads_fetch_only_needed_bytes(s3_bucket):
    runs = make_runs(seed=4, runs=2, per_run=60, big=40_000)
    s3 = s3_bucket.fs()
    write_archive(s3, f"{s3_bucket.name}/arch", runs, object_size=256 * 1024)
    afs = ArchiveFileSystem(fo=f"{s3_bucket.name}/arch", target_protocol="s3",
                            target_options=s3_bucket.storage_options, skip_instance_cache=True)
    assert afs.ls("", detail=False) == ["0", "1", "runs"]
    want = view(runs, 0)
    assert afs.cat_file("0") == want
    # count what a small read fetches from S3 (the real s3fs does the fetching)
    fetched = []
    real = afs.target.cat_file

    def counting(path, start=None, end=None, **kw):
        data = real(path, start=start, end=end, **kw)
        fetched.append((path, start, end, len(data)))
        return data

    afs.target.cat_file = counting
    rng = random.Random(9)
    for _ in range(20):
        a = rng.randint(0, len(want) - 100)
        fetched.clear()
        assert afs.cat_file("0", start=a, end=a + 100) == want[a:a + 100]
        assert fetched and all(s is not None for _, s, _, _ in fetched)  # ranged GETs only
        # at most one index interval (64 KiB) plus the range, per touched object
        assert sum(n for *_, n in fetched) <= len(fetched) * (64 * 1024 + 40_000 + 200)
    # through the chained URL with options for the inner filesystem
    with fsspec.open(f"sbarchive://1::s3://{s3_bucket.name}/arch", "rb", s3=s3_bucket.storage_options) as f:
        assert f.read() == view(runs, 1)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 3000), max_size=30), object_size=st.integers(60, 5000),
       compression=st.sampled_from(["none", "zstd"]), data=st.data())
def test_any_range_of_any_archive_reads_back(sizes, object_size, compression, data):
    """The file view is an offset map over objects, spillover and runs: any range of it
    equals the same range of the concatenated payloads."""
    cut = data.draw(st.integers(0, len(sizes)))
    evs = [(i, bytes([i % 251]) * n, None, None) for i, n in enumerate(sizes)]
    runs = {1: {0: evs[:cut], 1: []}, 2: {0: evs[cut:], 1: evs[:3]}}
    mem = fsspec.filesystem("memory")
    prefix = f"/arch-{uuid.uuid4().hex}"
    write_archive(mem, prefix, runs, object_size=object_size, compression=compression)
    afs = ArchiveFileSystem(fo=f"memory://{prefix}", skip_instance_cache=True)
    want = view(runs, 0)
    for _ in range(5):
        a = data.draw(st.integers(0, len(want)))
        b = data.draw(st.integers(a, len(want)))
        assert afs.cat_file("0", start=a, end=b) == want[a:b]
    assert afs.cat_file("runs/00000001/0") == view(runs, 0, upto=1)
    assert afs.cat_file("1") == view(runs, 1)
    mem.rm(prefix, recursive=True)


def test_index_bounds_what_a_small_read_fetches():
    """Objects much larger than the index interval: a 10-byte read fetches about one
    interval, not the object (memory:// target, counted)."""
    evs = [(i, bytes([i % 256]) * 1000, "k", i) for i in range(3000)]  # 3 MB
    mem = fsspec.filesystem("memory")
    prefix = f"/arch-{uuid.uuid4().hex}"
    write_archive(mem, prefix, {1: {0: evs, 1: []}}, object_size=4 << 20)
    afs = ArchiveFileSystem(fo=f"memory://{prefix}", skip_instance_cache=True)
    fetched = []
    real = afs.target.cat_file

    def counting(path, start=None, end=None, **kw):
        data = real(path, start=start, end=end, **kw)
        if "/data/" in path:
            fetched.append(len(data))
        return data

    afs.target.cat_file = counting
    want = view({1: {0: evs}}, 0)
    for a in (0, 1_234_567, len(want) - 10):
        fetched.clear()
        assert afs.cat_file("0", start=a, end=a + 10) == want[a:a + 10]
        assert sum(fetched) <= 128 * 1024 + 1100, fetched  # one interval (128 KiB here) + a record
    mem.rm(prefix, recursive=True)
