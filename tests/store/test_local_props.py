"""Property tests of the local store's record framing and offset index.

Any sequence of events (0 B to several KiB, with a small max_event_size) written in any
number of writer sessions reads back identical through read_events and through read_range
at any (offset, length); locate/offset_of agree with a brute-force model; a damaged,
truncated, stale or missing index never changes a byte that is served.
"""

from __future__ import annotations

import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_backend.errors import EventTooLargeError
from stream_backend.stores.local import offset_index, records
from stream_backend.stores.local import LocalStore

MAX = 3000

#: large payloads (up to past the max event size) from a size and a seed: drawing their bytes
#: one by one overran Hypothesis's entropy budget (a FailedHealthCheck in a CI run)
large = st.builds(lambda n, seed: random.Random(seed).randbytes(n), st.integers(1000, MAX + 200),
                  st.integers(0, 2**32 - 1))
event = st.tuples(
    st.one_of(st.binary(max_size=64), large),
    st.one_of(st.none(), st.text(max_size=8)),
)
sessions = st.lists(st.lists(event, max_size=40), min_size=1, max_size=4)


@contextmanager
def small_spacing(n: int):
    """A tiny index spacing so small tests still exercise many entries and walks."""
    old = offset_index.SPACING
    offset_index.SPACING = n
    try:
        yield
    finally:
        offset_index.SPACING = old


def _write_sessions(store, batches):
    kept = []
    for batch in batches:
        with store.writer("p", "s") as w:
            for i, (payload, key) in enumerate(batch):
                if len(payload) > MAX:
                    with pytest.raises(EventTooLargeError):
                        w.append(payload, routing_key=key)
                    continue
                w.append(payload, routing_key=key)
                kept.append((payload, key))
                if i % 7 == 6:
                    w.flush()
    return kept


def _model(kept):
    starts, acc = [], 0
    for p, _k in kept:
        starts.append(acc)
        acc += len(p)
    return starts, acc


def _check_all(store, kept, data, rnd_points):
    evs = list(store.read_events("p", "s", 0))
    assert [(e.payload, e.routing_key) for e in evs] == kept
    assert [e.seq for e in evs] == list(range(len(kept)))
    starts, total = _model(kept)
    assert [e.offset for e in evs] == starts
    info = store.segment_info("p", "s", 0)
    assert (info.tail_seq, info.events, info.length) == (len(kept), len(kept), total)
    assert store.read_range("p", "s", 0, 0, total + 5) == data
    for off, ln in rnd_points:
        off = off % (total + 2)
        assert store.read_range("p", "s", 0, off, ln) == data[off : off + ln]
    idx = store.offset_index("p", "s", 0)
    assert idx.length == total
    for seq, st_ in enumerate(starts):
        assert idx.offset_of(seq) == st_
    for off, _ln in rnd_points:
        if total == 0:
            break
        off = off % total
        # brute force: the first non-empty event holding byte `off`
        seq = max(
            i
            for i, s in enumerate(starts)
            if s <= off and len(kept[i][0]) > 0 and off < s + len(kept[i][0])
        )
        assert idx.locate(off) == (seq, off - starts[seq])
    assert idx.locate(total) == (len(kept), 0)
    with pytest.raises(ValueError):
        idx.locate(total + 1)
    # from_seq reads
    for k in {0, len(kept) // 2, len(kept)}:
        assert [e.payload for e in store.read_events("p", "s", 0, from_seq=k)] == [
            p for p, _ in kept[k:]
        ]


points = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 9000)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=sessions, rnd_points=points, spacing=st.sampled_from([64, 1000, 65536]))
def test_round_trip_any_events(batches, rnd_points, spacing):
    with small_spacing(spacing), tempfile.TemporaryDirectory() as root:
        store = LocalStore(root=root, max_event_size=MAX)
        store.create_stream("p", "s")
        kept = _write_sessions(store, batches)
        data = b"".join(p for p, _ in kept)
        _check_all(store, kept, data, rnd_points)
        store.close()
        # a fresh process-view (new store object) sees the same
        store = LocalStore(root=root, max_event_size=MAX)
        _check_all(store, kept, data, rnd_points)
        store.close()


damage = st.sampled_from(
    ["missing", "truncate", "flip", "stale", "entry-pos", "entry-foff", "header"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(event, min_size=1, max_size=40), min_size=1, max_size=3),
    how=damage,
    where=st.integers(0, 10**6),
    rnd_points=points,
)
def test_index_damage_never_changes_bytes(batches, how, where, rnd_points):
    with small_spacing(200), tempfile.TemporaryDirectory() as root:
        store = LocalStore(root=root, max_event_size=MAX)
        store.create_stream("p", "s")
        kept = _write_sessions(store, batches)
        store.close()
        data = b"".join(p for p, _ in kept)
        idx = Path(root) / "p" / "s" / "segment-000000.idx"
        raw = bytearray(idx.read_bytes())
        if how == "missing":
            idx.unlink()
        elif how == "truncate":
            idx.write_bytes(bytes(raw[: where % (len(raw) + 1)]))
        elif how == "flip":
            raw[where % len(raw)] ^= 1 << (where % 8)
            idx.write_bytes(bytes(raw))
        elif how == "stale":
            # an index that claims more than the log holds (log replaced by a shorter one)
            log = Path(root) / "p" / "s" / "segment-000000.log"
            size = log.stat().st_size
            os.truncate(log, size - size // 3)
            cut = _reference_cut(root, size - size // 3, kept)
            kept = kept[:cut]
            data = b"".join(p for p, _ in kept)
        elif how in ("entry-pos", "entry-foff"):
            # an entry that still looks plausible (monotonic) but lies
            n = (len(raw) - offset_index.IDX_HEADER_SIZE) // offset_index.ENTRY_SIZE
            if n > 1:
                i = 1 + where % (n - 1)
                o = (
                    offset_index.IDX_HEADER_SIZE
                    + i * offset_index.ENTRY_SIZE
                    + (16 if how == "entry-pos" else 8)
                )
                raw[o : o + 8] = (int.from_bytes(raw[o : o + 8], "little") + 1).to_bytes(
                    8, "little"
                )
                idx.write_bytes(bytes(raw))
        elif how == "header":
            raw[8] ^= 0xFF
            idx.write_bytes(bytes(raw))
        store = LocalStore(root=root, max_event_size=MAX)
        if how == "stale":
            # a writer open truncates the torn record left by the cut
            store.writer("p", "s").close()
        _check_all(store, kept, data, rnd_points)
        # a writer repairs the index, and appends go on
        with store.writer("p", "s") as w:
            w.append(b"tail", routing_key="t")
        store.close()
        store = LocalStore(root=root, max_event_size=MAX)
        _check_all(store, kept + [(b"tail", "t")], data + b"tail", rnd_points)
        store.close()


def _reference_cut(root, size, kept) -> int:
    """How many whole records fit in the first ``size`` bytes of the log."""
    pos = 0
    for n, (p, k) in enumerate(kept):
        rec = records.HEADER_SIZE + len(p) + (len(k.encode()) if k is not None else 0)
        if pos + rec > size:
            return n
        pos += rec
    return len(kept)


@given(
    payload=st.binary(max_size=5000),
    key=st.one_of(st.none(), st.text(max_size=20)),
    seq=st.integers(0, 2**63),
    foff=st.integers(0, 2**63),
    flip=st.integers(0, 10**6),
)
def test_record_framing(payload, key, seq, foff, flip):
    kb = key.encode() if key is not None else None
    rec = records.encode(payload, kb, seq, foff, 123)
    st_, end, ln, ts, kl, fl, _ = records.check(rec, 0, len(rec), seq, foff)
    assert (st_, end, ln, ts) == (records.OK, len(rec), len(payload), 123)
    assert bool(fl & records.FLAG_KEY) == (key is not None)
    assert rec[records.HEADER_SIZE + kl :] == payload
    # every prefix is incomplete, never OK
    for cut in {0, 1, records.HEADER_SIZE - 1, records.HEADER_SIZE, len(rec) - 1}:
        if 0 <= cut < len(rec):
            assert records.check(rec[:cut], 0, cut, seq, foff)[0] == records.INCOMPLETE
    # any single bit flip is caught (bad or incomplete, never OK)
    bad = bytearray(rec)
    i = flip % len(bad)
    bad[i] ^= 1 << (flip % 8)
    assert records.check(bytes(bad), 0, len(bad), seq, foff)[0] != records.OK
