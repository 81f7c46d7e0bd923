"""What every test area shares: the CLI's path, free loopback ports, waiting on a condition;
the transfer helpers (``support.transfer``), the FUSE mount helpers (``support.mounting``),
Jobs (``support.jobs``) and the Kubernetes process node (``support.k8s_node``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

#: the installed ``stream-backend`` command of the interpreter running the tests
CLI = str(Path(sys.executable).with_name("stream-backend"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(what: str, check, timeout: float = 180.0, every: float = 0.1):
    """``check()``'s first truthy value, polled every ``every`` s; AssertionError naming
    ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def writer_held_elsewhere(store_root, scope: str, stream: str, **store_options):
    """The stream's writer held open by another process (creating the stream if needed)
    until the block ends: what a second writer meets."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from stream_backend.stores import open_store
        s = open_store("stream", root={str(store_root)!r}, **{store_options!r})
        s.create_stream({scope!r}, {stream!r}, exist_ok=True)
        w = s.writer({scope!r}, {stream!r})
        print("ready", flush=True)
        sys.stdin.read()
        w.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready", "the holder did not open the writer"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
