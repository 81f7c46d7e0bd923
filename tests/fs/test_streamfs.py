"""stream:// as an fsspec filesystem, on the real local store: layout, info, the file
view, spillover writes, append-only refusals, errors fsspec callers can catch."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import subprocess
import sys
import textwrap
import time

import fsspec
import pytest

from stream_backend import errors as E
from stream_backend.fs.pravegafs import PravegaFileSystem
from stream_backend.fs.streamfs import StreamFileSystem

from support import writer_held_elsewhere

from .conftest import SMALL_EVENT

PY = sys.executable


def event_sizes(fs, path, segment=0):
    scope, stream = path.split("/")[:2]
    return [len(e.payload) for e in fs.store.read_events(scope, stream, segment)]


# --------------------------------------------------------------------------- registration


def test_entry_points_register_both_protocols_without_import(store_root):
    """A fresh interpreter that never imports stream_backend still resolves stream://."""
    code = textwrap.dedent(f"""
        import sys, fsspec
        assert "stream_backend" not in sys.modules
        with fsspec.open("stream://demo/hello", "wb", root={str(store_root)!r}) as f:
            f.write(b"hi there")
        with fsspec.open("stream://demo/hello", "rb", root={str(store_root)!r}) as f:
            assert f.read() == b"hi there"
        cls = fsspec.get_filesystem_class("pravega")
        print(cls.__module__, cls.__name__, cls.protocol)
        """)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["stream_backend.fs.pravegafs", "PravegaFileSystem", "pravega"]


def test_default_root_follows_env_not_a_stale_cached_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_BACKEND_ROOT", str(tmp_path / "one"))
    fs1 = fsspec.filesystem("stream")
    fs1.pipe("s/a", b"1")
    monkeypatch.setenv("STREAM_BACKEND_ROOT", str(tmp_path / "two"))
    fs2 = fsspec.filesystem("stream")
    assert fs2 is not fs1
    assert not fs2.exists("s/a")
    assert fs1.cat("s/a") == b"1"
    assert fsspec.filesystem("stream", root=str(tmp_path / "one")).cat("s/a") == b"1"


def test_pravega_options_default_from_env(monkeypatch):
    monkeypatch.setenv("PRAVEGA_CONTROLLER_URI", "tcp://127.0.0.1:1")
    fs = PravegaFileSystem(timeout=2, skip_instance_cache=True)
    assert fs.protocol == "pravega"
    assert fs._store_options == {"controller": "tcp://127.0.0.1:1", "timeout": 2.0}
    assert fs._store is None  # lazily opened: making the object contacts nobody
    monkeypatch.delenv("PRAVEGA_CONTROLLER_URI")
    assert (
        PravegaFileSystem(skip_instance_cache=True)._store_options["controller"]
        == "tcp://127.0.0.1:9090"
    )


def test_paths_strip_protocol_and_slashes(sfs):
    assert sfs._strip_protocol("stream://a/b/") == "a/b"
    assert sfs._strip_protocol("/a/b") == "a/b"
    assert sfs._strip_protocol("stream://") == ""
    assert sfs.unstrip_protocol("a/b") == "stream://a/b"


# --------------------------------------------------------------------------- listing and info


def test_ls_root_scopes_streams_and_segments(sfs):
    sfs.pipe("logs/app", b"hello")
    sfs.mkdir("logs/multi", segments=3)
    sfs.mkdir("empty")
    assert sfs.ls("", detail=False) == ["empty", "logs"]
    assert sfs.ls("logs", detail=False) == ["logs/app", "logs/multi"]
    assert sfs.ls("logs/multi", detail=False) == ["logs/multi/0", "logs/multi/1", "logs/multi/2"]
    assert sfs.ls("logs/app", detail=False) == ["logs/app"]
    entries = {e["name"]: e for e in sfs.ls("logs")}
    assert entries["logs/app"]["type"] == "file" and entries["logs/app"]["size"] == 5
    assert entries["logs/multi"]["type"] == "directory" and entries["logs/multi"]["segments"] == 3
    for e in sfs.ls("") + sfs.ls("logs") + sfs.ls("logs/multi"):
        assert {"name", "size", "type", "mtime"} <= set(e)
        assert isinstance(e["mtime"], float)
    assert sfs.isdir("") and sfs.isdir("logs") and sfs.isdir("logs/multi")
    assert sfs.isfile("logs/app") and sfs.isfile("logs/multi/2")
    assert sfs.find("logs") == ["logs/app", "logs/multi/0", "logs/multi/1", "logs/multi/2"]
    assert sfs.glob("logs/*") == ["logs/app", "logs/multi"]


def test_info_reports_file_view_events_seq_range_and_stable_mtime(sfs):
    with sfs.open("s/t", "wb") as f:
        f.write(b"x" * (2 * SMALL_EVENT + 10))
    info = sfs.info("s/t")
    assert info["size"] == 2 * SMALL_EVENT + 10
    assert info["events"] == 3
    assert info["segments"] == 1
    assert (info["head_seq"], info["tail_seq"]) == (0, 3)
    store_info = sfs.store.stream_info("s", "t")
    assert info["mtime"] == store_info.last_append
    time.sleep(0.05)
    sfs.cat("s/t")  # reading changes nothing
    assert sfs.info("s/t")["mtime"] == info["mtime"]
    assert sfs.info("s/t") == info
    assert sfs.modified("s/t") == dt.datetime.fromtimestamp(info["mtime"], tz=dt.timezone.utc)
    assert sfs.info("s")["mtime"] == info["mtime"]
    assert sfs.ukey("s/t") == sfs.ukey("s/t")
    before = sfs.ukey("s/t")
    sfs.pipe_file("s/u", b"")  # other streams do not disturb this one
    assert sfs.ukey("s/t") == before
    with sfs.open("s/t", "ab") as f:
        f.write(b"more")
    assert sfs.info("s/t")["mtime"] >= info["mtime"]
    assert sfs.ukey("s/t") != before


def test_info_of_never_appended_stream_uses_creation_time_not_now(sfs):
    sfs.touch("s/empty")
    first = sfs.info("s/empty")
    time.sleep(0.05)
    assert first["size"] == 0 and first["events"] == 0
    assert sfs.info("s/empty")["mtime"] == first["mtime"]
    assert first["mtime"] <= time.time()


# --------------------------------------------------------------------------- reading


def test_cat_file_ranges_follow_python_slices(sfs):
    data = bytes(range(256)) * 20  # 5120 bytes over 5 events
    sfs.pipe("s/t", data)
    assert sfs.cat_file("s/t") == data
    for start, end in [
        (0, 1),
        (1000, 3000),
        (-10, None),
        (None, -5000),
        (-100, -50),
        (5000, 9999),
        (4000, 10),
        (6000, None),
    ]:
        assert sfs.cat_file("s/t", start, end) == data[start:end], (start, end)
    with sfs.open("s/t", "rb", block_size=300) as f:
        assert f.size == len(data)
        f.seek(1020)
        assert f.read(10) == data[1020:1030]  # across an event boundary
        f.seek(-3, 2)
        assert f.read() == data[-3:]
        assert f.read() == b""


def test_text_mode_through_fsspec_open(store_root):
    url = "stream://notes/today"
    with fsspec.open(url, "w", root=str(store_root)) as f:
        f.write("line one\nline two\n")
    with fsspec.open(url, "r", root=str(store_root)) as f:
        assert f.readlines() == ["line one\n", "line two\n"]


def test_single_segment_stream_is_also_reachable_as_segment_zero(sfs):
    sfs.pipe("s/t", b"abc")
    assert sfs.cat("s/t/0") == b"abc"
    assert sfs.info("s/t/0")["size"] == 3
    with pytest.raises(FileNotFoundError):
        sfs.info("s/t/1")


# --------------------------------------------------------------------------- writing


def test_writes_spill_over_into_events_of_exactly_event_size(sfs):
    data = os.urandom(SMALL_EVENT * 3 + 7)
    with sfs.open("s/t", "wb") as f:
        for i in range(0, len(data), 100):  # small write() calls do not make small events
            f.write(data[i:i + 100])
    assert event_sizes(sfs, "s/t") == [SMALL_EVENT] * 3 + [7]
    assert sfs.cat("s/t") == data


def test_event_size_option_on_open_and_on_the_filesystem(sfs, store_root):
    with sfs.open("s/a", "wb", event_size=100) as f:
        f.write(b"z" * 250)
    assert event_sizes(sfs, "s/a") == [100, 100, 50]
    fs = StreamFileSystem(
        root=str(store_root), max_event_size=SMALL_EVENT, event_size=64, skip_instance_cache=True
    )
    fs.pipe("s/b", b"q" * 130)
    assert event_sizes(fs, "s/b") == [64, 64, 2]
    with pytest.raises(ValueError, match="event_size"):
        sfs.open("s/c", "wb", event_size=SMALL_EVENT + 1)


def test_overwrite_refused_append_and_exclusive_create(sfs):
    sfs.pipe("s/t", b"first")
    with pytest.raises(FileExistsError, match="append-only") as exc:
        sfs.open("s/t", "wb")
    assert isinstance(exc.value, E.UnsupportedError)
    with pytest.raises(FileExistsError):
        sfs.pipe_file("s/t", b"again", mode="overwrite")
    with pytest.raises(FileExistsError):
        sfs.open("s/t", "xb")
    with sfs.open("s/t", "ab") as f:
        f.write(b"+second")
    assert sfs.cat("s/t") == b"first+second"
    # an existing but empty stream may be opened "wb": nothing gets overwritten
    sfs.touch("s/empty")
    with sfs.open("s/empty", "wb") as f:
        f.write(b"ok")
    assert sfs.cat("s/empty") == b"ok"


def test_empty_write_creates_an_empty_stream_and_touch_never_truncates(sfs):
    with sfs.open("s/t", "wb"):
        pass
    assert sfs.info("s/t")["size"] == 0 and sfs.info("s/t")["events"] == 0
    sfs.pipe("s/u", b"data")
    sfs.touch("s/u", truncate=False)
    with pytest.raises(NotImplementedError, match="append-only"):
        sfs.touch("s/u")
    assert sfs.cat("s/u") == b"data"


def test_close_acknowledges_events_a_crashing_process_wrote(store_root):
    """close() returns only once events are durable: the child dies right after it
    (os._exit: no cleanup, no atexit) and a new store still reads every byte."""
    code = textwrap.dedent(f"""
        import os
        from stream_backend.fs.streamfs import StreamFileSystem
        fs = StreamFileSystem(root={str(store_root)!r}, max_event_size={SMALL_EVENT})
        f = fs.open("s/t", "wb")
        f.write(bytes(range(256)) * 9)
        f.close()
        os._exit(0)
        """)
    subprocess.run([PY, "-c", code], check=True, timeout=60)
    fs = StreamFileSystem(
        root=str(store_root), max_event_size=SMALL_EVENT, skip_instance_cache=True
    )
    assert fs.cat("s/t") == bytes(range(256)) * 9
    assert event_sizes(fs, "s/t") == [1024, 1024, 256]


def test_second_writer_is_refused_while_a_file_is_open(sfs, store_root):
    with writer_held_elsewhere(store_root, "s", "t", max_event_size=SMALL_EVENT):
        with pytest.raises(OSError) as exc:
            sfs.open("s/t", "ab")
        assert isinstance(exc.value, E.WriterBusyError)
    with sfs.open("s/t", "ab") as f:  # free again once the holder left
        f.write(b"x")
    assert sfs.cat("s/t") == b"x"


def test_sealed_stream_refuses_appends(sfs):
    sfs.pipe("s/t", b"done")
    sfs.seal("s/t")
    assert sfs.info("s/t")["sealed"] is True
    with pytest.raises(OSError) as exc:
        sfs.open("s/t", "ab")
    assert isinstance(exc.value, E.SealedError)
    assert sfs.cat("s/t") == b"done"


# --------------------------------------------------------------------------- multi-segment


def test_multi_segment_stream_is_a_directory_of_segment_files(sfs):
    sfs.mkdir("s/m", segments=2)
    with sfs.open("s/m/1", "wb", routing_key="k") as f:
        f.write(b"b" * 1500)
    sfs.pipe("s/m/0", b"a")
    assert sfs.cat("s/m/0") == b"a"
    assert sfs.cat("s/m/1") == b"b" * 1500
    assert event_sizes(sfs, "s/m", 1) == [1024, 476]
    assert {e.routing_key for e in sfs.store.read_events("s", "m", 1)} == {"k"}
    assert sfs.info("s/m")["length"] == 1501
    with pytest.raises(IsADirectoryError, match="segments"):
        sfs.cat("s/m")
    with pytest.raises(IsADirectoryError, match=r"s/m/N"):
        sfs.open("s/m", "ab")
    with pytest.raises(FileNotFoundError):
        sfs.cat("s/m/7")
    with pytest.raises(FileExistsError):
        sfs.pipe_file("s/m/1", b"over")


def test_makedirs_and_mkdir(sfs):
    sfs.makedirs("a", exist_ok=True)
    sfs.makedirs("a", exist_ok=True)
    with pytest.raises(FileExistsError):
        sfs.mkdir("a")
    with pytest.raises(NotImplementedError, match="segments=N"):
        sfs.mkdir("a/plain")
    sfs.makedirs("a/m", exist_ok=True, segments=2)
    sfs.makedirs("a/m", exist_ok=True)
    sfs.pipe("a/f", b"x")
    with pytest.raises(FileExistsError, match="not a directory"):
        sfs.makedirs("a/f", exist_ok=True)


# --------------------------------------------------------------------------- deleting


def test_rm_streams_and_scopes(sfs):
    sfs.pipe({"s/a": b"1", "s/b": b"2"})
    sfs.mkdir("s/m", segments=2)
    sfs.rm("s/a")
    assert sfs.ls("s", detail=False) == ["s/b", "s/m"]
    with pytest.raises(NotImplementedError):
        sfs.rm("s/m/0")
    with pytest.raises(OSError, match="not empty") as exc:
        sfs.rm("s")
    assert isinstance(exc.value, E.NotEmptyError)
    with pytest.raises(OSError, match="not empty"):
        sfs.rmdir("s")
    sfs.rm("s", recursive=True)
    assert not sfs.exists("s")
    sfs.mkdir("e")
    sfs.rmdir("e")
    assert sfs.ls("", detail=False) == []
    with pytest.raises(FileNotFoundError):
        sfs.rm("nope/x")


# --------------------------------------------------------------------------- what streams cannot do


def test_unsupported_mutations_raise_clear_errors(sfs):
    sfs.pipe("s/t", b"data")
    for call in (
        lambda: sfs.mv("s/t", "s/u"),
        lambda: sfs.rename("s/t", "s/u"),
        lambda: sfs.truncate("s/t", 0),
        lambda: sfs.open("s/t", "r+b"),
    ):
        with pytest.raises(NotImplementedError, match="append-only") as exc:
            call()
        assert isinstance(exc.value, E.UnsupportedError) and isinstance(exc.value, OSError)
    with sfs.open("s/t", "ab") as f:
        with pytest.raises(OSError, match="append-only"):
            f.seek(0)
    assert sfs.cat("s/t") == b"data"


def test_errors_are_builtin_and_keep_exit_codes(sfs):
    with pytest.raises(FileNotFoundError) as exc:
        sfs.info("nope/none")
    assert exc.value.exit_code == E.NotFoundError.exit_code
    assert not sfs.exists("nope/none")
    with pytest.raises(ValueError):
        sfs.pipe("bad name/x", b"")
    with pytest.raises(FileNotFoundError):
        sfs.info("a/b/0/deeper")
    with pytest.raises(IsADirectoryError):
        sfs.open("scope-only", "wb")


# ------------------------------------------------------------ copy / get / put in our layout


def test_cp_keeps_event_boundaries_and_routing_keys(sfs):
    with sfs.open("s/src", "wb", event_size=300, routing_key="rk") as f:
        f.write(b"y" * 700)
    sfs.copy("s/src", "t/dst")
    assert sfs.cat("t/dst") == b"y" * 700
    assert event_sizes(sfs, "t/dst") == [300, 300, 100]
    assert {e.routing_key for e in sfs.store.read_events("t", "dst", 0)} == {"rk"}
    with pytest.raises(FileExistsError):
        sfs.copy("s/src", "t/dst")


def test_put_and_get_a_directory_of_files_as_a_scope(sfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i}.bin": os.urandom(i * 700) for i in range(4)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    sfs.put(str(src) + "/", "backup", recursive=True)
    assert sorted(sfs.ls("backup", detail=False)) == sorted(f"backup/{n}" for n in files)
    out = tmp_path / "out"
    sfs.get("backup", str(out), recursive=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_filesystem_pickles_for_workers(sfs):
    sfs.pipe("s/t", b"abc")
    clone = pickle.loads(pickle.dumps(sfs))
    assert clone.cat("s/t") == b"abc"


def test_unusable_store_root_is_a_permission_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    fs = StreamFileSystem(root=str(blocker / "below"), skip_instance_cache=True)
    with pytest.raises(PermissionError) as exc:
        fs.ls("")
    assert exc.value.exit_code == E.PermissionDeniedError.exit_code


def test_recursive_copy_of_a_scope_keeps_streams_segments_and_events(sfs):
    with sfs.open("src/one", "wb", event_size=100) as f:
        f.write(b"1" * 250)
    sfs.mkdir("src/multi", segments=3)
    with sfs.open("src/multi/2", "wb", event_size=64, routing_key="r2") as f:
        f.write(b"2" * 130)
    sfs.copy("src", "dst", recursive=True)
    assert sfs.ls("dst", detail=False) == ["dst/multi", "dst/one"]
    assert sfs.info("dst/multi")["segments"] == 3
    assert sfs.cat("dst/one") == b"1" * 250 and event_sizes(sfs, "dst/one") == [100, 100, 50]
    assert sfs.cat("dst/multi/2") == b"2" * 130 and event_sizes(sfs, "dst/multi", 2) == [64, 64, 2]
    assert {e.routing_key for e in sfs.store.read_events("dst", "multi", 2)} == {"r2"}
    assert sfs.cat("dst/multi/0") == b""
    sfs.copy("src/*", "glob/")  # a glob of files into a new scope
    assert sfs.ls("glob", detail=False) == ["glob/one"]
    with pytest.raises(NotImplementedError, match="own stream"):
        sfs.copy("src/one", "src/one")
