"""Property: whatever sequence of writes goes in, the file view gives the same bytes back —
through cat_file, fsspec.open, any (offset, length) range and any seek/read sequence —
and the events are cut at exactly event_size (spillover) within each write session."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import SMALL_EVENT
from .roundtrip import PROPERTY_SETTINGS, ROUND_TRIP_ARGS, expected_event_sizes, check_writes_read_back, stream_name


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
    stream = f"m{stream_name()}"
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
    assert sfs.info(f"edge/s{size}")["events"] == len(expected_event_sizes([size], SMALL_EVENT))
