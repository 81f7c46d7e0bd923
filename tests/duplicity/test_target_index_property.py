"""Property: a stream target always shows exactly the committed puts minus the deletes.

Any sequence of puts (overwrites included), deletes and crashes in the middle of a put
(bytes appended without an index entry), replayed by a fresh reader, gives the model's
files with their exact bytes."""

from __future__ import annotations

import io
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_backend.duplicity_backend import StreamTarget
from stream_backend.stores.local import LocalStore

NAMES = st.sampled_from(
    [
        "a",
        "b",
        "duplicity-full.20261125T154725Z.vol1.difftar.gz",
        "duplicity-inc.20261125T154725Z.to.20261125T154727Z.manifest",
        "duplicity-new-signatures.20261125T154725Z.to.20261125T154727Z.sigtar.gz",
    ]
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), NAMES, st.binary(max_size=3000)),
        st.tuples(st.just("delete"), st.lists(NAMES, max_size=5)),
        st.tuples(st.just("crash"), st.binary(min_size=1, max_size=500)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, max_event=st.sampled_from([300, 1024, 8 * 1024 * 1024]))
def test_index_replay_matches_model(ops, max_event):
    root = tempfile.mkdtemp(prefix="sb-target-")
    try:
        store = LocalStore(root=root, max_event_size=max_event)
        t = StreamTarget(store, "backups", "pv")
        model: dict[str, bytes] = {}
        for op in ops:
            if op[0] == "put":
                t.put(op[1], io.BytesIO(op[2]))
                model[op[1]] = op[2]
            elif op[0] == "delete":
                t.delete(op[1])
                for n in op[1]:
                    model.pop(n, None)
            else:  # a put that died after its bytes, before its index entry
                t.ensure()
                with store.writer("backups", "pv") as w:
                    for i in range(0, len(op[1]), max_event):
                        w.append(op[1][i:][:max_event])
        fresh = StreamTarget(store, "backups", "pv")
        assert fresh.names() == sorted(model)
        for name, data in model.items():
            out = io.BytesIO()
            fresh.get(name, out)
            assert out.getvalue() == data
            assert fresh.entry(name).size == len(data)
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
