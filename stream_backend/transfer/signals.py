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

from .. import settings


def _grace() -> float:
    return settings.seconds("pause_grace")


class PauseRequest:
    """A flag set by the first SIGTERM/SIGINT; a second one also sets ``abandon``.

    Until the transfer holds state (``holding_state``), nothing needs saving: the first
    signal then raises Paused at once, wherever the main thread waits (a connect, a
    retry loop against a frozen endpoint). Afterwards the transfer gets a grace period
    (``STREAM_BACKEND_PAUSE_GRACE`` seconds, default 30, under Kubernetes' 60) to finish
    its parts in flight and save its checkpoint; past it, it leaves as on a second
    signal, so a pod always exits 75 before the kubelet's SIGKILL."""

    def __init__(self):
        self.requested = threading.Event()
        self.abandon = threading.Event()
        self.signum: int | None = None
        self.interruptible = True
        self.done = threading.Event()
        self._old: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.requested.is_set()

    def holding_state(self) -> None:
        """From here on a signal is a pause at a safe point, not an immediate stop."""
        self.interruptible = False

    def _leave(self, why: str) -> None:
        # The state left is exactly what a SIGKILL leaves (last checkpoint + reusable
        # stored parts), which a rerun resumes; the lease is taken over at once by a
        # rerun on this host.
        self.abandon.set()
        try:
            os.write(2, f"stream-backend: {why}; resume with: {resume_command()}\n".encode())
        finally:
            os._exit(75)

    def _watchdog(self, grace: float) -> None:
        if not self.done.wait(grace):
            self._leave(f"parts in flight did not finish within {grace:g}s of the signal; abandoned them")

    def _handler(self, signum, _frame) -> None:
        if self.requested.is_set():
            self._leave("abandoned parts in flight")
        self.signum = signum
        self.requested.set()
        if self.interruptible:
            from ..errors import Paused

            raise Paused("stopped by a signal before the transfer started; nothing was written")
        threading.Thread(target=self._watchdog, args=(_grace(),), name="pause-watchdog", daemon=True).start()

    def request(self) -> None:
        """Ask for a pause from code (tests, embedding applications)."""
        self.requested.set()

    def __enter__(self) -> "PauseRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
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
