"""Reader-group positions: a consumer (the official Java client's reader group) reads half
of a stream and stops; `export --reader-group` records where it stands, `import
--reader-group` recreates the group on the restored stream, and a consumer joining it there
reads exactly the other half: nothing twice, nothing missed, each routing key in order."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from pravega.javatool import java_tool
from servers.pravega import drop_scope
from support.transfer import cli_env, done_line, pausing_progress, run_cli


@pytest.fixture
def sc(pravega_server, pravega_store):
    name = f"rg{uuid.uuid4().hex[:8]}"
    groups: list[str] = []  # "GROUP" (in the scope) or "SCOPE/GROUP"
    yield name, groups
    if groups:
        java_tool(pravega_server, *(["group-delete", *(g.split("/") if "/" in g else [name, g])] for g in groups))
    for scope in (name, f"{name}x"):
        drop_scope(pravega_store, scope)


def _env(pravega_server, root):
    return cli_env(root, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_TIMEOUT="30")


def _key_order(payloads: list[str], nkeys: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for p in payloads:
        i = int(p.split("-")[1])
        out.setdefault(f"k{i % nkeys}", []).append(i)
    return out


@pytest.mark.parametrize("scaled", [False, True], ids=["one-segment", "scaled-2-to-3"])
def test_consumer_resumes_on_the_restored_stream(pravega_server, pravega_store, tmp_path, sc, scaled):
    scope, groups = sc
    total, nkeys = 600, 6
    if scaled:
        java_tool(pravega_server, ["create", scope, "s", 2], ["write", scope, "s", 300, nkeys, "a"],
                  ["scale", scope, "s", 3], ["write", scope, "s", 300, nkeys, "b"])
        written = [f"a-{i}" for i in range(300)] + [f"b-{i}" for i in range(300)]
    else:
        java_tool(pravega_server, ["create", scope, "s", 1], ["write", scope, "s", total, nkeys, "a"])
        written = [f"a-{i}" for i in range(total)]
    groups.append("billing")
    first = java_tool(pravega_server, ["group-read", scope, "s", "billing", total // 2]).split()
    assert len(first) == total // 2

    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    out = run_cli(["export", f"pravega://{scope}/s", archive, "--reader-group", "billing", "--progress", "none"],
                  env, check=0, timeout=300).stdout
    assert done_line(out)["complete"] and done_line(out)["events"] == total
    manifest = json.loads((tmp_path / "arch" / "runs" / "00000001" / "manifest.json").read_text())
    assert manifest["version"] == 2 and set(manifest["reader_groups"]) == {"billing"}

    # restored elsewhere (another scope here, as on another cluster), the group's name kept
    dest = f"{scope}x"
    pravega_store.create_scope(dest)
    done = done_line(run_cli(["import", archive, f"pravega://{dest}/s", "--reader-group", "billing",
                              "--progress", "none"], env, check=0, timeout=300).stdout)
    assert done["reader_group"]["name"] == "billing" and "clipped_segments" not in done["reader_group"]
    groups.append(f"{dest}/billing")
    rest = java_tool(pravega_server, ["group-rest", dest, "billing", total - total // 2]).split()
    # the consumer on the restored stream reads exactly what it had not read yet
    assert Counter(first) + Counter(rest) == Counter(written)
    assert not set(first) & set(rest)
    tag_keys = {t: _key_order([p for p in rest if p.startswith(t)], nkeys) for t in ("a", "b")}
    for per_key in tag_keys.values():
        assert all(v == sorted(v) for v in per_key.values())  # each key's events in order

    # the group exists on the destination now: a second import does not silently move it
    again = run_cli(["import", archive, f"pravega://{dest}/s", "--reader-group", "billing",
                     "--progress", "none"], env, timeout=300)
    assert again.returncode == 73 and "already exists" in again.stderr


def test_reader_group_errors_are_one_line(pravega_server, pravega_store, tmp_path, sc):
    scope, _groups = sc
    java_tool(pravega_server, ["create", scope, "s", 1], ["write", scope, "s", 10, 2, "a"])
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    missing = run_cli(["export", f"pravega://{scope}/s", archive, "--reader-group", "nosuch"], env, timeout=300)
    assert missing.returncode == 66 and "nosuch" in missing.stderr and "Traceback" not in missing.stderr
    local = run_cli(["export", "stream://a/b", archive, "--reader-group", "g"], env)
    assert local.returncode == 64 and "Pravega" in local.stderr
    # no Java client set up: refused before any work, in one line
    bare = dict(env, XDG_CACHE_HOME=str(tmp_path / "empty-cache"))
    bare.pop("STREAM_BACKEND_PRAVEGA_CLASSPATH", None)
    nojava = run_cli(["export", f"pravega://{scope}/s", archive, "--reader-group", "g"], bare)
    assert nojava.returncode == 64 and "Java client" in nojava.stderr and len(nojava.stderr.splitlines()) == 1
    assert not (tmp_path / "arch").exists()
    run_cli(["export", f"pravega://{scope}/s", archive, "--progress", "none"], env, check=0)
    unrecorded = run_cli(["import", archive, f"pravega://{scope}/back", "--reader-group", "g"], env, timeout=300)
    assert unrecorded.returncode == 66 and "recorded" in unrecorded.stderr


def test_a_resumed_export_keeps_the_position_taken_when_the_run_was_planned(pravega_server, pravega_store,
                                                                            tmp_path, sc):
    from stream_backend.errors import Paused
    from stream_backend.transfer.export import ExportOptions, export_stream
    from stream_backend.transfer.progress import Progress
    from stream_backend.transfer.signals import PauseRequest
    from stream_backend.transfer.targets import open_target

    scope, groups = sc
    java_tool(pravega_server, ["create", scope, "s", 1], ["write", scope, "s", 900, 3, "a"])
    groups.append("g")
    java_tool(pravega_server, ["group-read", scope, "s", "g", 100])
    planned = pravega_store.reader_group_position(scope, "s", "g")
    pause = PauseRequest()

    opts = ExportOptions(object_size=2048, reader_group="g")
    target = open_target(f"file://{tmp_path}/a")
    with pytest.raises(Paused):
        export_stream(pravega_store, scope, "s", target, opts, pause, pausing_progress(pause, 400))
    java_tool(pravega_server, ["group-read", scope, "s", "g", 100])  # the consumer moves on meanwhile
    moved = pravega_store.reader_group_position(scope, "s", "g")
    assert moved != planned
    done = export_stream(pravega_store, scope, "s", target, opts, PauseRequest(), Progress("export", "none"))
    assert done["complete"] and done["run"] == 1
    manifest = json.loads((tmp_path / "a" / "runs" / "00000001" / "manifest.json").read_text())
    assert manifest["reader_groups"] == {"g": {str(k): v for k, v in planned.items()}}
