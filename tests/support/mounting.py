"""Run `stream-backend mount` for real (a subprocess, a kernel FUSE mount) in tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from support import CLI


def cli(*args, check=True, timeout=120, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"stream-backend {' '.join(map(str, args))} -> {res.returncode}\n{res.stderr}"
        )
    return res


def wait_mounted(mountpoint, proc=None, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"mount exited {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"{mountpoint} not mounted after {timeout}s")


def wait_unmounted(mountpoint, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.ismount(mountpoint):
            return True
        time.sleep(0.05)
    return False


@contextmanager
def mounted(url, mountpoint, *extra, root=None):
    """Foreground `stream-backend mount` for the duration of the block; SIGTERM ends it."""
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    args = [CLI, "mount", url, str(mountpoint), *map(str, extra)]
    if root is not None:
        args += ["--root", str(root)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_mounted(mountpoint, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not wait_unmounted(mountpoint):
            subprocess.run(["fusermount", "-u", "-z", str(mountpoint)])
            raise AssertionError(f"{mountpoint} still mounted after the mount command ended")


def read_counter(path, what="read_calls") -> int:
    return int(os.getxattr(path, f"user.stream_backend.{what}"))


@contextmanager
def private_mount_dirs():
    """Factory of mount points outside pytest's basetemp.

    Concurrent pytest sessions prune each other's old basetemp directories by renaming
    them; a mount point renamed while mounted can no longer be unmounted by its path."""
    base = Path(tempfile.mkdtemp(prefix="sb-mnt-"))
    made = []

    def make(name="mnt") -> Path:
        p = base / f"{name}{len(made)}"
        p.mkdir()
        made.append(p)
        return p

    try:
        yield make
    finally:
        for p in made:
            if os.path.ismount(p):
                subprocess.run(["fusermount", "-u", "-z", str(p)])
        shutil.rmtree(base, ignore_errors=True)
