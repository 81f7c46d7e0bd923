"""The StreamStore contract, run against every implementation (the ``store`` fixture).

Written against the protocol in stream_backend/stores/base.py only. Seqs are only
assumed monotonic and deterministic (local: dense; Pravega: byte offsets); routing keys
and timestamps may come back as None; the max event size is whatever the store says.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from stream_backend.errors import (
    AlreadyExistsError,
    EventTooLargeError,
    NotEmptyError,
    NotFoundError,
    SealedError,
    UsageError,
    WriterBusyError,
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scope(store):
    name = _name("sc")
    store.create_scope(name)
    return name


def _payloads(n: int, size=lambda i: (i * 37) % 300):
    return [bytes([i % 251]) * size(i) + i.to_bytes(4, "big") for i in range(n)]


def _write(store, scope, stream, payloads, segment=0, key=None):
    with store.writer(scope, stream) as w:
        for p in payloads:
            w.append(p, routing_key=key, segment=segment)


def test_its_url_protocol_reaches_it(store):
    """``PROTOCOL://`` URLs open this kind of store, and fsspec resolves the protocol to
    the filesystem the registry names for it."""
    import fsspec

    from stream_backend.stores import registry

    k = registry.kind(store.protocol)
    assert f"{type(store).__module__}:{type(store).__name__}" == k.factory
    fs_cls = fsspec.get_filesystem_class(store.protocol)
    assert f"{fs_cls.__module__}:{fs_cls.__name__}" == k.fs_class


def test_scopes_and_streams_listed_sorted(store):
    a, b = _name("b"), _name("a")
    store.create_scope(a)
    store.create_scope(b)
    scopes = store.list_scopes()
    assert a in scopes and b in scopes
    assert scopes == sorted(scopes)
    for s in ("zz", "mm", "aa"):
        store.create_stream(a, s)
    assert store.list_streams(a) == ["aa", "mm", "zz"]
    assert store.list_streams(b) == []


def test_create_twice(store, scope):
    store.create_stream(scope, "s1")
    with pytest.raises(AlreadyExistsError):
        store.create_stream(scope, "s1")
    store.create_stream(scope, "s1", exist_ok=True)
    with pytest.raises(AlreadyExistsError):
        store.create_scope(scope)
    store.create_scope(scope, exist_ok=True)


def test_create_stream_creates_scope(store):
    sc = _name("auto")
    store.create_stream(sc, "s", segments=2)
    assert sc in store.list_scopes()
    assert store.stream_info(sc, "s").segment_count == 2


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", ".hidden", "x" * 256])
def test_bad_names(store, bad):
    with pytest.raises(UsageError):
        store.create_scope(bad)
    with pytest.raises(UsageError):
        store.create_stream("okscope", bad)


def test_unknown_names(store, scope):
    with pytest.raises(NotFoundError):
        store.stream_info(scope, "nope")
    with pytest.raises(NotFoundError):
        store.list_streams(_name("nope"))
    with pytest.raises(NotFoundError):
        list(store.read_events(scope, "nope", 0))
    with pytest.raises(NotFoundError):
        store.writer(scope, "nope")
    store.create_stream(scope, "one")
    with pytest.raises(NotFoundError):
        store.segment_info(scope, "one", 5)


def test_delete_scope_and_stream(store, scope):
    store.create_stream(scope, "s")
    with pytest.raises(NotEmptyError):
        store.delete_scope(scope)
    store.delete_stream(scope, "s")
    assert store.list_streams(scope) == []
    with pytest.raises(NotFoundError):
        store.stream_info(scope, "s")
    store.delete_scope(scope)
    assert scope not in store.list_scopes()
    with pytest.raises(NotFoundError):
        store.delete_scope(scope)


def test_empty_stream_info(store, scope):
    store.create_stream(scope, "e", segments=3)
    info = store.stream_info(scope, "e")
    assert info.segment_count == 3 and not info.sealed
    assert info.events == 0 and info.length == 0 and info.last_append is None
    for seg in info.segments:
        assert seg.tail_seq == seg.head_seq
        assert list(store.read_events(scope, "e", seg.segment)) == []
        assert store.read_range(scope, "e", seg.segment, 0, 100) == b""


def test_events_round_trip_in_order(store, scope):
    store.create_stream(scope, "rt")
    payloads = _payloads(500) + [b""]
    t0 = time.time()
    _write(store, scope, "rt", payloads)
    evs = list(store.read_events(scope, "rt", 0))
    assert [e.payload for e in evs] == payloads
    seqs = [e.seq for e in evs]
    assert seqs == sorted(set(seqs)), "seqs strictly increasing"
    assert all(e.segment == 0 for e in evs)
    offsets = [e.offset for e in evs]
    expect, acc = [], 0
    for p in payloads:
        expect.append(acc)
        acc += len(p)
    assert offsets == expect
    # deterministic: a second read gives the same seqs
    assert [e.seq for e in store.read_events(scope, "rt", 0)] == seqs
    seg = store.segment_info(scope, "rt", 0)
    assert seg.events == len(payloads)
    assert seg.length == sum(map(len, payloads))
    assert seg.head_seq <= seqs[0] and seg.tail_seq > seqs[-1]
    assert seg.last_append is not None and t0 - 5 <= seg.last_append <= time.time() + 5
    # stable: reading does not move it
    assert store.segment_info(scope, "rt", 0).last_append == seg.last_append
    for e in evs:
        assert e.timestamp is None or t0 - 5 <= e.timestamp <= time.time() + 5


def test_independent_readers_interleaved(store, scope):
    """Many readers of one stream at once, each at its own pace, on one segment and on
    several: none disturbs another (Pravega: each has its own reader group)."""
    store.create_stream(scope, "many", segments=2)
    payloads = _payloads(120)
    with store.writer(scope, "many") as w:
        for i, p in enumerate(payloads):
            w.append(p, f"k{i % 7}")
    want = {s: [e.payload for e in store.read_events(scope, "many", s)] for s in (0, 1)}
    assert sum(map(len, want.values())) == len(payloads)
    readers = [(s, store.read_events(scope, "many", s)) for s in (0, 1, 0, 1)]
    got = [[] for _ in readers]
    live = set(range(len(readers)))
    while live:  # round-robin: reader k takes k+1 events per turn
        for k in sorted(live):
            for _ in range(k + 1):
                e = next(readers[k][1], None)
                if e is None:
                    live.discard(k)
                    break
                got[k].append(e.payload)
    for (s, _), g in zip(readers, got):
        assert g == want[s]


def test_read_from_and_to_seq(store, scope):
    store.create_stream(scope, "ft")
    payloads = _payloads(200)
    _write(store, scope, "ft", payloads)
    evs = list(store.read_events(scope, "ft", 0))
    for k in (0, 1, 57, 199):
        got = list(store.read_events(scope, "ft", 0, from_seq=evs[k].seq))
        assert [e.payload for e in got] == payloads[k:]
        got = list(store.read_events(scope, "ft", 0, from_seq=evs[k].seq, to_seq=evs[-1].seq))
        assert [e.payload for e in got] == payloads[k:199]
    tail = store.segment_info(scope, "ft", 0).tail_seq
    assert list(store.read_events(scope, "ft", 0, from_seq=tail)) == []


def test_to_seq_none_is_tail_at_call_time(store, scope):
    store.create_stream(scope, "tc")
    _write(store, scope, "tc", [b"a", b"b"])
    it = store.read_events(scope, "tc", 0)
    first = next(it)
    _write(store, scope, "tc", [b"c"])
    rest = list(it)
    assert [first.payload] + [e.payload for e in rest] == [b"a", b"b"]  # "c" came after the read began


def test_appends_continue_after_reopen(store, scope):
    store.create_stream(scope, "ro")
    _write(store, scope, "ro", [b"one", b"two"])
    _write(store, scope, "ro", [b"three"])
    evs = list(store.read_events(scope, "ro", 0))
    assert [e.payload for e in evs] == [b"one", b"two", b"three"]
    assert evs[0].seq < evs[1].seq < evs[2].seq


def test_routing_key_keeps_order_and_segment(store, scope):
    store.create_stream(scope, "rk", segments=4)
    keys = [f"key-{i}" for i in range(12)]
    with store.writer(scope, "rk") as w:
        for i in range(240):
            k = keys[i % len(keys)]
            w.append(f"{k}:{i}".encode(), routing_key=k)
    per_key_segment: dict[str, set] = {}
    per_key_order: dict[str, list] = {}
    total = 0
    for seg in range(4):
        for e in store.read_events(scope, "rk", seg):
            k, i = e.payload.decode().split(":")
            assert e.routing_key in (None, k)
            per_key_segment.setdefault(k, set()).add(seg)
            per_key_order.setdefault(k, []).append(int(i))
            total += 1
    assert total == 240
    assert all(len(s) == 1 for s in per_key_segment.values())
    assert all(v == sorted(v) for v in per_key_order.values())


def test_explicit_segment_pins(store, scope):
    store.create_stream(scope, "pin", segments=3)
    with store.writer(scope, "pin") as w:
        for i in range(30):
            w.append(f"{i}".encode(), routing_key="same-key", segment=i % 3)
    for seg in range(3):
        assert [int(e.payload) for e in store.read_events(scope, "pin", seg)] == list(
            range(seg, 30, 3)
        )


def test_no_key_spreads_or_keeps_all(store, scope):
    store.create_stream(scope, "nk", segments=2)
    with store.writer(scope, "nk") as w:
        for i in range(20):
            w.append(b"%d" % i)
    got = sorted(int(e.payload) for seg in range(2) for e in store.read_events(scope, "nk", seg))
    assert got == list(range(20))


def test_event_too_large(store, scope):
    store.create_stream(scope, "big")
    limit = store.stream_info(scope, "big").max_event_size
    with store.writer(scope, "big") as w:
        with pytest.raises(EventTooLargeError):
            w.append(b"x" * (limit + 1))
        w.append(b"small")
    assert [e.payload for e in store.read_events(scope, "big", 0)] == [b"small"]


def test_seal(store, scope):
    store.create_stream(scope, "sl")
    _write(store, scope, "sl", [b"a"])
    store.seal_stream(scope, "sl")
    assert store.stream_info(scope, "sl").sealed
    with pytest.raises(SealedError):
        with store.writer(scope, "sl") as w:
            w.append(b"b")
            w.flush()
    assert [e.payload for e in store.read_events(scope, "sl", 0)] == [b"a"]
    # follow on a sealed stream ends
    assert [e.payload for e in store.read_events(scope, "sl", 0, follow=True)] == [b"a"]


def test_second_writer_busy(store, scope):
    store.create_stream(scope, "wb")
    with store.writer(scope, "wb") as w:
        w.append(b"1")
        with pytest.raises(WriterBusyError):
            store.writer(scope, "wb")
    with store.writer(scope, "wb") as w:  # free again after close
        w.append(b"2")
    assert [e.payload for e in store.read_events(scope, "wb", 0)] == [b"1", b"2"]


def test_flush_makes_events_visible(store, scope):
    store.create_stream(scope, "fl")
    with store.writer(scope, "fl") as w:
        w.append(b"x" * 10)
        w.flush()
        assert [e.payload for e in store.read_events(scope, "fl", 0)] == [b"x" * 10]
        assert store.segment_info(scope, "fl", 0).length == 10


def test_read_range_is_concatenation(store, scope):
    store.create_stream(scope, "rr")
    payloads = _payloads(300, size=lambda i: (i * 131) % 2000)
    _write(store, scope, "rr", payloads)
    data = b"".join(payloads)
    assert store.read_range(scope, "rr", 0, 0, len(data) + 100) == data
    for off, ln in [
        (0, 1),
        (1, 7),
        (999, 5000),
        (len(data) - 3, 10),
        (len(data), 5),
        (len(data) + 9, 5),
    ]:
        assert store.read_range(scope, "rr", 0, off, ln) == data[off : off + ln]


def test_offset_index_agrees_with_events(store, scope):
    store.create_stream(scope, "oi")
    payloads = _payloads(150, size=lambda i: 0 if i % 10 == 3 else (i * 53) % 700)
    _write(store, scope, "oi", payloads)
    evs = list(store.read_events(scope, "oi", 0))
    idx = store.offset_index(scope, "oi", 0)
    total = sum(map(len, payloads))
    assert idx.length == total
    for e in evs:
        assert idx.offset_of(e.seq) == e.offset
        if e.payload:
            assert idx.locate(e.offset) == (e.seq, 0)
            assert idx.locate(e.offset + len(e.payload) - 1) == (e.seq, len(e.payload) - 1)
    tail = store.segment_info(scope, "oi", 0).tail_seq
    assert idx.locate(total) == (tail, 0)
    with pytest.raises(ValueError):
        idx.locate(total + 1)


def test_follow_sees_appends_until_sealed(store, scope):
    store.create_stream(scope, "fw")
    got: list[bytes] = []
    errors: list[BaseException] = []

    def reader():
        try:
            for e in store.read_events(scope, "fw", 0, follow=True):
                got.append(e.payload)
        except BaseException as e:  # pragma: no cover - surfaced below
            errors.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with store.writer(scope, "fw") as w:
        for i in range(5):
            w.append(b"e%d" % i)
            w.flush()
            time.sleep(0.05)
    deadline = time.time() + 20
    while len(got) < 5 and time.time() < deadline:
        time.sleep(0.02)
    store.seal_stream(scope, "fw")
    t.join(30)
    assert not t.is_alive(), "follow did not end after seal"
    assert not errors
    assert got == [b"e%d" % i for i in range(5)]
