"""An archive knows which stream it holds and what that stream allowed: a stream deleted
and re-created under the same name never continues the old stream's archive, and an
archive of large events is imported whole into a stream made to fit, or refused before a
single event is written."""

from __future__ import annotations

import json
from pathlib import Path

from stream_backend.archive import serialize_identity
from stream_backend.stores.local import LocalStore

from support.transfer import cli_env, done_line, fill_stream, listing, run_cli


def test_recreated_stream_is_refused_naming_both(tmp_path, local_store):
    fill_stream(local_store, "id", "s", segments=1, events=20, max_size=100)
    env = cli_env(local_store.root)
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", "stream://id/s", archive, "--progress", "none"], env, check=0)
    old_id = local_store.stream_info("id", "s").identity
    local_store.delete_stream("id", "s")
    fill_stream(local_store, "id", "s", segments=1, events=25, max_size=100, seed=9)
    new_id = local_store.stream_info("id", "s").identity
    assert old_id and new_id and old_id != new_id

    p = run_cli(["export", "stream://id/s", archive, "--progress", "none"], env, check=73)
    assert old_id in p.stderr and new_id in p.stderr and "re-created" in p.stderr
    st = json.loads(run_cli(["status", archive, "--json"], env, check=0).stdout)
    assert [r["events"] for r in st["runs"]] == [20]  # nothing of the new stream was added
    run_cli(["export", "stream://id/s", f"file://{tmp_path}/fresh", "--progress", "none"], env, check=0)


def test_archive_without_id_still_refuses_a_shorter_stream(tmp_path, local_store):
    """Archives written before ids were recorded: a stream that now ends before the last
    run did is not that stream (it said 'archive is up to date' and later appended)."""
    fill_stream(local_store, "id", "s", segments=1, events=20, max_size=100)
    env = cli_env(local_store.root)
    archive = tmp_path / "arch"
    run_cli(["export", "stream://id/s", f"file://{archive}", "--progress", "none"], env, check=0)
    ident = json.loads((archive / "archive.json").read_text())
    source = {k: v for k, v in ident["source"].items() if k != "stream_id"}
    (archive / "archive.json").write_bytes(serialize_identity(source))
    local_store.delete_stream("id", "s")
    fill_stream(local_store, "id", "s", segments=1, events=5, max_size=100, seed=3)
    p = run_cli(["export", "stream://id/s", f"file://{archive}", "--progress", "none"], env, check=73)
    assert "ends at seq 5, before run 1" in p.stderr and "up to date" not in p.stderr + p.stdout


def test_large_events_import_into_a_stream_made_to_fit(tmp_path, store_root):
    big = LocalStore(root=str(store_root), max_event_size=32 << 20)
    big.create_stream("big", "s", segments=1)
    with big.writer("big", "s") as w:
        for n in (1000, 9 << 20, 12 << 20, 10):
            w.append(bytes([n % 251]) * n, None, segment=0)
    big.close()
    env = cli_env(store_root)
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", "stream://big/s", archive, "--progress", "none"], env, check=0)
    assert json.loads(Path(tmp_path, "arch", "archive.json").read_text())["source"]["max_event_size"] == 32 << 20

    p = run_cli(["import", archive, "stream://big/copy", "--progress", "none"], env, check=0)
    assert done_line(p.stdout)["events"] == 4
    store = LocalStore(root=str(store_root))
    assert listing(store, "big", "copy") == listing(store, "big", "s")
    assert store.stream_info("big", "copy").max_event_size == 32 << 20

    run_cli(["create", "stream://big/small"], env, check=0)  # the default 8 MiB
    p = run_cli(["import", archive, "stream://big/small", "--progress", "none"], env, check=64)
    assert "at most 8388608 bytes" in p.stderr and "--max-event-size 33554432" in p.stderr
    assert store.stream_info("big", "small").events == 0  # checked before anything was written
    store.close()
