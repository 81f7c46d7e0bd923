"""What a new user meets in the first hour: bad input refused in one line with the
documented code (never 70, the code for our own bugs), errors that name where the tool
looked, warnings when a restore matched nothing, and `info` saying an import stopped on
a damaged archive (running it again cannot help until the archive is repaired)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from support.transfer import cli_env, fill_stream, run_cli


@pytest.fixture
def env(local_store):
    fill_stream(local_store, "fh", "s", segments=1, events=20, max_size=100)
    return cli_env(local_store.root)


@pytest.mark.parametrize("args,code", [
    (["import", "ARCH", "stream://fh/t", "--to-time", "inf"], 64),
    (["import", "ARCH", "stream://fh/t", "--to-time", "1e400"], 64),
    (["import", "ARCH", "stream://fh/t", "--to-time", "-1"], 64),
    (["import", "ARCH", "stream://fh/t", "--to-time", ""], 64),
    (["export", "stream://fh/s", "s3://b/p", "--endpoint-url", "http://127.0.0.1:99999"], 64),
    (["export", "stream://fh/s", "s3://b/p", "--endpoint-url", "ftp://127.0.0.1:21"], 64),
    (["export", "stream://fh/s", "ARCH", "--shards", "0"], 64),
    (["info", "stream://fh/s", "--root", ""], 64),
    (["--debug", "info", "stream://fh/nope"], 66),
    (["info", "stream://fh/nope", "--debug"], 66),
    (["mount", "--archive", "s3://b/p", "MNT", "--endpoint-url", "http://127.0.0.1:1"], 69),
    (["mount", "--archive", "s3://b/p", "MNT", "--endpoint-url", "http://127.0.0.1:99999"], 64),
    (["mount", "--archive", "ARCH", "MNT"], 66),
])
def test_bad_input_gets_its_documented_code(tmp_path, env, args, code):
    (tmp_path / "mnt").mkdir()
    args = [a.replace("ARCH", f"file://{tmp_path}/arch").replace("MNT", str(tmp_path / "mnt")) for a in args]
    p = run_cli(args, env, check=code)
    assert "internal error" not in p.stderr
    if "--debug" not in args:
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_errors_name_the_store_root(tmp_path, env, local_store):
    p = run_cli(["info", "stream://nope/s"], env, check=66)
    assert f"scope nope not found in the local store at {local_store.root}" in p.stderr
    empty = tmp_path / "empty-store"
    p = run_cli(["ls", "--root", str(empty)], env, check=0)
    assert p.stdout == "" and f"no scopes in the local store at {empty}" in p.stderr
    p = run_cli(["rm", "stream://fh"], env, check=73)
    assert "--recursive" in p.stderr


def test_restore_point_before_the_first_event_warns(tmp_path, env):
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", "stream://fh/s", archive, "--progress", "none"], env, check=0)
    p = run_cli(["import", archive, "stream://fh/old", "--to-time", "2001-01-01T00:00:00Z", "--progress", "none"],
                env, check=0)
    assert "warning: nothing to restore" in p.stderr and "first event was appended at 20" in p.stderr
    assert json.loads(p.stdout)["events"] == 0


def test_info_says_an_import_stopped_on_a_damaged_archive(tmp_path, env):
    arch = tmp_path / "arch"
    run_cli(["export", "stream://fh/s", f"file://{arch}", "--progress", "none"], env, check=0)
    obj = next((arch / "data" / "000000").iterdir())
    saved = obj.read_bytes()
    obj.write_bytes(saved[:-5] + b"XXXXX")
    run_cli(["import", f"file://{arch}", "stream://fh/back", "--progress", "none"], env, check=65)
    info = run_cli(["info", "stream://fh/back"], env, check=0).stdout
    assert "INCOMPLETE" in info and "archive is damaged" in info and obj.name in info
    obj.write_bytes(saved)
    run_cli(["import", f"file://{arch}", "stream://fh/back", "--progress", "none"], env, check=0)
    info = run_cli(["info", "stream://fh/back"], env, check=0).stdout
    assert "import:         complete" in info and "damaged" not in info
    shutil.rmtree(arch)


def test_summaries_on_a_terminal_say_run_total_and_this_attempt(tmp_path, env):
    import subprocess

    from support.transfer import CLI

    archive = f"file://{tmp_path}/arch"

    def tty(*args):
        cmd = " ".join([CLI, *args, "--progress", "none"])
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout
        return p.stdout

    out = tty("export", "stream://fh/s", archive)
    assert "export: run 1 complete: 20 events" in out and "of 1 segment in" in out
    assert "this attempt: 1 object written" in out and "sent in" in out
    out = tty("import", archive, "stream://fh/copy")
    assert "holds 20 events" in out and "of 1 run of" in out and "this attempt: 20 events appended, 0 already" in out
    d = json.loads(run_cli(["export", "stream://fh/s", f"file://{tmp_path}/a2", "--progress", "none"], env).stdout)
    assert d["run_total"]["events"] == 20 and d["this_attempt"]["objects"] == 1 and "elapsed_s" in d["this_attempt"]


def test_a_relative_archive_path_that_looks_like_a_bucket_warns(tmp_path, env):
    work = tmp_path / "work"
    work.mkdir()
    p = run_cli(["export", "stream://fh/s", "bucket/x", "--progress", "none"], env, check=0, cwd=work)
    assert f"bucket/x is a local directory, file://{work}/bucket/x; for S3 write s3://bucket/x" in p.stderr
    assert json.loads(p.stdout)["archive"] == f"file://{work}/bucket/x"  # where it went, said plainly
    p = run_cli(["status", "./bucket/x"], env, check=0, cwd=work)  # explicit: no warning
    assert "warning" not in p.stderr


def test_status_shows_when_each_run_was_written_and_its_event_times_in_words(tmp_path, env):
    import datetime as dt

    archive = f"file://{tmp_path}/arch"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    run_cli(["export", "stream://fh/s", archive, "--progress", "none"], env, check=0)
    out = run_cli(["status", archive], env, check=0).stdout
    assert "1 segment, 1 run, 20 events" in out
    written = re.search(r"run 1 \(written (\S+)\)", out)
    assert written, out
    at = dt.datetime.strptime(written.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert before <= at <= dt.datetime.now(dt.timezone.utc), out
    assert re.search(r"run 1 \(written \S+\): 20 events, [\d.]+ (B|KiB), 1 object, events appended 20\d\d-\d\d-\d\dT[\d:]+Z \.\. "
                     r"20\d\d-\d\d-\d\dT[\d:]+Z", out), out
