"""verify --against never says ok when the archive and the stream hold different events:
the stream ahead of the archive (appended since the export, or a destination written to
after its import) exits 3, the stream behind it (an import cut short) exits 4, each with
its own count of events and bytes; a match says OK in words on a terminal."""

from __future__ import annotations

import subprocess

from support.transfer import CLI, append_events, cli_env, done_line, fill_stream, run_cli


def _setup(tmp_path, local_store):
    fill_stream(local_store, "v", "src", segments=2, events=40, max_size=300)
    env = cli_env(local_store.root)
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", "stream://v/src", archive, "--progress", "none"], env, check=0)
    return env, archive


def test_stream_ahead_of_archive_is_reported_with_counts(tmp_path, local_store):
    env, archive = _setup(tmp_path, local_store)
    ok = run_cli(["verify", archive, "--against", "stream://v/src"], env, check=0)
    assert done_line(ok.stdout)["ok"] is True and done_line(ok.stdout)["compared_events"] == 40

    append_events(local_store, "v", "src", events=1, size=100)
    p = run_cli(["verify", archive, "--against", "stream://v/src"], env, check=3)
    d = done_line(p.stdout)
    assert d["ok"] is False
    assert (d["stream_extra_events"], d["stream_extra_bytes"]) == (1, 100)
    assert d["archive_extra_events"] == 0
    assert "is behind stream://v/src by 1 event (100 B)" in p.stderr


def test_destination_with_extra_events_fails(tmp_path, local_store):
    env, archive = _setup(tmp_path, local_store)
    run_cli(["import", archive, "stream://v/dst", "--progress", "none"], env, check=0)
    run_cli(["verify", archive, "--against", "stream://v/dst"], env, check=0)
    append_events(local_store, "v", "dst", events=3, size=10)
    p = run_cli(["verify", archive, "--against", "stream://v/dst"], env, check=3)
    assert done_line(p.stdout)["stream_extra_events"] == 3
    assert "the stream has 3 events the archive does not" in p.stderr


def test_stream_behind_archive_fails_with_its_own_code(tmp_path, local_store):
    env, archive = _setup(tmp_path, local_store)
    run_cli(["import", archive, "stream://v/part", "--to-seq", "5", "--progress", "none"], env, check=0)
    p = run_cli(["verify", archive, "--against", "stream://v/part"], env, check=4)
    d = done_line(p.stdout)
    assert d["ok"] is False and d["stream_extra_events"] == 0
    assert d["archive_extra_events"] == 40 - 10  # 5 per segment restored, 2 segments
    assert "stream://v/part lacks 30 events" in p.stderr


def test_ok_in_words_on_a_terminal(tmp_path, local_store):
    env, archive = _setup(tmp_path, local_store)
    cmd = f"{CLI} verify {archive} --against stream://v/src"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    assert "OK: archive" in p.stdout and "40 events compared with the stream" in p.stdout
    assert "{" not in p.stdout  # words, not the JSON line
