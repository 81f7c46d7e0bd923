"""Running a FUSE mount in the foreground: libfuse options, readahead, and telling the
user when it is up."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from ..errors import NotFoundError, UsageError
from . import fuse

log = logging.getLogger("stream_backend.fuse")

READAHEAD_KB = 1024


def mount_device(mountpoint: str) -> str | None:
    """'major:minor' of the mount at ``mountpoint`` from /proc/self/mountinfo (no stat:
    stat-ing our own mount from the process serving it could deadlock)."""
    dev = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[4].replace("\\040", " ") == mountpoint:
                    dev = parts[2]  # keep the last one: the top of the mount stack
    except OSError:
        return None
    return dev


def _when_mounted(
    mountpoint: str, announce: str | None, kb: int = READAHEAD_KB, wait: float = 30.0
) -> None:
    """Once the mount is up: raise its kernel readahead (FUSE starts at 128 KiB; sequential
    readers such as duplicity and tar then get ~1.6x the throughput, scripts/bench_mount.py;
    needs root for /sys/class/bdi, else the default stays and nothing fails), then print
    ``announce`` on stderr."""

    def work():
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            dev = mount_device(mountpoint)
            if dev:
                try:
                    with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w") as f:
                        f.write(str(kb))
                except OSError as exc:
                    log.debug("readahead not tuned: %s", exc)
                if announce:
                    print(announce, file=sys.stderr, flush=True)
                return
            time.sleep(0.05)

    threading.Thread(target=work, name="when-mounted", daemon=True).start()


def run_mount(
    operations,
    mountpoint: str,
    read_only: bool,
    fsname: str,
    debug: bool = False,
    attr_timeout: float = 1.0,
    allow_other: bool = False,
) -> None:
    """Mount in the foreground until unmounted, SIGINT, SIGTERM or SIGHUP.

    ``auto_unmount``: libfuse's fusermount helper unmounts even if this process is killed
    with SIGKILL, so a mount never outlives its command."""
    if fuse.mfusepy is None:
        raise UsageError(
            f"FUSE is not available: {fuse.IMPORT_ERROR} (install fuse3 or libfuse2, and mfusepy)"
        )
    if not os.path.isdir(mountpoint):
        raise NotFoundError(f"mount point {mountpoint!r} is not a directory")
    if os.path.ismount(mountpoint):
        raise UsageError(f"{mountpoint!r} is already a mount point")
    opts = dict(
        foreground=True,
        fsname=fsname.replace(",", "_"),
        subtype="stream-backend",
        use_ino=True,
        auto_unmount=True,
        attr_timeout=attr_timeout,
        entry_timeout=attr_timeout,
        negative_timeout=0,
        debug=debug,
    )
    if read_only:
        opts["ro"] = True
    else:
        # unlink of a file still open (its RELEASE not yet in) deletes the stream, instead of
        # the kernel renaming it to .fuse_hidden*, which a stream cannot be
        opts["hard_remove"] = True
    if allow_other:  # the kernel then checks the modes we report (0444/0644, 0555/0755)
        opts["allow_other"] = True
        opts["default_permissions"] = True
    if fuse.mfusepy.fuse_version_major == 2:
        opts["big_writes"] = True
        opts["max_write"] = 1024 * 1024
    else:
        opts["max_idle_threads"] = 8  # libfuse 3.14 warns about its own unset default
    logging.getLogger("fuse").setLevel(logging.DEBUG if debug else logging.ERROR)
    mp = os.path.abspath(mountpoint)
    _when_mounted(
        mp,
        f"stream-backend: mounted {fsname} at {mp} "
        f"({'read-only' if read_only else 'read-write'}); Ctrl-C, SIGTERM or "
        f"`stream-backend umount {mp}` unmounts",
    )
    try:
        fuse.mfusepy.FUSE(operations, mountpoint, **opts)
    except RuntimeError as exc:
        if getattr(operations, "initialized", False):
            return  # libfuse 3 returns non-zero when a signal ended the loop: a clean unmount
        raise UsageError(f"could not mount at {mountpoint!r} (libfuse error {exc})") from None
