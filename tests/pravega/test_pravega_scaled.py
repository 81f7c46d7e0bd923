"""Streams shaped by the official Java client: scaled (1 -> 2, 1 -> 2 -> 3, a merge, a
scale between two incremental runs, an auto-scaling split), truncated (through the controller, through the
segment), open or sealed. Each exports whole: every event once, sealed predecessors and
successors included; `verify --against` agrees; an import into the local store holds every
event once, and an import into a new Pravega stream restores the shape, so the official
client's reader group reads each routing key's events in the order they were written."""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections import Counter

import pytest

from stream_backend.errors import Paused
from stream_backend.fs.fuse import FileSystemOperations
from stream_backend.fs.streamfs import filesystem_over
from stream_backend.stores.local import LocalStore
from stream_backend.transfer.export import ExportOptions, export_stream
from stream_backend.transfer.progress import Progress
from stream_backend.transfer.signals import PauseRequest
from stream_backend.transfer.targets import open_target

from pravega.javatool import java_tool
from servers.pravega import drop_scope
from support.transfer import archive_files, cli_env, done_line, pausing_progress, run_cli


@pytest.fixture
def sc(pravega_store):
    """A fresh scope; its streams are deleted afterwards (the standalone keeps data in its heap)."""
    name = f"sc{uuid.uuid4().hex[:8]}"
    yield name
    drop_scope(pravega_store, name)


def _env(pravega_server, root):
    return cli_env(root, PRAVEGA_CONTROLLER_URI=pravega_server.controller, STREAM_BACKEND_TIMEOUT="30")


def _runs(env, archive):
    p = run_cli(["status", archive, "--json"], env)
    return json.loads(p.stdout)["runs"] if p.returncode == 0 else []


def _written(*batches: tuple[str, int, int]) -> dict[str, list[str]]:
    """What PravegaTool's `write` commands wrote, per routing key, in order."""
    keys: dict[str, list[str]] = {}
    for tag, n, nkeys in batches:
        for i in range(n):
            keys.setdefault(f"k{i % nkeys}", []).append(f"{tag}-{i}")
    return keys


def _per_key(payloads: list[str], nkeys_of: dict[str, int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in payloads:
        tag, i = p.split("-")
        out.setdefault(f"k{int(i) % nkeys_of[tag]}", []).append(p)
    return out


def _in_graph_order(store, scope, stream) -> list[str]:
    """Payloads segment by segment, epochs in order: the order a reader group must keep
    for each routing key (a key's segments follow one another from epoch to epoch)."""
    info = store.stream_info(scope, stream)
    segs = sorted(info.segments, key=lambda x: (x.epoch, x.key_range))
    return [ev.payload.decode() for seg in segs for ev in store.read_events(scope, stream, seg.segment)]


def _round_trip(pravega_server, pravega_store, tmp_path, sc, batches, sealed=True, exported=False,
                reader_group=False, killed_after_create=False):
    """Export the stream `s` (unless `exported`), verify it, import it into the local store
    and into a new Pravega stream; check every event is there once and each key's order
    on the restore: through the segment graph, and with ``reader_group`` through the
    official Java client's reader group (about 10 s per segment it moves on to here).
    ``killed_after_create``: the Pravega destination exists as a killed import left it,
    created as one segment and not yet scaled to the source's first key ranges."""
    want = _written(*batches)
    total = sum(n for _t, n, _k in batches)
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    if not exported:
        out = run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "json"], env, check=0).stdout
        done = done_line(out)
        assert done["complete"] and done["events"] == total, done
    run_cli(["verify", archive, "--against", f"pravega://{sc}/s"], env, check=0)

    run_cli(["import", archive, "stream://back/s", "--progress", "none"], env, check=0)
    local = LocalStore(root=str(tmp_path / "root"))
    try:
        info = local.stream_info("back", "s")
        got = Counter(ev.payload.decode() for seg in info.numbers for ev in local.read_events("back", "s", seg))
    finally:
        local.close()
    assert sum(got.values()) == total and set(got.values()) == {1}  # every event, exactly once
    assert sorted(got) == sorted(p for v in want.values() for p in v)
    run_cli(["verify", archive, "--against", "stream://back/s"], env, check=0)

    if killed_after_create:
        pravega_store.create_stream(sc, "back", segments=1)
    run_cli(["import", archive, f"pravega://{sc}/back", "--progress", "none"], env, check=0)
    run_cli(["verify", archive, "--against", f"pravega://{sc}/back"], env, check=0)
    if sealed:
        pravega_store.seal_stream(sc, "back")
    nkeys = {t: k for t, _n, k in batches}
    restored = _in_graph_order(pravega_store, sc, "back")
    assert Counter(restored) == Counter(p for v in want.values() for p in v)
    assert _per_key(restored, nkeys) == want
    if reader_group:
        read = java_tool(pravega_server, ["read", sc, "back", total]).split()
        assert Counter(read) == Counter(p for v in want.values() for p in v)
        assert _per_key(read, nkeys) == want  # the reader group keeps each key's order
    src, dst = pravega_store.stream_info(sc, "s"), pravega_store.stream_info(sc, "back")
    assert [(x.key_range, x.events) for x in src.segments if x.events] == [
        (x.key_range, x.events) for x in dst.segments if x.events]
    return archive, env


@pytest.mark.parametrize("sealed", [False, True])
def test_scaled_stream_exports_every_segment(pravega_server, pravega_store, tmp_path, sc, sealed):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 300, 8, "a"], ["scale", sc, "s", 2],
              ["write", sc, "s", 300, 8, "b"], *([["seal", sc, "s"]] if sealed else []))
    info = pravega_store.stream_info(sc, "s")
    assert info.numbers == [0, 1, 2] and info.segments[0].successors == (1, 2)
    assert [s.events for s in info.segments][0] == 300 and info.events == 600
    _round_trip(pravega_server, pravega_store, tmp_path, sc, [("a", 300, 8), ("b", 300, 8)], sealed=True,
                reader_group=sealed)
    env = _env(pravega_server, tmp_path / "root")
    shown = run_cli(["info", f"pravega://{sc}/s", "--json"], env, check=0)
    assert json.loads(shown.stdout)["events"] == 600


def test_two_scales_and_a_merge(pravega_server, pravega_store, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 100, 4, "a"], ["scale", sc, "s", 2],
              ["write", sc, "s", 100, 4, "b"], ["scale", sc, "s", 3], ["write", sc, "s", 100, 4, "c"],
              ["scale", sc, "s", 1], ["write", sc, "s", 100, 4, "d"], ["seal", sc, "s"])
    assert len(pravega_store.stream_info(sc, "s").segments) == 7
    _round_trip(pravega_server, pravega_store, tmp_path, sc, [("a", 100, 4), ("b", 100, 4), ("c", 100, 4),
                                                              ("d", 100, 4)])


def test_scale_between_incremental_runs(pravega_server, pravega_store, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 2], ["write", sc, "s", 400, 8, "a"])
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "none"], env, check=0)
    java_tool(pravega_server, ["scale", sc, "s", 2], ["write", sc, "s", 400, 8, "b"], ["seal", sc, "s"])
    done = done_line(run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "json"], env, check=0).stdout)
    assert done["complete"] and done["run"] == 2 and done["events"] == 400  # sealed predecessors' rest + successors
    assert [r["run"] for r in _runs(env, archive)] == [1, 2]
    _round_trip(pravega_server, pravega_store, tmp_path, sc, [("a", 400, 8), ("b", 400, 8)], exported=True)


def test_auto_scaled_by_event_rate(pravega_server, pravega_store, tmp_path, sc):
    """The standalone splits a segment 2 minutes after it was created at the earliest
    (Pravega's own floor; scripts/pravega-server turns the 10-minute cool-down off)."""
    n = int(java_tool(pravega_server, ["autoscale", sc, "s", 16, "r", 280], timeout=320).split()[-1])
    java_tool(pravega_server, ["seal", sc, "s"])
    info = pravega_store.stream_info(sc, "s")
    assert len(info.segments) >= 3 and info.segments[0].successors and info.events == n
    _round_trip(pravega_server, pravega_store, tmp_path, sc, [("r", n, 16)])


def test_truncated_through_the_controller_then_merged(pravega_server, pravega_store, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 200, 4, "a"], ["scale", sc, "s", 2],
              ["write", sc, "s", 200, 4, "b"], ["truncate-head", sc, "s"])
    info = pravega_store.stream_info(sc, "s")
    assert info.numbers == [1, 2] and info.events == 200  # the sealed predecessor went with the truncation
    _mount_names_segments_by_number(pravega_store, sc, "s")
    # the two roots merge into one: a restore created over two segments could not follow
    java_tool(pravega_server, ["scale", sc, "s", 1], ["write", sc, "s", 100, 4, "c"], ["seal", sc, "s"])
    _round_trip(pravega_server, pravega_store, tmp_path, sc, [("b", 200, 4), ("c", 100, 4)],
                killed_after_create=True)


def _mount_names_segments_by_number(store, scope, stream):
    """The mount's files are the segments' own numbers, each with that segment's bytes."""
    ops = FileSystemOperations(filesystem_over(store), cache_ttl=0)
    info = store.stream_info(scope, stream)
    assert sum(s.length for s in info.segments) > 0
    names = [e[0] for e in ops.readdir(f"/{scope}/{stream}", None)[2:]]
    assert names == [str(n) for n in info.numbers]
    for seg in info.segments:
        path = f"/{scope}/{stream}/{seg.segment}"
        assert ops.getattr(path)["st_size"] == seg.length
        fh = ops.open(path, os.O_RDONLY)
        assert ops.read(path, seg.length, 0, fh) == store.read_range(scope, stream, seg.segment, 0, seg.length)
        ops.release(path, fh)
    with pytest.raises(OSError) as gone:
        ops.getattr(f"/{scope}/{stream}/0")  # deleted by the truncation
    assert gone.value.errno == errno.ENOENT


def test_truncated_through_the_segment(pravega_server, pravega_store, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 1000, 1, "a"])
    cut = [ev.seq for ev in pravega_store.read_events(sc, "s", 0)][300]
    java_tool(pravega_server, ["bytetruncate", sc, "s", cut], ["seal", sc, "s"])
    info = pravega_store.stream_info(sc, "s")
    assert info.segments[0].head_seq == cut and info.events == 700
    env = _env(pravega_server, tmp_path / "root")
    archive = f"file://{tmp_path}/arch"
    done = done_line(run_cli(["export", f"pravega://{sc}/s", archive, "--progress", "json"], env, check=0).stdout)
    assert done["events"] == 700
    run_cli(["import", archive, "stream://back/s", "--progress", "none"], env, check=0)
    local = LocalStore(root=str(tmp_path / "root"))
    try:
        assert [e.payload for e in local.read_events("back", "s", 0)] == [b"a-%d" % i for i in range(300, 1000)]
    finally:
        local.close()


def test_pause_on_a_scaled_stream_resumes_to_the_same_archive(pravega_server, pravega_store, tmp_path, sc):
    java_tool(pravega_server, ["create", sc, "s", 1], ["write", sc, "s", 300, 6, "a"], ["scale", sc, "s", 3],
              ["write", sc, "s", 600, 6, "b"])
    opts = ExportOptions(object_size=2048, part_size=8 * 1024 * 1024)
    ref = export_stream(pravega_store, sc, "s", open_target(f"file://{tmp_path}/ref"), opts, PauseRequest(),
                        Progress("export", "none"))
    assert ref["complete"] and ref["events"] == 900
    pause = PauseRequest()

    target = open_target(f"file://{tmp_path}/got")
    with pytest.raises(Paused):
        export_stream(pravega_store, sc, "s", target, opts, pause, pausing_progress(pause, 400))
    java_tool(pravega_server, ["write", sc, "s", 50, 6, "late"])  # the resumed run keeps its planned end
    done = export_stream(pravega_store, sc, "s", target, opts, PauseRequest(), Progress("export", "none"))
    assert done["complete"] and done["run"] == 1

    ref, got = archive_files(tmp_path / "ref"), archive_files(tmp_path / "got")
    assert ref and got == ref
