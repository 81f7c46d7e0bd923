"""Property: whatever sequence of writes goes in, the file view gives the same bytes back —
through cat_file, fsspec.open, any (offset, length) range and any seek/read sequence —
and the events are cut at exactly event_size (spillover) within each write session."""

from __future__ import annotations

import itertools
import random

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SMALL_EVENT

_names = itertools.count()

# a write session = one open("ab") ... close(); inside it, write() calls of these sizes
write_sizes = st.integers(min_value=0, max_value=4 * SMALL_EVENT + 3)
session = st.lists(write_sizes, min_size=0, max_size=5)
sessions = st.lists(session, min_size=1, max_size=4)

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _expected_event_sizes(sessions_bytes: list[int], event_size: int) -> list[int]:
    sizes = []
    for n in sessions_bytes:
        sizes += [event_size] * (n // event_size) + ([n % event_size] if n % event_size else [])
    return sizes


ROUND_TRIP_ARGS = dict(
    plan=sessions,
    seed=st.integers(0, 2**32 - 1),
    event_size=st.sampled_from([SMALL_EVENT, 1, 7, 300]),
    probes=st.lists(
        st.tuples(st.integers(-20, 6 * SMALL_EVENT), st.integers(-20, 6 * SMALL_EVENT)), max_size=8
    ),
)


def check_writes_read_back(fs, scope, plan, seed, event_size, probes, **url_options):
    """Write ``plan`` (sessions of write() sizes) into a new stream of ``fs`` and check
    every way of reading it back, and the event cut. Shared by the local and Pravega runs."""
    rnd = random.Random(seed)
    stream = f"s{next(_names)}"
    path = f"{scope}/{stream}"
    expected = bytearray()
    for writes in plan:
        with fs.open(path, "ab", event_size=event_size) as f:
            for n in writes:
                data = rnd.randbytes(n)
                assert f.write(data) == n
                expected += data
    expected = bytes(expected)

    assert fs.size(path) == len(expected)
    assert fs.cat_file(path) == expected
    with fsspec.open(fs.unstrip_protocol(path), "rb", **url_options) as f:
        assert f.read() == expected
    for start, end in probes:  # python-slice semantics, negatives included
        assert fs.cat_file(path, start, end) == expected[start:end], (start, end)

    # seek/read sequences through a small read-ahead cache
    with fs.open(path, "rb", block_size=97) as f:
        for _ in range(10):
            pos = rnd.randint(0, len(expected) + 5)
            n = rnd.randint(0, 3 * SMALL_EVENT)
            f.seek(pos)
            assert f.read(n) == expected[pos:pos + n]
            assert f.tell() == pos + len(expected[pos:pos + n])

    segment = fs.info(path)["segment"]
    sizes = [len(e.payload) for e in fs.store.read_events(scope, stream, segment)]
    assert sizes == _expected_event_sizes([sum(w) for w in plan], event_size)


@PROPERTY_SETTINGS
@given(**ROUND_TRIP_ARGS)
def test_any_writes_read_back_byte_identical(sfs, store_root, plan, seed, event_size, probes):
    check_writes_read_back(
        sfs, "prop", plan, seed, event_size, probes,
        root=str(store_root), max_event_size=SMALL_EVENT,
    )


@PROPERTY_SETTINGS
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3 * SMALL_EVENT)), min_size=1, max_size=10
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_segment_file_holds_exactly_what_was_written_to_it(sfs, ops, seed):
    rnd = random.Random(seed)
    stream = f"m{next(_names)}"
    sfs.mkdir(f"prop/{stream}", segments=3)
    expected = {0: b"", 1: b"", 2: b""}
    for segment, n in ops:
        data = rnd.randbytes(n)
        with sfs.open(f"prop/{stream}/{segment}", "ab") as f:
            f.write(data)
        expected[segment] += data
    for segment, data in expected.items():
        assert sfs.cat(f"prop/{stream}/{segment}") == data
        if data:
            cut = rnd.randint(0, len(data))
            assert sfs.cat_file(f"prop/{stream}/{segment}", cut) == data[cut:]


@pytest.mark.parametrize(
    "size", [0, 1, SMALL_EVENT - 1, SMALL_EVENT, SMALL_EVENT + 1, 5 * SMALL_EVENT]
)
def test_boundary_sizes(sfs, size):
    data = bytes(i % 251 for i in range(size))
    sfs.pipe(f"edge/s{size}", data)
    assert sfs.cat(f"edge/s{size}") == data
    assert sfs.info(f"edge/s{size}")["events"] == len(_expected_event_sizes([size], SMALL_EVENT))
