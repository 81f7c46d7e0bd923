"""SIGTERM/SIGINT turn into a pause request the transfer loop honours at a safe point.

Kubernetes sends SIGTERM before it kills a pod: the transfer then finishes the parts in
flight, saves its checkpoint and exits 75 with the command that resumes it. A second
signal abandons the parts in flight and exits 75 at once (state as after a SIGKILL,
which resumes just as well). Handlers are installed only in the main thread.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading


class PauseRequest:
    """A flag set by the first SIGTERM/SIGINT; a second one also sets ``abandon``."""

    def __init__(self):
        self.requested = threading.Event()
        self.abandon = threading.Event()
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.requested.is_set()

    def _handler(self, signum, _frame) -> None:
        if self.requested.is_set():
            # second signal: abandon the parts in flight now. The state left is exactly
            # what a SIGKILL leaves (last checkpoint + reusable stored parts), which a
            # rerun resumes; the lease is taken over at once by a rerun on this host.
            self.abandon.set()
            try:
                os.write(2, f"stream-backend: abandoned parts in flight; resume with: {resume_command()}\n".encode())
            finally:
                os._exit(75)
        self.signum = signum
        self.requested.set()

    def request(self) -> None:
        """Ask for a pause from code (tests, embedding applications)."""
        self.requested.set()

    def __enter__(self) -> "PauseRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def resume_command(argv: list[str] | None = None) -> str:
    """The command line that resumes this transfer: the same command, as typed."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        prog = argv[0].rsplit("/", 1)[-1]
        if prog in ("__main__.py", "-c") or prog.startswith("python"):
            argv[0] = "stream-backend"
        elif prog.endswith(".py"):
            argv[0] = "stream-backend"
        else:
            argv[0] = prog
    from ..urls import redact

    return redact(shlex.join(argv))
