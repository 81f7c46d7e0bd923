"""Round trips through the real Pravega server and a real S3 endpoint, as a user runs them:
Pravega -> S3 archive -> a new Pravega stream, and Pravega -> archive -> local store ->
archive -> Pravega. Each segment's events come back identical, in order; the export's
summary counts them (Pravega's seqs are byte offsets, so the exporter cannot count ahead)."""

from __future__ import annotations

import hashlib
import random
import uuid

from stream_backend.stores.local import LocalStore
from stream_backend.stores.pravega import PravegaStore

from support.transfer import cli_env, done_line, run_cli


def _fill(store, scope, stream, segments, events, seed) -> int:
    rnd = random.Random(seed)
    store.create_stream(scope, stream, segments=segments)
    with store.writer(scope, stream) as w:
        for i in range(events):
            # a few events larger than an archive object: they spill over into the next
            size = 100_000 if i % 97 == 5 else rnd.choice([1, rnd.randint(2, 300), rnd.randint(300, 3000)])
            w.append(rnd.randbytes(size), f"key-{rnd.randint(0, 20)}")
    return events


def _per_segment(store, scope, stream):
    """[[sha256 of each payload, in order] per segment]: what a round trip must keep."""
    info = store.stream_info(scope, stream)
    return [
        [hashlib.sha256(e.payload).hexdigest() for e in store.read_events(scope, stream, s.segment)]
        for s in info.segments
    ]


def _env(pravega_server, root, s3=None):
    return cli_env(root, s3, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_TIMEOUT="30")


def test_pravega_to_s3_to_new_pravega_stream(pravega_server, s3_bucket, tmp_path):
    store = PravegaStore(controller=pravega_server.controller, timeout=30)
    try:
        sc = f"rt-{uuid.uuid4().hex[:8]}"
        n = _fill(store, sc, "src", segments=2, events=400, seed=21)
        env = _env(pravega_server, tmp_path / "root", s3_bucket.server)
        archive = f"s3://{s3_bucket.name}/pravega-rt"
        out = run_cli(["export", f"pravega://{sc}/src", archive, "--object-size", "16KiB", "--progress", "json"],
                      env, timeout=300, check=0)
        done = done_line(out.stdout)
        assert done["complete"] and done["events"] == n and done["run"] == 1
        out = run_cli(["import", archive, f"pravega://{sc}/copy", "--progress", "json"], env, timeout=300, check=0)
        assert done_line(out.stdout)["events"] == n
        src = _per_segment(store, sc, "src")
        assert sum(map(len, src)) == n and all(src)  # both segments hold events
        assert _per_segment(store, sc, "copy") == src
        run_cli(["verify", archive, "--against", f"pravega://{sc}/copy"], env, timeout=300, check=0)
    finally:
        store.close()


def test_pravega_to_local_store_and_back(pravega_server, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    local = LocalStore(root=str(root))
    store = PravegaStore(controller=pravega_server.controller, timeout=30)
    try:
        sc = f"rt-{uuid.uuid4().hex[:8]}"
        n = _fill(store, sc, "src", segments=3, events=300, seed=22)
        env = _env(pravega_server, root)
        a1, a2 = f"file://{tmp_path}/a1", f"file://{tmp_path}/a2"
        run_cli(["export", f"pravega://{sc}/src", a1, "--object-size", "32KiB"], env, timeout=300, check=0)
        run_cli(["import", a1, "stream://demo/copy"], env, timeout=300, check=0)
        src = _per_segment(store, sc, "src")
        assert _per_segment(local, "demo", "copy") == src
        out = run_cli(["export", "stream://demo/copy", a2, "--progress", "json"], env, timeout=300, check=0)
        assert done_line(out.stdout)["events"] == n
        run_cli(["import", a2, f"pravega://{sc}/back"], env, timeout=300, check=0)
        assert _per_segment(store, sc, "back") == src
    finally:
        store.close()
