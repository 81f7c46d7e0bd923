"""What every test area shares: the CLI's path, free loopback ports, waiting on a condition;
the transfer helpers (``support.transfer``), the FUSE mount helpers (``support.mounting``),
Jobs (``support.jobs``) and the Kubernetes process node (``support.k8s_node``)."""

from __future__ import annotations

import socket
import sys
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
