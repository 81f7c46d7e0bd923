"""An interrupted `write` says what it kept, and `write --resume` appends only the rest:
the stream ends up holding the file once, cut into the same events as one uninterrupted
write. Progress shows on request (a bar on a terminal)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

from .conftest import CLI


def _read_stream(root, scope, stream):
    from stream_backend.stores.local import LocalStore

    s = LocalStore(root=str(root))
    try:
        return [e.payload for e in s.read_events(scope, stream, 0)]
    finally:
        s.close()


def test_interrupted_write_resumes_without_duplicates(tmp_path, store_root):
    data = os.urandom(96 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    env = {**os.environ, "STREAM_BACKEND_ROOT": str(store_root), "STREAM_BACKEND_PROGRESS_INTERVAL": "0.02"}
    subprocess.run([*CLI, "create", "stream://w/s"], env=env, check=True)
    p = subprocess.Popen([*CLI, "write", "stream://w/s", str(src), "--event-size", "1KiB", "--progress", "json"],
                         env=env, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:  # interrupt once some of it is acknowledged
        if line.startswith("{") and json.loads(line)["done_bytes"] > 0:
            p.send_signal(signal.SIGINT)
            break
    err = p.stderr.read()
    assert p.wait(60) == 130, err
    m = re.search(r"interrupted: (\d+) bytes of .* are in stream://w/s", err)
    assert m and "continue with: stream-backend write --resume stream://w/s" in err, err
    kept = int(m.group(1))
    assert 0 < kept < len(data) and kept % 1024 == 0
    assert b"".join(_read_stream(store_root, "w", "s")) == data[:kept]

    r = subprocess.run([*CLI, "write", "--resume", "stream://w/s", str(src), "--event-size", "1KiB"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"already ends with the first {kept} bytes" in r.stderr
    events = _read_stream(store_root, "w", "s")
    assert b"".join(events) == data and {len(e) for e in events} == {1024}
    again = subprocess.run([*CLI, "write", "--resume", "stream://w/s", str(src), "--event-size", "1KiB"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert "wrote 0 bytes in 0 events" in again.stderr
    assert b"".join(_read_stream(store_root, "w", "s")) == data


def test_resume_on_a_stream_with_other_data_before(tmp_path, cli):
    (tmp_path / "a").write_bytes(b"x" * 5000)
    (tmp_path / "f").write_bytes(bytes(range(256)) * 40)
    cli("create", "stream://w/t")
    cli("write", "stream://w/t", tmp_path / "a", "--event-size", "1000")
    r = cli("write", "--resume", "stream://w/t", tmp_path / "f", "--event-size", "1000")
    assert "already ends with the first 0 bytes" in r.stderr
    assert cli("cat", "stream://w/t").stdout_bytes == b"x" * 5000 + bytes(range(256)) * 40
    cli("write", "--resume", "stream://w/t", "-", input=b"abc", code=64)
