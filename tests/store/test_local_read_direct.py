"""The local store's large-read path (``_View._read_direct``): payloads are preadv'ed
straight into the result, guessing each record has the shape of the one before.

Whatever the event sizes, keys, batch size and read pattern, every range reads back equal
to the concatenated payloads; a wrong guess (sizes that change) is never served; a
damaged byte anywhere in a large range raises CorruptionError instead of being served.
"""

from __future__ import annotations

import os
import random
import tempfile
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_backend.errors import CorruptionError
from stream_backend.stores.local import reader, records
from stream_backend.stores.local import LocalStore


NAMES = ("DIRECT_MIN", "DIRECT_MIN_EVENT", "DIRECT_MAX_RECORDS", "DIRECT_SPLIT")


@contextmanager
def direct_limits(min_range: int, min_event: int, max_records: int, split: int):
    """Small limits so small streams take the direct path, in small batches, split
    between this thread and the helper thread when ``split`` is small."""
    old = [getattr(reader, n) for n in NAMES]
    for n, v in zip(NAMES, (min_range, min_event, max_records, split)):
        setattr(reader, n, v)
    try:
        yield
    finally:
        for n, v in zip(NAMES, old):
            setattr(reader, n, v)


# runs of equal-sized events (the guess holds) with changes of size and key in between
run = st.tuples(
    st.integers(min_value=0, max_value=700),  # payload size
    st.integers(min_value=1, max_value=6),  # events in the run
    st.one_of(st.none(), st.sampled_from(["", "k", "key-2"])),
)
reads = st.lists(
    st.tuples(st.integers(min_value=0, max_value=20_000), st.integers(1, 6000)), max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    runs=st.lists(run, min_size=1, max_size=12),
    reads=reads,
    chunk=st.integers(min_value=1, max_value=3000),
    max_records=st.integers(min_value=1, max_value=5),
    split=st.sampled_from([1, 1000, 1 << 30]),
    seed=st.integers(0, 2**16),
)
def test_direct_reads_equal_the_payloads(runs, reads, chunk, max_records, split, seed):
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as root, direct_limits(1, 1, max_records, split):
        s = LocalStore(root=root)
        s.create_stream("sc", "st")
        model = bytearray()
        with s.writer("sc", "st") as w:
            for size, count, key in runs:
                for _ in range(count):
                    p = rng.randbytes(size)
                    w.append(p, routing_key=key)
                    model += p
        total = len(model)
        # random ranges, each from a fresh view and from the same one
        fresh = LocalStore(root=root)
        for off, ln in reads:
            off %= total + 1
            want = bytes(model[off : off + ln])
            assert s.read_range("sc", "st", 0, off, ln) == want
            assert fresh.read_range("sc", "st", 0, off, ln) == want
        fresh.close()
        # sequential reads in chunks (cursor and partly-read-record cache carry over)
        got, pos = [], 0
        while pos < total:
            b = s.read_range("sc", "st", 0, pos, chunk)
            assert b, pos
            assert isinstance(b, bytes)
            got.append(b)
            pos += len(b)
        assert b"".join(got) == model
        s.close()


def _layout(log: str) -> list[tuple[int, int, int]]:
    """(record start, payload start, payload length) of every record of a log."""
    data = open(log, "rb").read()
    out, o = [], 0
    while o < len(data):
        _c, ln, *_r, kl, _m, _f = records.HEADER.unpack_from(data, o)
        out.append((o, o + records.HEADER_SIZE + kl, ln))
        o += records.HEADER_SIZE + kl + ln
    return out


@pytest.mark.parametrize("split", [1 << 30, 100_000], ids=["one-thread", "split"])
@pytest.mark.parametrize("where", ["payload", "header-size", "key", "tail-of-partial"])
def test_direct_reads_never_serve_damage(tmp_path, monkeypatch, where, split):
    monkeypatch.setattr(reader, "DIRECT_SPLIT", split)
    root = str(tmp_path)
    s = LocalStore(root=root)
    s.create_stream("sc", "st")
    ev = 20_000
    with s.writer("sc", "st") as w:
        for i in range(60):
            w.append(bytes([i]) * ev, routing_key="k")
    s.close()
    log = os.path.join(root, "sc", "st", "segment-000000.log")
    recs = _layout(log)
    victim = 37
    start, p0, ln = recs[victim]
    flip = {
        "payload": p0 + ln // 2,
        "header-size": start + 4,  # the payload length: the guess of the next shape fails
        "key": p0 - 1,
        "tail-of-partial": p0 + ln - 1,
    }[where]
    with open(log, "r+b") as f:
        f.seek(flip)
        b = f.read(1)
        f.seek(flip)
        f.write(bytes([b[0] ^ 0x10]))
    s = LocalStore(root=root)
    try:
        # the whole stream in one large read, and sequentially in 1 MiB / odd chunks
        with pytest.raises(CorruptionError):
            s.read_range("sc", "st", 0, 0, 60 * ev)
        for chunk in (1 << 20, 65_536 + 7):
            s2 = LocalStore(root=root)
            pos = 0
            with pytest.raises(CorruptionError):
                while pos < 60 * ev:
                    b = s2.read_range("sc", "st", 0, pos, chunk)
                    assert b == b"".join(
                        bytes([i]) * ev for i in range(60)
                    )[pos : pos + len(b)], "damaged bytes were served"
                    pos += len(b)
            assert pos <= victim * ev
            s2.close()
        # a range ending inside the damaged record still checks the whole record
        with pytest.raises(CorruptionError):
            LocalStore(root=root).read_range("sc", "st", 0, (victim - 3) * ev, 3 * ev + 10)
        # everything before the damage is still served
        assert s.read_range("sc", "st", 0, 0, victim * ev) == b"".join(
            bytes([i]) * ev for i in range(victim)
        )
    finally:
        s.close()
