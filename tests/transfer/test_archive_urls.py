"""Archive URLs that would put an archive somewhere other than the user meant are refused
in one line (exit 64) before anything is written: a double slash in an S3 prefix (it
exported to another key, exit 0 with "complete": false), credentials in the URL (they
named a directory), file:// with a host or no path, '..' inside a URL. And an export
never exits 0 when the run it wrote did not complete."""

from __future__ import annotations

import os

import pytest

from support.transfer import cli_env, done_line, fill_stream, run_cli


@pytest.mark.parametrize("suffix", ["//p", "/p//q", "/./p", "/p/../q"])
def test_s3_prefix_with_empty_or_dot_parts_refused(local_store, s3_bucket, suffix):
    fill_stream(local_store, "u", "s", segments=1, events=5, max_size=50)
    env = cli_env(local_store.root, s3_bucket.server)
    url = f"s3://{s3_bucket.name}{suffix}"
    p = run_cli(["export", "stream://u/s", url, "--progress", "none"], env, check=64)
    assert "path part" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not list(s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("Contents", []))
    run_cli(["status", url], env, check=64)
    run_cli(["import", url, "stream://u/back"], env, check=64)


def test_plain_s3_prefix_exports_complete(local_store, s3_bucket):
    fill_stream(local_store, "u", "s", segments=2, events=8, max_size=50)
    env = cli_env(local_store.root, s3_bucket.server)
    p = run_cli(["export", "stream://u/s", f"s3://{s3_bucket.name}/p/", "--progress", "none"], env, check=0)
    assert done_line(p.stdout)["complete"] is True


@pytest.mark.parametrize("url", ["file://", "file:///", "file://Zq9KEY:Zq9PW@localhost/tmp/x",
                                 "file://localhost/tmp/x", "file:///nonexistent/../x"])
def test_bad_file_urls_refused(tmp_path, local_store, url):
    fill_stream(local_store, "u", "s", segments=1, events=3, max_size=50)
    env = cli_env(local_store.root)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    p = run_cli(["export", "stream://u/s", url, "--progress", "none"], env, check=64, cwd=cwd)
    assert "Zq9" not in p.stderr + p.stdout and len(p.stderr.strip().splitlines()) == 1
    assert not os.path.exists("/x")  # '..' did not climb out of /nonexistent
    assert not any(cwd.iterdir())  # file://HOST/... did not become a relative directory


def test_credentials_in_s3_url_refused_and_never_shown(local_store, s3_bucket):
    fill_stream(local_store, "u", "s", segments=1, events=3, max_size=50)
    env = cli_env(local_store.root, s3_bucket.server)
    for args in (["export", "stream://u/s", f"s3://Zq9AKID:Zq9PW@{s3_bucket.name}/p"],
                 ["status", f"s3://Zq9AKID:Zq9PW@{s3_bucket.name}/p"],
                 ["verify", f"s3://Zq9AKID:Zq9PW@{s3_bucket.name}/p"]):
        p = run_cli(args, env, check=64)
        assert "carries credentials" in p.stderr
        assert "Zq9" not in p.stderr + p.stdout
