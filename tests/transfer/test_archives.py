"""`stream-backend archives PREFIX`: every archive below a prefix, found by walking one
directory level at a time and never into an archive, each with what status would say."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from support.transfer import cli_env, fill_stream, run_cli


def _export(local_store, env, stream, archive, runs=1, **kw):
    for r in range(runs):
        fill_stream(local_store, "demo", stream, segments=2, events=30, seed=len(stream) * 10 + r, max_size=4000)
        run_cli(["export", f"stream://demo/{stream}", archive, "--object-size", "16KiB", *kw.get("flags", [])],
                env, check=0)


@pytest.mark.s3
def test_archives_lists_every_archive_under_a_prefix(local_store, store_root, s3_bucket, fault_proxy):
    env = cli_env(store_root, s3_bucket.server)
    base = s3_bucket.url
    _export(local_store, env, "logs", f"{base}/prod/logs", runs=2)
    _export(local_store, env, "orders", f"{base}/prod/orders", flags=["--compression", "zstd"])
    _export(local_store, env, "deep", f"{base}/dev/team/x/deep")
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key="prod/README.txt", Body=b"not an archive")

    proxy = fault_proxy(s3_bucket.server)
    out = run_cli(["archives", base, "--json"], cli_env(store_root, proxy.server), check=0)
    found = json.loads(out.stdout)["archives"]
    assert [a["archive"] for a in found] == [f"{base}/dev/team/x/deep", f"{base}/prod/logs", f"{base}/prod/orders"]
    for a in found:
        st = json.loads(run_cli(["status", a["archive"], "--json"], env, check=0).stdout)
        assert (a["runs"], a["events"], a["bytes"]) == (len(st["runs"]), st["events"], st["bytes"])
        assert a["last_written"] == st["runs"][-1]["written"] and a["stream"].startswith("stream://demo/")
        assert a["first_time"] <= a["last_time"] and not a["in_progress"]
    assert found[1]["runs"] == 2
    listed = [unquote(path) for method, path, _ in proxy.log if method == "GET" and "list-type=2" in path]
    assert listed and not any("/data/" in p or "prefix=prod/logs/data" in p for p in listed), listed

    text = run_cli(["archives", f"{base}/prod"], env, check=0).stdout.splitlines()
    assert text[0].split()[:3] == ["ARCHIVE", "STREAM", "RUNS"] and len(text) == 3
    assert text[1].split()[:4] == [f"{base}/prod/logs", "stream://demo/logs", "2", str(found[1]["events"])]
    shallow = run_cli(["archives", base, "--max-depth", "1"], env, check=0).stdout
    assert shallow.strip() == f"no archives under {base} (looked 1 levels down)"


def test_a_damaged_archive_is_named_and_the_others_still_listed(local_store, store_root, tmp_path):
    env = cli_env(store_root)
    root = tmp_path / "backups"
    _export(local_store, env, "a", str(root / "a"))
    _export(local_store, env, "b", str(root / "b"))
    (root / "a" / "runs" / "00000001" / "manifest.json").write_text("{not json")
    run = run_cli(["archives", str(root)], env, check=65)
    lines = run.stdout.splitlines()
    assert len(lines) == 3 and "error:" in lines[1] and lines[2].split()[1] == "stream://demo/b", run.stdout
    assert len(run.stderr.strip().splitlines()) == 1 and "manifest.json" in run.stderr, run.stderr
    assert json.loads(run_cli(["archives", str(root / "b"), "--json"], env, check=0).stdout)["archives"][0]["runs"] == 1
