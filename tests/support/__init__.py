"""What every test area shares: the CLI's path, free loopback ports; the transfer helpers
(``support.transfer``) and the FUSE mount helpers (``support.mounting``)."""

from __future__ import annotations

import socket
import sys
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
