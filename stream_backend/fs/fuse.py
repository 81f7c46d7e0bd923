"""FUSE operations over an fsspec filesystem: the stream filesystem (streams as files) or
any read-only one (an archive).

Own mfusepy Operations rather than fsspec.fuse because a mount is used by rsync, tar and
duplicity, which decide what changed from st_size/st_mtime: those must be *stable*
(mtime = the stream's last append time, never "now"), inode numbers must not change
between calls or mounts, and every failure must reach the caller as the right errno
(fsspec.fuse reports now() as mtime and turns errno-less errors into ERANGE).

The tree is the filesystem's (docs/filesystem.md): a scope is a directory, a
single-segment stream a file, a multi-segment stream a directory of segment files.
Reads and writes go through the filesystem's files, so a mount and fsspec cannot
disagree. Writes (``read_write=True`` only) never rewrite history: creating a file
creates a stream, writing at the end appends, ``>>`` (O_APPEND) appends. Everything else
gets a clear errno, documented in docs/admin-guide.md:

    write at an offset other than the end, truncate to a larger size   EOPNOTSUPP
    truncate an existing non-empty file shorter (``> file``)           EPERM
    rename, link, symlink, chmod, chown, mknod                          EOPNOTSUPP
    unlink of a stream open for writing (on this mount or elsewhere)    EBUSY
    any change on a read-only mount                                     EROFS
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field

from ..errors import StreamBackendError, UsageError, WriterBusyError

log = logging.getLogger("stream_backend.fuse")


def _prefer_libfuse3() -> None:
    """Load libfuse3 when present (mfusepy would pick libfuse2 first): FUSE 3 negotiates
    reads of up to 1 MiB instead of 128 KiB, ~3x the sequential throughput
    (scripts/bench_mount.py). FUSE_LIBRARY_NAME set by the user wins."""
    import ctypes.util

    if "FUSE_LIBRARY_NAME" not in os.environ and ctypes.util.find_library("fuse3"):
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3"
        try:
            import mfusepy  # noqa: F401  (reads the variable once, at import)
        except (ImportError, OSError):
            pass
        finally:
            del os.environ["FUSE_LIBRARY_NAME"]


_prefer_libfuse3()

try:  # mfusepy is an optional extra ("fuse"); importing it loads libfuse
    import mfusepy
    from mfusepy import FuseOSError, Operations
except (ImportError, OSError) as _exc:  # pragma: no cover - reported when mounting
    mfusepy = None
    IMPORT_ERROR: Exception | None = _exc

    class Operations:  # type: ignore[no-redef]
        pass

    class FuseOSError(OSError):  # type: ignore[no-redef]
        def __init__(self, err):
            super().__init__(err, os.strerror(err))

else:
    IMPORT_ERROR = None

#: virtual extended attributes (getxattr only, never listed, so rsync -X / cp -a do not copy them)
XATTR_PREFIX = "user.stream_backend."
_BLOCK = 4096


def path_inode(key: str) -> int:
    """Stable inode number for a store path ("scope/stream/segment"); the root is 1.

    Derived from the name only, so it is the same in every call and every mount."""
    if not key:
        return 1
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return (h & ((1 << 62) - 1)) | (1 << 62)  # never 0 or 1


def _ns(t: float | None) -> int:
    return int(round(t * 1e9)) if t else 0


def _errno_of(exc: BaseException) -> int:
    if isinstance(exc, StreamBackendError):
        return exc.errno
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return exc.errno
    if isinstance(exc, (FileNotFoundError, KeyError)):
        return errno.ENOENT
    if isinstance(exc, PermissionError):
        return errno.EACCES
    if isinstance(exc, (NotImplementedError,)):
        return errno.EOPNOTSUPP
    return errno.EIO


def fuse_errors(fn):
    """Map any exception to a FuseOSError with the right errno (EIO for bugs, logged)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except FuseOSError:
            raise
        except StreamBackendError as exc:
            log.debug("%s%r: %s", fn.__name__, args[:1], exc)
            raise FuseOSError(exc.errno) from None
        except Exception as exc:  # noqa: BLE001 - must become an errno, never kill the mount
            err = _errno_of(exc)
            if err == errno.EIO:
                log.warning("%s %r failed: %s: %s", fn.__name__, args[:1], type(exc).__name__, exc)
            raise FuseOSError(err) from None

    return wrapper


@dataclass
class ReadCounter:
    """Per-file read statistics, exposed as xattrs (atime-free proof of what was read)."""

    calls: int = 0
    bytes: int = 0


@dataclass
class _Open:
    """An open file of the filesystem behind one FUSE file handle."""

    path: str
    file: object
    writing: bool = False
    append_only: bool = False
    #: the file's size when it was opened for writing (its stream's writer held since)
    committed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def end(self) -> int:
        """Where the next write must start: committed bytes plus those written since."""
        return self.committed + self.file.loc


def _related(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same path or one lies below the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/") or not a or not b


class FileSystemOperations(Operations):
    """An fsspec filesystem as a FUSE tree: the stream filesystem (read-only or
    append-only) or any read-only one (an archive above all).

    What a path is, its size, its errors and its bytes come from the filesystem, so the
    mount and fsspec cannot disagree. Here lives only what FUSE adds: stable attributes
    (mtime from ``info()``, 0 when it has none, never "now"; inode numbers from the
    path), a short-lived cache of ``info()`` filled by ``readdir``, POSIX's view of
    appends (writes only at the end; ``> file`` and shorter truncates of a non-empty file
    are EPERM) and errnos for everything else."""

    use_ns = True

    #: info fields shown as ``user.stream_backend.NAME`` xattrs, besides the read counters
    XATTR_FIELDS = ("events", "head_seq", "tail_seq", "segments")
    #: how long an open or unlink waits for this mount's previous handle on the stream (its
    #: RELEASE closes the writer, a durable flush that a loaded disk may take seconds for);
    #: a writer held elsewhere is refused at once
    RELEASE_WAIT = 10.0

    def __init__(self, fs, root: str = "", read_write: bool = False, cache_ttl: float = 1.0) -> None:
        self.fs = fs
        self.root = root.strip("/")
        self.read_write = read_write
        self.cache_ttl = cache_ttl
        self._infos: dict[str, tuple[float, dict]] = {}
        self._cache_lock = threading.Lock()
        self._handles: dict[int, _Open] = {}
        self._next_fh = 1
        self._fh_lock = threading.Lock()
        self.reads: dict[str, ReadCounter] = {}
        self._uid, self._gid = os.getuid(), os.getgid()

    #: set once the kernel mount is up (libfuse called init)
    initialized = False

    def init(self, path):
        self.initialized = True

    # ----------------------------------------------------------------- lookups
    def _p(self, path: str) -> str:
        path = path.strip("/")
        if not self.root:
            return path
        return f"{self.root}/{path}" if path else self.root

    def _info(self, full: str, fresh: bool = False) -> dict:
        now = time.monotonic()
        if not fresh and self.cache_ttl > 0:
            with self._cache_lock:
                hit = self._infos.get(full)
            if hit and now - hit[0] < self.cache_ttl:
                return hit[1]
        info = {"type": "directory", "size": 0} if not full else self.fs.info(full)
        with self._cache_lock:
            self._infos[full] = (now, info)
        return info

    def _forget(self, full: str) -> None:
        """Drop cached infos the change of ``full`` may have made stale (it, above, below)."""
        with self._cache_lock:
            for key in [k for k in self._infos if _related(k, full)]:
                del self._infos[key]

    def _open_handles(self, full: str | None = None) -> list[_Open]:
        with self._fh_lock:
            return [h for h in self._handles.values() if h.writing and (full is None or _related(h.path, full))]

    @staticmethod
    def _mtime(info: dict) -> float | None:
        for k in ("mtime", "LastModified", "last_modified", "created", "modified"):
            v = info.get(k)
            if v is None:
                continue
            if hasattr(v, "timestamp"):
                return v.timestamp()
            try:
                return float(v)
            except (TypeError, ValueError):
                continue
        return None

    def _attrs(self, full: str, info: dict) -> dict:
        t = _ns(self._mtime(info))
        common = {"st_ino": path_inode(full), "st_uid": self._uid, "st_gid": self._gid,
                  "st_mtime": t, "st_ctime": t, "st_atime": t}
        if info.get("type") == "directory":
            mode = 0o755 if self.read_write else 0o555
            return {"st_mode": stat.S_IFDIR | mode, "st_nlink": 2, "st_size": 0, **common}
        size = int(info.get("size") or 0)
        for h in self._open_handles(full):
            if h.path == full:
                size = max(size, h.end)  # bytes written through this mount, not yet appended
        mode = 0o644 if self.read_write else 0o444
        return {"st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_size": size,
                "st_blocks": (size + 511) // 512, "st_blksize": 128 * 1024, **common}

    # ----------------------------------------------------------------- metadata
    @fuse_errors
    def getattr(self, path, fh=None):
        full = self._p(path)
        try:
            return self._attrs(full, self._info(full))
        except UsageError:  # a name the filesystem cannot hold (".x.tmp"): not there
            raise FuseOSError(errno.ENOENT) from None

    def _entry(self, name: str, full: str, is_dir: bool):
        """readdir entry with inode and type: with use_ino, a zero d_ino would hide it."""
        mode = stat.S_IFDIR if is_dir else stat.S_IFREG
        return (name, {"st_mode": mode, "st_ino": path_inode(full)}, 0)

    @fuse_errors
    def readdir(self, path, fh):
        full = self._p(path)
        now = time.monotonic()
        entries = {}
        for info in self.fs.ls(full, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name:
                child = f"{full}/{name}" if full else name
                entries[name] = self._entry(name, child, info.get("type") == "directory")
                with self._cache_lock:  # the getattr calls that follow a listing are free
                    self._infos[child] = (now, info)
        up = full.rpartition("/")[0]
        return [self._entry(".", full, True), self._entry("..", up, True)] + [entries[n] for n in sorted(entries)]

    @fuse_errors
    def statfs(self, path):
        return {"f_bsize": _BLOCK, "f_frsize": _BLOCK, "f_namemax": 255}

    @fuse_errors
    def getxattr(self, path, name, position=0):
        full = self._p(path)
        info = self._info(full)
        values = {k: info[k] for k in self.XATTR_FIELDS if info.get(k) is not None}
        if info.get("type") != "directory":
            counter = self.reads.get(full, ReadCounter())
            values.update(read_calls=counter.calls, read_bytes=counter.bytes)
        value = values.get(name.removeprefix(XATTR_PREFIX)) if name.startswith(XATTR_PREFIX) else None
        if value is None:
            raise FuseOSError(mfusepy.ENOATTR if mfusepy else errno.ENODATA)
        return str(value).encode()

    def listxattr(self, path):
        return []

    # ----------------------------------------------------------------- reading
    def _new_fh(self, handle: _Open) -> int:
        with self._fh_lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = handle
        return fh

    @fuse_errors
    def open(self, path, flags):
        full = self._p(path)
        if flags & os.O_ACCMODE == os.O_RDONLY:
            return self._new_fh(_Open(full, self.fs.open(full, "rb")))
        self._need_rw()
        return self._new_fh(self._open_for_append(full, flags))

    @fuse_errors
    def read(self, path, size, offset, fh):
        h = self._handles.get(fh)
        if h is None:
            full = self._p(path)
            data = self.fs.cat_file(full, start=offset, end=offset + size)
        else:
            full = h.path
            pread = getattr(h.file, "pread", None)
            if pread is not None:  # positional, thread-safe: the kernel's parallel reads stay parallel
                data = pread(offset, size)
            else:
                with h.lock:
                    h.file.seek(offset)
                    data = h.file.read(size)
        with self._cache_lock:  # reads run on several FUSE threads
            c = self.reads.setdefault(full, ReadCounter())
            c.calls += 1
            c.bytes += len(data)
        return data

    @fuse_errors
    def release(self, path, fh):
        with self._fh_lock:
            h = self._handles.get(fh)
        try:
            if h is not None:
                with h.lock:
                    h.file.close()
        finally:  # listed until its writer is closed: an open waiting for it sees it
            with self._fh_lock:
                self._handles.pop(fh, None)
            if h is not None and h.writing:
                self._forget(h.path)
        return 0

    # ----------------------------------------------------------------- writing
    def _need_rw(self):
        if not self.read_write:
            raise FuseOSError(errno.EROFS)

    def _when_released(self, full: str, fn):
        """``fn()``, retried while it finds the stream's writer busy with a handle of this
        mount whose RELEASE has not come in yet (up to RELEASE_WAIT); another holder's
        writer is refused at once (EBUSY).

        close() returns once FLUSH is done; the kernel sends RELEASE, which frees the
        writer, afterwards. So `a >> f; b >> f` in a shell can open f again while this
        mount still holds the first handle's writer, and `echo x > f; rm f` can unlink it."""
        deadline = time.monotonic() + self.RELEASE_WAIT
        while True:
            try:
                return fn()
            except WriterBusyError:
                if not self._open_handles(full) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _open_for_append(self, full: str, flags: int) -> _Open:
        """Open for appending, then read the size (the writer is held: nobody can append
        meanwhile). ``> file`` (O_TRUNC) of a non-empty file is EPERM: never empty a stream."""
        f = self._when_released(full, lambda: self.fs.open(full, "ab"))
        try:
            size = int(self._info(full, fresh=True).get("size") or 0)
            if flags & os.O_TRUNC and size > 0:
                raise FuseOSError(errno.EPERM)
        except BaseException:
            f.close()
            raise
        return _Open(full, f, writing=True, append_only=bool(flags & os.O_APPEND), committed=size)

    @fuse_errors
    def create(self, path, mode, flags=0):
        self._need_rw()
        full = self._p(path)
        fh = self._new_fh(self._open_for_append(full, flags))
        self._forget(full)
        return fh

    @fuse_errors
    def write(self, path, data, offset, fh):
        self._need_rw()
        h = self._handles.get(fh)
        if h is None or not h.writing:
            raise FuseOSError(errno.EBADF)
        with h.lock:
            if not h.append_only and offset != h.end:
                raise FuseOSError(errno.EOPNOTSUPP)  # a stream cannot be rewritten
            h.file.write(data)
        return len(data)

    @fuse_errors
    def flush(self, path, fh):
        """Every close() of a descriptor: the bytes written so far become events, durable."""
        h = self._handles.get(fh)
        if h is not None and h.writing:
            with h.lock:
                h.file.commit()
            self._forget(h.path)
        return 0

    @fuse_errors
    def fsync(self, path, datasync, fh):
        return self.flush(path, fh)

    @fuse_errors
    def truncate(self, path, length, fh=None):
        self._need_rw()
        full = self._p(path)
        sizes = [h.end for h in self._open_handles(full) if h.path == full]
        current = max(sizes) if sizes else int(self._info(full, fresh=True).get("size") or 0)
        if length == current:
            return 0
        if length < current:
            raise FuseOSError(errno.EPERM)
        raise FuseOSError(errno.EOPNOTSUPP)  # growing would zero-fill

    @fuse_errors
    def mkdir(self, path, mode):
        self._need_rw()
        full = self._p(path)
        self.fs.mkdir(full, create_parents=False)
        self._forget(full)
        return 0

    @fuse_errors
    def rmdir(self, path):
        self._need_rw()
        full = self._p(path)
        self.fs.rmdir(full)
        self._forget(full)
        return 0

    @fuse_errors
    def unlink(self, path):
        self._need_rw()
        full = self._p(path)
        self._when_released(full, lambda: self.fs.rm_file(full))
        self._forget(full)
        return 0

    @fuse_errors
    def utimens(self, path, times=None):
        # Times are append times: they cannot be set. Accepted (ignored) on a read-write
        # mount so that `touch` and `cp -p` into the mount do not fail.
        self._need_rw()
        self._info(self._p(path))
        return 0

    def _refuse(self, *args, **kwargs):
        self._need_rw()
        raise FuseOSError(errno.EOPNOTSUPP)

    rename = link = symlink = mknod = chmod = chown = fallocate = _refuse

    def destroy(self, path):
        with self._fh_lock:
            handles = list(self._handles.values())
            self._handles.clear()
        for h in handles:
            try:
                h.file.close()
            except Exception as exc:  # noqa: BLE001 - unmounting: report, close the others
                log.warning("closing %s failed: %s", h.path, exc)
