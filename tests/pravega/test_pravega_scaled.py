"""Streams shaped by the official Java client. One that scaled (open or sealed, 1 -> 2,
1 -> 2 -> 3, or between two incremental runs) is refused by export and verify with one
line (exit 64) and no run is recorded: the client we read Pravega with sees the segments
of one epoch only, and a backup that says "complete" must hold every event. A fixed
stream the Java client wrote with routing keys still exports and restores whole."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from stream_backend.stores.local import LocalStore

from pravega.javatool import java_tool
from transfer.helpers import cli_env, run_cli


@pytest.fixture
def sc(pravega_store):
    """A fresh scope; its streams are deleted afterwards (the standalone keeps data in its heap)."""
    name = f"sc{uuid.uuid4().hex[:8]}"
    yield name
    for stream in pravega_store.list_streams(name):
        pravega_store.delete_stream(name, stream)
    pravega_store.delete_scope(name)


def _env(pravega_server, root):
    return cli_env(root, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_TIMEOUT="30")


def _runs(env, archive):
    p = run_cli(["status", archive, "--json"], env)
    return json.loads(p.stdout)["runs"] if p.returncode == 0 else []


@pytest.mark.parametrize("sealed", [False, True])
def test_scaled_stream_is_refused(pravega_server, tmp_path, sc, sealed):
    cmds = [["create", sc, "s", 1], ["write", sc, "s", 300, 8, "a"], ["scale", sc, "s", 2],
            ["write", sc, "s", 300, 8, "b"]]
    java_tool(pravega_server, *cmds, *([["seal", sc, "s"]] if sealed else []))
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    p = run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "none"], env, check=64)
    assert "has scaled" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert _runs(env, archive) == []
    info = run_cli(["info", f"pravega://{sc}/s"], env)
    if sealed:  # what it can count, and that the counts are short
        assert info.returncode == 0 and "WARNING" in info.stdout and "miss events" in info.stdout
    else:  # it cannot count the open stream's segments at all
        assert info.returncode == 64 and "has scaled" in info.stderr
    ls = run_cli(["ls", f"pravega://{sc}"], env, check=0)  # one scaled stream does not break a listing
    assert ls.stdout.split() == ["s"] and ("has scaled" in ls.stderr or sealed)


def test_two_scales_then_sealed_is_refused(pravega_server, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 100, 4, "a"], ["scale", sc, "s", 2],
              ["write", sc, "s", 100, 4, "b"], ["scale", sc, "s", 3], ["write", sc, "s", 100, 4, "c"],
              ["seal", sc, "s"])
    env = _env(pravega_server, tmp_path / "root")
    p = run_cli(["export", f"pravega://{sc}/s", f"file://{tmp_path}/arch", "--progress", "none"], env, check=64)
    assert "has scaled" in p.stderr


def test_scale_between_incremental_runs_adds_no_run(pravega_server, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 2], ["write", sc, "s", 400, 8, "a"])
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "none"], env, check=0)
    java_tool(pravega_server, ["scale", sc, "s", 2], ["write", sc, "s", 400, 8, "b"])
    p = run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "none"], env, check=64)
    assert "has scaled" in p.stderr
    assert [r["run"] for r in _runs(env, archive)] == [1]
    run_cli(["verify", archive, "--against", f"pravega://{sc}/s"], env, check=64)


def test_fixed_stream_from_the_java_client_round_trips(pravega_server, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 3], ["write", sc, "s", 900, 12, "e"], ["seal", sc, "s"])
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "none"], env, check=0)
    run_cli(["verify", archive, "--against", f"pravega://{sc}/s"], env, check=0)
    run_cli(["import", archive, "stream://back/s", "--progress", "none"], env, check=0)
    local = LocalStore(root=str(tmp_path / "root"))
    try:
        got = Counter()
        order: dict[int, list[int]] = {}
        for seg in range(3):
            for ev in local.read_events("back", "s", seg):
                tag, i = ev.payload.decode().split("-")
                got[ev.payload] += 1
                order.setdefault(int(i) % 12, []).append(int(i))  # one routing key's events
        assert len(got) == 900 and set(got.values()) == {1}  # every event, exactly once
        assert all(v == sorted(v) for v in order.values())  # per routing key, in order
    finally:
        local.close()
