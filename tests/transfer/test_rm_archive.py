"""`stream-backend rm ARCHIVE`: a whole archive goes, only when it is one, after asking,
never while an export holds it or Object Lock protects it (SeaweedFS enforces the lock)."""

from __future__ import annotations

import datetime as dt

import pytest

from support.transfer import cli_env, fill_stream, run_cli


def _keys(bucket, prefix):
    return [o["Key"] for o in bucket.client().list_objects_v2(Bucket=bucket.name, Prefix=prefix).get("Contents", [])]


@pytest.mark.s3
def test_rm_removes_a_whole_archive_and_only_an_archive(local_store, store_root, s3_bucket):
    fill_stream(local_store, "demo", "src", segments=2, events=60, seed=1, max_size=20_000)
    env = cli_env(store_root, s3_bucket.server)
    for name in ("old", "keep"):
        run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/{name}", "--object-size", "16KiB", "--file-view"],
                env, check=0)
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key="notes/readme.txt", Body=b"x")
    before = len(_keys(s3_bucket, "old/"))
    assert before > 8

    asked = run_cli(["rm", f"{s3_bucket.url}/old"], env, check=64)  # no terminal, no --yes
    assert "give --yes" in asked.stderr and len(_keys(s3_bucket, "old/")) == before
    for prefix, code in (("notes", 66), ("nothing", 66)):
        run = run_cli(["rm", f"{s3_bucket.url}/{prefix}", "--yes"], env, check=code)
        assert "no archive at" in run.stderr and "nothing removed" in run.stderr
    assert _keys(s3_bucket, "notes/") == ["notes/readme.txt"]

    run = run_cli(["rm", f"{s3_bucket.url}/old", "--yes"], env, check=0)
    assert f"removed archive {s3_bucket.url}/old ({before} objects" in run.stderr
    assert _keys(s3_bucket, "old/") == []
    run_cli(["verify", f"{s3_bucket.url}/keep"], env, check=0)  # the neighbour is untouched
    assert "old" not in run_cli(["archives", s3_bucket.url], env, check=0).stdout


@pytest.mark.s3
def test_rm_refuses_an_archive_under_object_lock(local_store, store_root, s3_lock_bucket):
    fill_stream(local_store, "demo", "src", segments=1, events=20, seed=2, max_size=5000)
    env = cli_env(store_root, s3_lock_bucket.server)
    archive = f"{s3_lock_bucket.url}/locked"
    run_cli(["export", "stream://demo/src", archive, "--object-lock-mode", "GOVERNANCE",
             "--object-lock-retain-days", "1"], env, check=0)
    before = _keys(s3_lock_bucket, "locked/")
    run = run_cli(["rm", archive, "--yes"], env, check=77)
    assert "under Object Lock (GOVERNANCE until" in run.stderr and "nothing removed" in run.stderr
    assert _keys(s3_lock_bucket, "locked/") == before
    c = s3_lock_bucket.client()
    key = "locked/runs/00000001/manifest.json"
    until = c.head_object(Bucket=s3_lock_bucket.name, Key=key)["ObjectLockRetainUntilDate"]
    assert until > dt.datetime.now(dt.timezone.utc)


def test_rm_refuses_while_an_export_holds_the_archive(local_store, store_root, tmp_path):
    from stream_backend.transfer.checkpoint import LeaseSet
    from stream_backend.transfer.targets import open_target

    fill_stream(local_store, "demo", "src", segments=1, events=10, seed=3, max_size=1000)
    env = cli_env(store_root)
    archive = tmp_path / "a"
    run_cli(["export", "stream://demo/src", str(archive)], env, check=0)
    with LeaseSet(open_target(str(archive)), [0], "export"):  # what a running export holds
        run = run_cli(["rm", str(archive), "--yes"], env, check=75)
    assert "being exported" in run.stderr and (archive / "archive.json").exists()
    run_cli(["rm", str(archive), "--yes"], env, check=0)
    assert not any(p.is_file() for p in archive.rglob("*"))


def test_rm_deletes_what_makes_a_run_complete_before_its_data():
    from stream_backend.archive import layout
    from stream_backend.transfer.removal import _in_order

    keys = ["archive.json", layout.run_manifest_key(1), layout.segment_part_key(1, 0), layout.checkpoint_key(0),
            layout.object_key(0, 0, 0), layout.view_object_key(0, 1, 0), layout.view_manifest_key(1), "stray.txt"]
    order = [k for batch in _in_order({k: 1 for k in keys}) for k in batch]
    pos = order.index
    assert pos(layout.run_manifest_key(1)) < pos(layout.segment_part_key(1, 0)) < pos(layout.object_key(0, 0, 0))
    assert pos(layout.view_manifest_key(1)) < pos(layout.view_object_key(0, 1, 0))
    assert order[-1] == "archive.json" and sorted(order) == sorted(keys)
