"""Bad input: one line on stderr, the documented exit code, no traceback, no credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_backend.archive.manifest import seal

from support import free_ports
from support.transfer import cli_env, fill_stream, run_cli


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if not line.startswith("{")]


def assert_one_line_error(proc, code, *needles):
    lines = error_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1, lines
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def archived(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=2, events=60, seed=2, max_size=5000)
    env = cli_env(store_root)
    archive = tmp_path / "archive"
    run_cli(["export", "stream://demo/src", str(archive), "--object-size", "8KiB"], env, check=0)
    return env, archive


def test_unknown_stream_66(local_store, store_root, tmp_path):
    local_store.create_stream("demo", "other")
    proc = run_cli(["export", "stream://demo/nope", str(tmp_path / "a")], cli_env(store_root))
    assert_one_line_error(proc, 66, "nope")


@pytest.mark.s3
def test_missing_bucket_66(local_store, store_root, seaweedfs):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    proc = run_cli(["export", "stream://demo/src", "s3://no-such-bucket-here/x"], cli_env(store_root, seaweedfs))
    assert_one_line_error(proc, 66, "no-such-bucket-here")
    proc = run_cli(["import", "s3://no-such-bucket-here/x", "stream://demo/y"], cli_env(store_root, seaweedfs))
    assert_one_line_error(proc, 66)


@pytest.mark.s3
def test_wrong_credentials_77_and_no_secret_in_output(local_store, store_root, s3_bucket):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    wrong = "wrongSECRETvalue0123456789abcdefWRONG"
    env = cli_env(store_root, s3_bucket.server, AWS_SECRET_ACCESS_KEY=wrong)
    for args in (["export", "stream://demo/src", f"{s3_bucket.url}/x"], ["status", f"{s3_bucket.url}/x"],
                 ["import", f"{s3_bucket.url}/x", "stream://demo/y"], ["verify", f"{s3_bucket.url}/x"]):
        proc = run_cli(args, env)
        assert_one_line_error(proc, 77)
        for text in (proc.stdout, proc.stderr):
            assert wrong not in text and s3_bucket.server.secret_key not in text
    # the right secret works and is not printed either
    env = cli_env(store_root, s3_bucket.server)
    proc = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/x"], env, check=0)
    assert s3_bucket.server.secret_key not in proc.stdout + proc.stderr


@pytest.mark.s3
def test_endpoint_url_option(local_store, store_root, s3_bucket):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    env = cli_env(store_root, s3_bucket.server)
    endpoint = env.pop("AWS_ENDPOINT_URL")
    run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/e", "--endpoint-url", endpoint], env, check=0)
    run_cli(["verify", f"{s3_bucket.url}/e", "--endpoint-url", endpoint], env, check=0)


def test_import_into_foreign_nonempty_stream_73(archived, local_store):
    env, archive = archived
    fill_stream(local_store, "demo", "busy", segments=2, events=3, seed=9, max_size=10)
    proc = run_cli(["import", str(archive), "stream://demo/busy"], env)
    assert_one_line_error(proc, 73, "demo/busy")
    # an empty existing stream is fine
    local_store.create_stream("demo", "empty", segments=2)
    run_cli(["import", str(archive), "stream://demo/empty"], env, check=0)
    # another archive's import is not ours either
    fill_stream(local_store, "demo", "src2", segments=2, events=10, seed=3, max_size=100)
    other = archive.parent / "other"
    run_cli(["export", "stream://demo/src2", str(other)], env, check=0)
    proc = run_cli(["import", str(other), "stream://demo/empty"], env)
    assert_one_line_error(proc, 73)
    # someone else appended after our import: refused, not duplicated
    with local_store.writer("demo", "empty") as w:
        w.append(b"intruder", None, segment=0)
    proc = run_cli(["import", str(archive), "stream://demo/empty"], env)
    assert_one_line_error(proc, 73)


def _first_object(archive: Path) -> Path:
    return sorted((archive / "data").rglob("*.sbo"))[0]


def test_corrupted_object_65_named(archived, local_store):
    env, archive = archived
    obj = _first_object(archive)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    rel = str(obj.relative_to(archive))
    line = assert_one_line_error(run_cli(["verify", str(archive)], env), 65, rel)
    assert "corrupt" in line
    assert_one_line_error(run_cli(["import", str(archive), "stream://demo/copy"], env), 65, rel)


def test_import_stopped_by_a_corrupted_later_object_is_never_shown_as_complete(archived, local_store):
    """The import writes the events before the damaged object, stops with 65 naming it,
    and the destination says INCOMPLETE in `info` (text and JSON) until an import finishes;
    a whole import says complete."""
    env, archive = archived
    run_cli(["import", str(archive), "stream://demo/whole"], env, check=0)
    whole = json.loads(run_cli(["info", "--json", "stream://demo/whole"], env, check=0).stdout)["import"]
    assert whole["complete"] and whole["segments_done"] == [0, 1] and whole["run"] == 1
    assert whole["source"]["stream"] == "src" and whole["restore_point"] is None

    obj = sorted((archive / "data" / "000001").rglob("*.sbo"))[-1]  # segment 1's last object
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    assert_one_line_error(run_cli(["import", str(archive), "stream://demo/part"], env), 65,
                          str(obj.relative_to(archive)))
    part = json.loads(run_cli(["info", "--json", "stream://demo/part"], env, check=0).stdout)
    assert 0 < part["events"] < local_store.stream_info("demo", "src").events  # a prefix is there
    assert part["import"]["complete"] is False and part["import"]["segments_done"] == []
    text = run_cli(["info", "stream://demo/part"], env, check=0).stdout
    assert "import:         INCOMPLETE" in text
    assert "import:         complete" in run_cli(["info", "stream://demo/whole"], env, check=0).stdout
    assert "import" not in json.loads(run_cli(["info", "--json", "stream://demo/src"], env, check=0).stdout)


def test_truncated_manifest_65(archived):
    env, archive = archived
    m = archive / "runs" / "00000001" / "manifest.json"
    m.write_bytes(m.read_bytes()[: m.stat().st_size // 2])
    for args in (["verify", str(archive)], ["import", str(archive), "stream://demo/copy"], ["status", str(archive)]):
        assert_one_line_error(run_cli(args, env), 65, "manifest.json")


def test_newer_format_version_65(archived):
    env, archive = archived
    ident = archive / "archive.json"
    doc = json.loads(ident.read_bytes())
    doc["version"] = 99
    ident.write_bytes(seal(doc))
    for args in (["verify", str(archive)], ["import", str(archive), "stream://demo/copy"],
                 ["export", "stream://demo/src", str(archive)]):
        assert_one_line_error(run_cli(args, env), 65, "version")


def test_no_archive_66(local_store, store_root, tmp_path):
    env = cli_env(store_root)
    assert_one_line_error(run_cli(["status", str(tmp_path / "none")], env), 66)
    assert_one_line_error(run_cli(["import", str(tmp_path / "none"), "stream://demo/x"], env), 66)


def test_usage_errors_64(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=2, events=5, seed=1, max_size=100)
    env = cli_env(store_root)
    assert_one_line_error(run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--shard", "3/2"], env), 64)
    assert_one_line_error(run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--part-size", "lots"], env), 64)
    assert_one_line_error(run_cli(["export", "stream://demo/src", str(tmp_path / "a"), "--segments", "7"], env), 64)


def test_unreachable_endpoint_69_fast(local_store, store_root):
    import time

    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    (port,) = free_ports(1)  # nothing listens there
    env = cli_env(store_root, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="a",
                  AWS_SECRET_ACCESS_KEY="b", AWS_DEFAULT_REGION="us-east-1")
    t0 = time.monotonic()
    assert_one_line_error(run_cli(["export", "stream://demo/src", "s3://b/x"], env), 69, "reach")
    assert time.monotonic() - t0 < 30


def test_archive_of_another_stream_73(archived, local_store):
    env, archive = archived
    fill_stream(local_store, "demo", "other", segments=2, events=5, seed=4, max_size=100)
    assert_one_line_error(run_cli(["export", "stream://demo/other", str(archive)], env), 73, "demo/src")


def test_a_setting_that_is_not_a_number_is_refused(local_store, store_root, tmp_path):
    """A mistyped environment variable is an error naming it, not a silent default."""
    fill_stream(local_store, "demo", "src", segments=1, events=3, seed=1, max_size=10)
    for var in ("STREAM_BACKEND_CHECKPOINT_INTERVAL", "STREAM_BACKEND_SHARDS"):
        env = cli_env(store_root, **{var: "ten"}, JOB_COMPLETION_INDEX="0")
        out = run_cli(["export", "stream://demo/src", str(tmp_path / "a")], env)
        assert_one_line_error(out, 64)
        assert f"{var} must be a number, not 'ten'" in out.stderr
