"""The file view in the archive (transfer/views.py): for any events, object size and number
of runs, each segment's view objects laid end to end are its payloads back to back, every
object's size and SHA-256 are what its manifest says, and a second pass writes nothing."""

from __future__ import annotations

import hashlib
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_backend.stores.local import LocalStore
from stream_backend.transfer.export import ExportOptions, export_stream
from stream_backend.transfer.reader import load_chain
from stream_backend.transfer.targets import open_target
from stream_backend.transfer.views import segment_view, write_views

runs_of_events = st.lists(  # runs, each a list of (segment, payload size)
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3000)), max_size=25), min_size=1, max_size=3)


@settings(max_examples=25, deadline=None)
@given(runs_of_events, st.integers(700, 9000), st.randoms(use_true_random=False))
def test_views_are_the_payloads_back_to_back(runs, object_size, rng):
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(root=f"{tmp}/store")
        store.create_stream("p", "s", segments=2)
        target = open_target(f"file://{tmp}/archive")
        payloads = {0: b"", 1: b""}
        try:
            for events in runs:
                with store.writer("p", "s") as w:
                    for segment, size in events:
                        data = rng.randbytes(size)
                        w.append(data, None, segment=segment)
                        payloads[segment] += data
                opts = ExportOptions(object_size=max(object_size, 4096), part_size=4096)
                export_stream(store, "p", "s", target, opts)
                write_views(target, object_size, 1024, 2)
            assert write_views(target, object_size, 1024, 2) == []
            chain = load_chain(target)
            for segment, want in payloads.items():
                objs = segment_view(target, chain, segment)
                got = b"".join(target.read(o["key"]) for o in objs)
                assert got == want
                assert all(0 < o["size"] <= object_size for o in objs)
                assert [o["offset"] for o in objs] == [sum(p["size"] for p in objs[:i]) for i in range(len(objs))]
                assert all(hashlib.sha256(target.read(o["key"])).hexdigest() == o["sha256"] for o in objs)
        finally:
            store.close()
