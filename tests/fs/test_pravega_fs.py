"""pravega:// through fsspec and the stream CLI, against the suite's Pravega standalone
(tests/servers/pravega.py; never skipped: the fixture fails loudly if the server cannot run)."""

from __future__ import annotations

import json
import os
import uuid

import fsspec
import pytest
from hypothesis import given, settings

from .roundtrip import PROPERTY_SETTINGS, ROUND_TRIP_ARGS, check_writes_read_back

from stream_backend import errors as E

pytestmark = pytest.mark.pravega


@pytest.fixture
def pfs(pravega_server):
    from stream_backend.fs.pravegafs import PravegaFileSystem

    fs = PravegaFileSystem(
        controller=pravega_server.controller, timeout=60, skip_instance_cache=True
    )
    yield fs
    fs.close()


@pytest.fixture
def scope():
    return f"fs{uuid.uuid4().hex[:12]}"


def test_pravega_file_view_round_trip(pfs, pravega_server, scope):
    data = os.urandom(3 * 1024 + 100)
    url = f"pravega://{scope}/s"
    with fsspec.open(
        url, "wb", controller=pravega_server.controller, timeout=60, event_size=1024
    ) as f:
        f.write(data)
    path = f"{scope}/s"
    assert pfs.cat(path) == data
    for start, end in [(0, 10), (1000, 2100), (-50, None), (3000, 99999)]:
        assert pfs.cat_file(path, start, end) == data[start:end]
    with pfs.open(path, "rb", block_size=333) as f:
        f.seek(1020)
        assert f.read(10) == data[1020:1030]
    info = pfs.info(path)
    assert (info["type"], info["size"], info["events"]) == ("file", len(data), 4)
    assert info["mtime"] == pfs.info(path)["mtime"]  # stable, never "now"
    assert [len(e.payload) for e in pfs.store.read_events(scope, "s", info["segment"])] == [
        1024,
        1024,
        1024,
        100,
    ]
    assert pfs.ls(scope, detail=False) == [path]

    with pytest.raises(FileExistsError, match="append-only"):
        pfs.open(path, "wb")
    with pfs.open(path, "ab") as f:
        f.write(b"tail")
    assert pfs.cat(path) == data + b"tail"


@settings(PROPERTY_SETTINGS, max_examples=12)
@given(**ROUND_TRIP_ARGS)
def test_pravega_any_writes_read_back_byte_identical(
    pfs, pravega_server, plan, seed, event_size, probes
):
    """The round-trip property of test_roundtrip_property.py, on Pravega's offset index."""
    check_writes_read_back(
        pfs, "fsprop", plan, seed, event_size, probes,
        controller=pravega_server.controller, timeout=60,
    )


def test_pravega_multi_segment_directory_and_rm(pfs, scope):
    pfs.mkdir(f"{scope}/m", segments=2)
    assert pfs.isdir(f"{scope}/m")
    names = pfs.ls(f"{scope}/m", detail=False)
    assert len(names) == 2
    pfs.pipe(names[1], b"second segment")
    assert pfs.cat(names[1]) == b"second segment"
    assert pfs.cat(names[0]) == b""
    with pytest.raises(IsADirectoryError):
        pfs.cat(f"{scope}/m")
    with pytest.raises(FileNotFoundError):
        pfs.info(f"{scope}/nothing")
    pfs.rm(scope, recursive=True)
    assert not pfs.exists(scope)


def test_pravega_unreachable_controller_is_a_connection_error():
    from stream_backend.fs.pravegafs import PravegaFileSystem

    fs = PravegaFileSystem(controller="tcp://127.0.0.1:9", timeout=2, skip_instance_cache=True)
    with pytest.raises(ConnectionError) as exc:
        fs.ls("")
    assert exc.value.exit_code == E.UnavailableError.exit_code


def test_cli_event_boundaries_match_across_local_and_pravega(
    pravega_server, store_root, scope, tmp_path
):
    """The same file written with the same --event-size gives the same events (size and
    sha256) in both stores; `events` is how users check that. Pravega does not store
    routing keys with events, so its `events` report routing_key null."""
    from click.testing import CliRunner

    from stream_backend.cli import main

    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(5000))
    env = {
        "STREAM_BACKEND_ROOT": str(store_root),
        "PRAVEGA_CONTROLLER_URI": pravega_server.controller,
    }

    def run(*args, code=0):
        r = CliRunner().invoke(main, [str(a) for a in args], env=env)
        assert "Traceback" not in r.output and r.exit_code == code, r.output
        return r

    events = {}
    for url in (f"stream://{scope}/s", f"pravega://{scope}/s"):
        run("create", url)
        run("write", "--event-size", "2KiB", "--routing-key", "k", url, src)
        assert run("cat", url).stdout_bytes == src.read_bytes()
        assert (
            run("cat", "--offset", "4000", "--length", "7", url).stdout_bytes
            == src.read_bytes()[4000:4007]
        )
        events[url] = [
            (e["size"], e["sha256"], e["routing_key"])
            for e in map(json.loads, run("events", url).stdout.splitlines())
        ]
        assert json.loads(run("info", "--json", url).stdout)["events"] == 3
    local, pravega = events.values()
    assert [e[:2] for e in local] == [e[:2] for e in pravega]
    assert [size for size, _, _ in local] == [2048, 2048, 904]
    assert {key for _, _, key in local} == {"k"} and {key for _, _, key in pravega} == {None}
    assert run("ls", f"pravega://{scope}").stdout.split() == ["s"]
    assert scope in run("ls", "pravega://").stdout.split()
    run("seal", f"pravega://{scope}/s")
    run("write", f"pravega://{scope}/s", src, code=E.SealedError.exit_code)
    run("info", f"pravega://{scope}/none", code=E.NotFoundError.exit_code)
    run("rm", "-r", f"pravega://{scope}")
