"""The write/read-back property shared by the local (test_roundtrip_property.py) and the
Pravega (test_pravega_fs.py) runs: one definition, two stores."""

from __future__ import annotations

import itertools
import random

import fsspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .conftest import SMALL_EVENT

_names = itertools.count()


def stream_name() -> str:
    return f"s{next(_names)}"

# a write session = one open("ab") ... close(); inside it, write() calls of these sizes
write_sizes = st.integers(min_value=0, max_value=4 * SMALL_EVENT + 3)
session = st.lists(write_sizes, min_size=0, max_size=5)
sessions = st.lists(session, min_size=1, max_size=4)

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def expected_event_sizes(sessions_bytes: list[int], event_size: int) -> list[int]:
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
    stream = stream_name()
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
    assert sizes == expected_event_sizes([sum(w) for w in plan], event_size)
