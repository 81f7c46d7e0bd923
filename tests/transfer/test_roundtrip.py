"""Round trips through real S3 (SeaweedFS) and a local directory: events come back exactly."""

from __future__ import annotations

import json

import pytest

from stream_backend.stores.local import LocalStore

from support.transfer import cli_env, done_line, fill_stream, listing, run_cli, snapshot_dir


@pytest.fixture
def small_store(store_root):
    # a small max event size so that events span several objects (spillover)
    s = LocalStore(root=str(store_root), max_event_size=40 * 1024)
    yield s
    s.close()


@pytest.mark.s3
def test_roundtrip_s3_spillover(small_store, store_root, s3_bucket):
    fill_stream(small_store, "demo", "src", segments=3, events=240, seed=11)
    env = cli_env(store_root, s3_bucket.server)
    archive = f"{s3_bucket.url}/backups/src"
    out = run_cli(["export", "stream://demo/src", archive, "--object-size", "16KiB"], env, check=0)
    done = done_line(out.stdout)
    assert done["complete"] and done["events"] == 240 and done["run"] == 1
    assert done["objects"] > 3 * 4  # many objects: events spill over object boundaries
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)
    out = run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    assert done_line(out.stdout)["events"] == 240
    small_store._drop_views("demo") if hasattr(small_store, "_drop_views") else None
    assert listing(small_store, "demo", "copy") == listing(small_store, "demo", "src")
    # progress lines on stderr off a TTY, with the documented fields
    prog = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert prog and prog[-1]["event"] == "progress" and prog[-1]["percent"] == 100.0
    assert set(prog[-1]) >= {"op", "segment", "done_events", "total_events", "done_bytes", "total_bytes",
                             "percent", "rate_bytes_per_s", "eta_s"}
    # credentials never in any output
    for text in (out.stdout, out.stderr):
        assert s3_bucket.server.secret_key not in text


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_roundtrip_local_dir(small_store, store_root, tmp_path, compression):
    fill_stream(small_store, "demo", "src", segments=2, events=120, seed=5)
    env = cli_env(store_root)
    archive = str(tmp_path / "archive")
    run_cli(["export", "stream://demo/src", archive, "--object-size", "24KiB", "--compression", compression], env, check=0)
    keys = snapshot_dir(archive)
    suffix = ".sbo.zst" if compression == "zstd" else ".sbo"
    assert any(k.endswith(suffix) for k in keys)
    assert not any(k.startswith(("checkpoints/", "leases/")) for k in keys)
    run_cli(["import", f"file://{archive}", "stream://demo/copy"], env, check=0)
    assert listing(small_store, "demo", "copy") == listing(small_store, "demo", "src")


def test_incremental_costs_only_new_data(local_store, store_root, tmp_path):
    from support.transfer import append_events

    fill_stream(local_store, "demo", "src", segments=2, events=400, seed=3, max_size=20000)
    env = cli_env(store_root)
    archive = tmp_path / "archive"
    run_cli(["export", "stream://demo/src", str(archive), "--object-size", "256KiB"], env, check=0)
    before = {k: (archive / k).stat().st_size for k in snapshot_dir(archive)}
    total = local_store.stream_info("demo", "src").length
    appended = append_events(local_store, "demo", "src", events=8, size=max(total // 100 // 8, 1))
    out = run_cli(["export", "stream://demo/src", str(archive), "--object-size", "256KiB"], env, check=0)
    done = done_line(out.stdout)
    assert done["run"] == 2 and done["complete"] and done["events"] == 8
    after = snapshot_dir(archive)
    new_data = sum((archive / k).stat().st_size for k in after if k not in before and k.startswith("data/"))
    assert abs(new_data - appended) <= 0.02 * appended, (new_data, appended)
    assert all(k in after for k in before)  # earlier objects untouched
    # nothing new: no new run
    out = run_cli(["export", "stream://demo/src", str(archive)], env, check=0)
    assert done_line(out.stdout)["run"] == 2
    # the chain restores everything
    run_cli(["import", str(archive), "stream://demo/copy"], env, check=0)
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
    st = json.loads(run_cli(["status", str(archive), "--json"], env, check=0).stdout)
    assert [r["run"] for r in st["runs"]] == [1, 2] and st["runs"][1]["events"] == 8
    assert st["runs"][1]["ranges"]["0"] == [200, 204]


def test_restore_to_point(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=2, events=100, seed=8, max_size=3000)
    env = cli_env(store_root)
    archive = str(tmp_path / "a")
    run_cli(["export", "stream://demo/src", archive, "--object-size", "8KiB"], env, check=0)
    run_cli(["import", archive, "stream://demo/upto", "--to-seq", "20"], env, check=0)
    want = [e for e in listing(local_store, "demo", "src") if e[1] < 20]
    assert listing(local_store, "demo", "upto") == want
    state = json.loads(run_cli(["info", "--json", "stream://demo/upto"], env, check=0).stdout)["import"]
    assert state["complete"] and state["restore_point"] == {"to_seq": 20, "to_time_ns": None}
    # continuing the same import to the end appends the rest, no duplicate
    run_cli(["import", archive, "stream://demo/upto"], env, check=0)
    assert listing(local_store, "demo", "upto") == listing(local_store, "demo", "src")
    state = json.loads(run_cli(["info", "--json", "stream://demo/upto"], env, check=0).stdout)["import"]
    assert state["complete"] and state["restore_point"] is None


def test_restore_to_time(local_store, store_root, tmp_path):
    import time

    local_store.create_stream("demo", "timed", segments=2)
    with local_store.writer("demo", "timed") as w:
        for i in range(10):
            w.append(b"early-%d" % i, "k", segment=i % 2)
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    with local_store.writer("demo", "timed") as w:
        for i in range(6):
            w.append(b"late-%d" % i, None, segment=i % 2)
    env = cli_env(store_root)
    archive = str(tmp_path / "a")
    run_cli(["export", "stream://demo/timed", archive, "--object-size", "1KiB"], env, check=0)
    run_cli(["import", archive, "stream://demo/early", "--to-time", f"{cut:.6f}"], env, check=0)
    got = listing(local_store, "demo", "early")
    assert len(got) == 10 and all(e[4] == "k" for e in got)
    iso = __import__("datetime").datetime.fromtimestamp(cut, tz=__import__("datetime").timezone.utc).isoformat()
    run_cli(["import", archive, "stream://demo/early2", "--to-time", iso], env, check=0)
    assert listing(local_store, "demo", "early2") == got


def test_export_to_seq_then_the_rest(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=2, events=80, seed=13, max_size=2000)
    env = cli_env(store_root)
    archive = str(tmp_path / "a")
    d = done_line(run_cli(["export", "stream://demo/src", archive, "--to-seq", "15", "--object-size", "4KiB"], env, check=0).stdout)
    assert d["run"] == 1 and d["events"] == 30
    d = done_line(run_cli(["export", "stream://demo/src", archive, "--object-size", "4KiB"], env, check=0).stdout)
    assert d["run"] == 2 and d["events"] == 50
    st = json.loads(run_cli(["status", archive, "--json"], env, check=0).stdout)
    assert [r["ranges"] for r in st["runs"]] == [{"0": [0, 15], "1": [0, 15]}, {"0": [15, 40], "1": [15, 40]}]
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")


def test_verify_against_names_the_first_differing_event(local_store, store_root, tmp_path):
    """`verify --against` really compares: one changed payload (same size, so every seq
    still lines up) is exit 65 naming its segment and seq."""
    for name, bad in (("orig", None), ("changed", (1, 7))):
        local_store.create_stream("demo", name, segments=2)
        with local_store.writer("demo", name) as w:
            for i in range(40):
                seg, seq = i % 2, i // 2
                w.append(b"X%05d" % i if (seg, seq) == bad else b"e%05d" % i, f"k{i}", segment=seg)
    env = cli_env(store_root)
    archive = f"file://{tmp_path}/a"
    run_cli(["export", "stream://demo/orig", archive], env, check=0)
    run_cli(["verify", archive, "--against", "stream://demo/orig"], env, check=0)
    out = run_cli(["verify", archive, "--against", "stream://demo/changed"], env, check=65)
    assert "differs" in out.stderr and "segment 1 at seq 7" in out.stderr


def test_restore_to_points_inside_later_runs_of_the_chain(local_store, store_root, tmp_path):
    """A chain of three runs restores to any point: a seq inside run 2, a time between
    runs 2 and 3, and the whole chain."""
    import time

    env = cli_env(store_root)
    archive = str(tmp_path / "a")
    local_store.create_stream("demo", "chain", segments=2)
    cuts = []
    for run in range(3):
        with local_store.writer("demo", "chain") as w:
            for i in range(10):
                w.append(b"run%d-%d" % (run, i), f"r{run}", segment=i % 2)
        d = done_line(run_cli(["export", "stream://demo/chain", archive, "--object-size", "1KiB"], env, check=0).stdout)
        assert d["run"] == run + 1
        time.sleep(0.05)
        cuts.append(time.time())
        time.sleep(0.05)
    src = listing(local_store, "demo", "chain")  # seqs 0..14 per segment, 5 per run
    run_cli(["import", archive, "stream://demo/at7", "--to-seq", "7"], env, check=0)  # inside run 2
    assert listing(local_store, "demo", "at7") == [e for e in src if e[1] < 7]
    run_cli(["import", archive, "stream://demo/after2", "--to-time", f"{cuts[1]:.6f}"], env, check=0)
    got = listing(local_store, "demo", "after2")
    assert got == [e for e in src if e[4] in ("r0", "r1")] and len(got) == 20
    run_cli(["import", archive, "stream://demo/all"], env, check=0)
    assert listing(local_store, "demo", "all") == src


def test_segments_imported_in_turns_keep_their_order(store, tmp_path, monkeypatch):
    """Import writes a stream's segments in turns (so Pravega keeps every segment's
    appender busy): with turns far shorter than a segment, each segment still gets exactly
    its events in order, on both stores, and a restore point inside the turns holds."""
    import uuid

    from stream_backend.transfer import import_
    from stream_backend.transfer.export import ExportOptions, export_stream
    from stream_backend.transfer.import_ import ImportOptions, import_archive
    from stream_backend.transfer.targets import open_target

    monkeypatch.setattr(import_, "TURN_BYTES", 3000)
    scope = f"turns{uuid.uuid4().hex[:8]}"
    fill_stream(store, scope, "src", segments=3, events=240, seed=21, max_size=2000)
    target = open_target(f"file://{tmp_path}/a")
    export_stream(store, scope, "src", target, ExportOptions(object_size=8192))
    try:
        done = import_archive(target, store, scope, "copy", ImportOptions())
        assert done["events"] == 240
        assert [e[2:] for e in listing(store, scope, "copy")] == [e[2:] for e in listing(store, scope, "src")]
        assert [e[0] for e in listing(store, scope, "copy")] == [e[0] for e in listing(store, scope, "src")]
        if store.protocol == "stream":  # dense seqs: a restore point in events
            import_archive(target, store, scope, "upto", ImportOptions(to_seq=50))
            assert listing(store, scope, "upto") == [e for e in listing(store, scope, "src") if e[1] < 50]
    finally:
        for name in store.list_streams(scope):
            store.delete_stream(scope, name)
        store.delete_scope(scope)
