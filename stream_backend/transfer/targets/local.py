"""An archive in a local directory (a disk, an NFS volume): atomic renames, fsync, O_EXCL
leases, and objects read in place."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
import uuid

from ...errors import NoSpaceError, NotFoundError, from_os_error
from ...units import human_size
from .base import FsspecTarget, FsspecUpload
from .errors import PreconditionFailed
from .uploads import ObjectUpload, PartPool, done


def remove_stale_tmp(path: str) -> None:
    """Drop the temporary files a killed writer of data object ``path`` left behind.

    Only called by the holder of the segment's lease, so no live writer owns them.
    """
    for tmp in glob.glob(glob.escape(path) + ".tmp-*"):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


#: small objects are written here and renamed into place, so that a writer killed midway
#: leaves nothing among the archive's objects
TMP_DIR = ".tmp"
#: a temporary file this old is a killed writer's (a small object takes milliseconds)
TMP_STALE_S = 3600


class LocalTarget(FsspecTarget):
    def local_path(self, key: str) -> str | None:
        return self.path(key)

    def _tmp(self, key: str) -> str:
        d = os.path.join(self.root, TMP_DIR)
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, f"{key.replace('/', '_')}-{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def check_access(self, create: bool = False) -> None:
        if create:
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise from_os_error(exc, f"create archive directory {self.display}") from None
            self._drop_stale_tmp()
        elif not os.path.isdir(self.root):
            raise NotFoundError(f"no archive at {self.display}")

    def _drop_stale_tmp(self) -> None:
        d = os.path.join(self.root, TMP_DIR)
        with contextlib.suppress(OSError):
            for entry in os.scandir(d):
                with contextlib.suppress(OSError):
                    if time.time() - entry.stat().st_mtime > TMP_STALE_S:
                        os.unlink(entry.path)

    def check_free_space(self, nbytes: int) -> None:
        """The directory must have room for ``nbytes`` of payload before a run starts
        (framing adds a little)."""
        if nbytes <= 0:
            return
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        if free < nbytes:
            raise NoSpaceError(
                f"archive directory {self.display} has {human_size(free)} free; this run needs about "
                f"{human_size(nbytes)}: free space or export elsewhere"
            )

    def write(self, key: str, data: bytes) -> None:
        with self.errors(key):
            path = self.path(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = self._tmp(key)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # a checkpoint or manifest must not come back empty
            os.replace(tmp, path)

    def atomic_if(self, absent: bool) -> bool:
        return absent

    def write_if(self, key: str, data: bytes, *, absent: bool = False, etag: str | None = None) -> str | None:
        """Absent: an O_EXCL create, linked into place; replacing is a plain atomic rename
        (the caller's read-back settles races there)."""
        if not absent:
            self.write(key, data)
            return None
        path = self.path(key)
        with self.errors(key):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # a name of our own: two racers sharing one temp file could link each other's
            # bytes, or find it unlinked under them
            tmp = self._tmp(key)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.link(tmp, path)  # fails if the lease exists: atomic create
        except FileExistsError:
            raise PreconditionFailed(key) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return None

    def _listed(self, rel: str) -> bool:
        # temporary files of ours: small objects being written, data objects being uploaded
        return not rel.startswith(TMP_DIR + "/") and ".tmp-" not in rel.rsplit("/", 1)[-1]

    def upload(self, key: str, part_size: int, pool: PartPool) -> ObjectUpload:
        return LocalUpload(self, key)


class LocalUpload(FsspecUpload):
    """A temporary file, fsync'ed and renamed at the end (never a torn object)."""

    def __init__(self, target: LocalTarget, key: str):
        self.path = target.path(key)
        self.target = target
        self.key = key
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        remove_stale_tmp(self.path)  # a SIGKILLed run's half object: we redo it whole
        self.tmp = f"{self.path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.f = open(self.tmp, "wb")

    def finish(self):
        with self.target.errors(self.key):
            self.f.flush()
            os.fsync(self.f.fileno())  # durable before the manifest can name it
            self.f.close()
            os.replace(self.tmp, self.path)
        return done()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
            os.unlink(self.tmp)
