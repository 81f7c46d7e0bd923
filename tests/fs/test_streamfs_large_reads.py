"""Large ``read(n)`` calls on a stream file bypass fsspec's block cache (one copy less):
mixed with small reads, seeks, read-all and reads past the end they return exactly the
bytes and positions the cached path would, and damaged bytes still raise."""

from __future__ import annotations

import io
import os
import random
import shutil

import fsspec
import pytest

from stream_backend.fs import streamfile
from stream_backend.stores.local import records
from stream_backend.stores.local import LocalStore


def _stream(root: str, sizes: list[int], seed: int = 1) -> bytes:
    rng = random.Random(seed)
    s = LocalStore(root=root)
    s.create_stream("sc", "st")
    model = bytearray()
    with s.writer("sc", "st") as w:
        for n in sizes:
            p = rng.randbytes(n)
            w.append(p)
            model += p
    s.close()
    return bytes(model)


def test_large_and_small_reads_and_seeks_match_the_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(streamfile, "DIRECT_READ", 5000)
    root = str(tmp_path)
    model = _stream(root, [3000] * 20 + [17_000] * 10 + [1, 0, 40_000, 9000] * 3)
    rng = random.Random(7)
    with fsspec.open("stream://sc/st", "rb", root=root, block_size=8192) as f:
        ref = io.BytesIO(model)
        for _ in range(300):
            op = rng.random()
            if op < 0.2:
                to = rng.randrange(-100, len(model) + 100)
                to = max(to, 0)
                assert f.seek(to) == ref.seek(to)
            else:
                n = rng.choice([1, 100, 4999, 5000, 30_000, 100_000, -1])
                assert f.read(n) == ref.read(n)
            assert f.tell() == ref.tell()
        f.seek(0)
        with open(os.devnull, "wb") as out:
            shutil.copyfileobj(f, out)
        assert f.tell() == len(model)
        assert f.read(10**6) == b""
        f.seek(123)
        buf = bytearray(50_000)
        assert f.readinto(buf) == 50_000 and bytes(buf) == model[123 : 123 + 50_000]


def test_large_reads_raise_on_damage(tmp_path):
    root = str(tmp_path)
    _stream(root, [65_536] * 40)
    log = os.path.join(root, "sc", "st", "segment-000000.log")
    at = 25 * (records.HEADER_SIZE + 65_536) + records.HEADER_SIZE + 100
    with open(log, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 1]))
    with fsspec.open("stream://sc/st", "rb", root=root, skip_instance_cache=True) as f:
        assert len(f.read(1 << 20)) == 1 << 20
        with pytest.raises(OSError, match="corrupt"):
            while f.read(1 << 20):
                pass
