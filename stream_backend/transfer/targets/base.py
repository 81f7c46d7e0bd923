"""What the transfer engine asks of an archive's home, and the fsspec implementation the
local and S3 targets refine."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator, Protocol

from ...errors import NotFoundError, StreamBackendError, UnavailableError, UsageError
from .errors import translate_error
from .uploads import ObjectUpload, PartPool, done


@dataclass(frozen=True)
class ObjectLock:
    """What keeps an object from being deleted or overwritten (S3 Object Lock): a retention
    ``mode`` (GOVERNANCE, COMPLIANCE) until a date, and/or a legal hold."""

    mode: str | None = None
    until: datetime | None = None
    legal_hold: bool = False

    def renewed_by(self, want: ObjectLock) -> ObjectLock | None:
        """The lock to set so that this one (an earlier run's) lasts as ``want`` asks, or
        None while it still does: a retention is renewed once less than half of ``want``'s
        period is left, never weakened (COMPLIANCE stays COMPLIANCE), and a hold is added."""
        stale = want.legal_hold and not self.legal_hold
        mode, until = self.mode, self.until
        if want.mode and want.until:
            now = datetime.now(timezone.utc)
            left = (self.until - now) if self.until else timedelta(0)
            if left < (want.until - now) / 2:
                stale = True
                mode = "COMPLIANCE" if "COMPLIANCE" in (self.mode, want.mode) else want.mode
                until = max(want.until, self.until) if self.until else want.until
        return ObjectLock(mode, until, want.legal_hold or self.legal_hold) if stale else None


class ArchiveTarget(Protocol):
    """An archive prefix; keys are relative, "/"-separated. Every call raises our errors
    (``errors.translate_error``), never a storage library's, and never shows credentials."""

    url: str
    #: the URL as shown to people (credentials redacted)
    display: str
    #: transient faults met so far (the storage client's retries and ours): shown by progress
    retries: int
    #: smallest part a multipart upload accepts (0: any)
    min_part_size: int

    def where(self, key: str = "") -> str: ...
    def errors(self, key: str = "") -> contextlib.AbstractContextManager: ...
    def check_access(self, create: bool = False) -> None:
        """Fail fast with the right code: missing bucket 66, bad credentials 77."""
    def check_free_space(self, nbytes: int) -> None:
        """Refuse to start a run that cannot fit (where the target can tell)."""
    def read(self, key: str) -> bytes | None:
        """Whole object, or None when absent."""
    def read_range(self, key: str, start: int, end: int) -> bytes: ...
    def write(self, key: str, data: bytes) -> None:
        """Replace an object whole and atomically (readers see old or new bytes)."""
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, version tag for ``write_if``), (None, None) when absent."""
    def atomic_if(self, absent: bool) -> bool:
        """Does ``write_if`` decide a race by itself (no read-back needed)?"""
    def write_if(self, key: str, data: bytes, *, absent: bool = False, etag: str | None = None) -> str | None:
        """Write only if absent / still at ``etag``; PreconditionFailed when another won."""
    def delete(self, key: str) -> None: ...
    def delete_all(self, keys: list[str]) -> None:
        """Delete these objects (in batches where the storage has them)."""
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def list(self, dirkey: str) -> dict[str, int]:
        """Every object under ``dirkey`` (recursive): relative key -> size."""
    def children(self, dirkey: str) -> set[str]:
        """Names of the objects and directories right under ``dirkey`` (one level)."""
    def child(self, dirkey: str) -> ArchiveTarget:
        """The target at ``dirkey`` below this one, with the same settings."""
    def written(self, dirkey: str) -> dict[str, float | None]:
        """Every object under ``dirkey``: relative key -> when the storage says it was
        written (epoch seconds; None where it does not say)."""
    def upload(self, key: str, part_size: int, pool: PartPool) -> ObjectUpload: ...
    def abort_stray_uploads(self, dirkey: str, keep: set[str] = frozenset()) -> int:
        """Abort unfinished uploads under ``dirkey`` but those for ``keep``; -> how many."""
    def local_path(self, key: str) -> str | None:
        """The object as a file on this machine, when it is one (read in place)."""
    def presigned_url(self, key: str, expires: int) -> str | None:
        """A URL whoever holds it may GET the object with for ``expires`` seconds (S3);
        None where the target has none."""
    def object_lock(self) -> ObjectLock | None:
        """The lock asked for on what a restore needs (written from now on); None: none."""
    def lock_of(self, key: str) -> ObjectLock | None:
        """The lock on ``key`` now; None where the target has no locks or the key none."""
    def set_lock(self, key: str, lock: ObjectLock) -> None:
        """Extend ``key``'s lock to ``lock`` (retention never shortened, hold added)."""


class FsspecTarget:
    """Any fsspec filesystem: whole-object writes, its own buffered writer for data."""

    min_part_size = 0
    #: tries of a small object's read or write before a transient fault ends the transfer
    SMALL_ATTEMPTS = 6

    def __init__(self, url: str, display: str, fs, root: str):
        self.url, self.display, self.fs = url, display, fs
        self.root = root.rstrip("/")
        self.retries = 0

    # -- paths and errors ------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def where(self, key: str = "") -> str:
        base = self.display.rstrip("/")
        return f"{base}/{key}" if key else base

    def local_path(self, key: str) -> str | None:
        return None

    def presigned_url(self, key: str, expires: int) -> str | None:
        return None

    def object_lock(self) -> ObjectLock | None:
        return None

    def lock_of(self, key: str) -> ObjectLock | None:
        return None

    def set_lock(self, key: str, lock: ObjectLock) -> None:
        raise UsageError(f"{self.display} has no Object Lock: lock archives in S3")

    @contextlib.contextmanager
    def errors(self, key: str = "") -> Iterator[None]:
        try:
            yield
        except StreamBackendError:
            raise
        except Exception as exc:
            raise translate_error(exc, self.where(key)) from None

    def _retried(self, key: str, fn):
        """``fn()`` with our errors, a transient one (a dropped body, a reset, a 5xx)
        retried with backoff (0.2 s doubling, about 6 s in all): a lease, checkpoint or
        manifest read must not end a transfer that a data part's retry would have saved."""
        delay = 0.2
        for attempt in range(self.SMALL_ATTEMPTS):
            try:
                with self.errors(key):
                    return fn()
            except UnavailableError:
                if attempt + 1 == self.SMALL_ATTEMPTS:
                    raise
                self.retries += 1
                time.sleep(delay)
                delay *= 2

    # -- checks --------------------------------------------------------------
    def check_access(self, create: bool = False) -> None:
        pass

    def check_free_space(self, nbytes: int) -> None:
        pass

    # -- objects -------------------------------------------------------------
    def read(self, key: str) -> bytes | None:
        try:
            return self._retried(key, lambda: self.fs.cat_file(self.path(key)))
        except NotFoundError:
            return None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.errors(key):
            return self.fs.cat_file(self.path(key), start=start, end=end)

    def write(self, key: str, data: bytes) -> None:
        with self.errors(key):
            self.fs.pipe_file(self.path(key), data)

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        return self.read(key), None

    def atomic_if(self, absent: bool) -> bool:
        return False

    def write_if(self, key: str, data: bytes, *, absent: bool = False, etag: str | None = None) -> str | None:
        self.write(key, data)  # no condition to ask for here: the caller's read-back settles races
        return None

    def delete(self, key: str) -> None:
        with self.errors(key):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(key))

    def delete_all(self, keys: list[str]) -> None:
        if keys:
            with self.errors(keys[0]):
                self.fs.rm([self.path(k) for k in keys])

    def exists(self, key: str) -> bool:
        with self.errors(key):
            return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int | None:
        try:
            return self._retried(key, lambda: int(self.fs.size(self.path(key))))
        except NotFoundError:
            return None

    def _listed(self, rel: str) -> bool:
        return True

    def _find(self, dirkey: str) -> dict[str, dict]:
        """Every object under ``dirkey``: relative key -> fsspec's info about it."""
        base = self.path(dirkey).rstrip("/")

        def find():
            try:
                return self.fs.find(base, detail=True)
            except FileNotFoundError:
                return {}

        out: dict[str, dict] = {}
        for path, info in self._retried(dirkey, find).items():
            if info.get("type") == "directory":
                continue
            rel = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
            if self._listed(rel):
                out[rel] = info
        return out

    def list(self, dirkey: str) -> dict[str, int]:
        return {rel: int(info.get("size") or 0) for rel, info in self._find(dirkey).items()}

    def children(self, dirkey: str) -> set[str]:
        base = self.path(dirkey).rstrip("/")

        def ls():
            try:
                return self.fs.ls(base, detail=False)
            except FileNotFoundError:
                return []

        return {p.rstrip("/").rsplit("/", 1)[-1] for p in self._retried(dirkey, ls)
                if p.rstrip("/") != base} - {""}

    def child(self, dirkey: str) -> FsspecTarget:
        return type(self)(f"{self.url.rstrip('/')}/{dirkey}", self.where(dirkey), self.fs, self.path(dirkey))

    def written(self, dirkey: str) -> dict[str, float | None]:
        def when(info: dict) -> float | None:
            t = info.get("LastModified", info.get("mtime"))  # S3's, or a file's
            return t.timestamp() if hasattr(t, "timestamp") else (float(t) if t is not None else None)

        return {rel: when(info) for rel, info in self._find(dirkey).items()}

    def upload(self, key: str, part_size: int, pool: PartPool) -> ObjectUpload:
        return FsspecUpload(self, key)

    def abort_stray_uploads(self, dirkey: str, keep: set[str] = frozenset()) -> int:
        return 0


class FsspecUpload(ObjectUpload):
    """Any other fsspec filesystem: its own buffered writer."""

    def __init__(self, target: FsspecTarget, key: str):
        self.target, self.key = target, key
        self.f = target.fs.open(target.path(key), "wb")

    def write_part(self, data: bytes) -> None:
        with self.target.errors(self.key):
            self.f.write(data)
            self.sent_bytes += len(data)

    def finish(self):
        with self.target.errors(self.key):
            self.f.close()
        return done()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.f.discard() if hasattr(self.f, "discard") else None
