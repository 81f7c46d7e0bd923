"""FUSE mount of a store (streams as files) and of any read-only fsspec filesystem.

Own mfusepy Operations rather than fsspec.fuse because a mount is used by rsync, tar and
duplicity, which decide what changed from st_size/st_mtime: those must be *stable*
(mtime = the stream's last append time, never "now"), inode numbers must not change
between calls or mounts, and every failure must reach the caller as the right errno
(fsspec.fuse reports now() as mtime and turns errno-less errors into ERANGE).

Layout (mount root = the store, or one scope)::

    /SCOPE/                 a directory per scope (store mounts only)
    /SCOPE/STREAM           a single-segment stream: a file, its segment's file view
    /SCOPE/STREAM/N         a multi-segment stream: a directory with one file per segment

Reads are served by ``StreamStore.read_range`` (offset index, O(log n) per read).

Writes (``read_write=True`` only) never rewrite history: creating a file creates a
stream; writing at the end appends events (split at the store's max event size); ``>>``
(O_APPEND) appends. Everything else gets a clear errno, documented in
docs/admin-guide.md:

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
import sys
import threading
import time
from dataclasses import dataclass, field

from ..errors import StreamBackendError, UsageError, WriterBusyError
from ..urls import check_name

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
    _IMPORT_ERROR: Exception | None = _exc

    class Operations:  # type: ignore[no-redef]
        pass

    class FuseOSError(OSError):  # type: ignore[no-redef]
        def __init__(self, err):
            super().__init__(err, os.strerror(err))

else:
    _IMPORT_ERROR = None

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
class _Handle:
    scope: str
    stream: str
    segment: int
    writer: object | None = None
    append_only: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    #: file-view length already committed by the store when the handle opened / last flushed
    committed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def end(self) -> int:
        return self.committed + len(self.buffer)


class StoreOperations(Operations):
    """Streams of a store (or of one scope) as a read-only or append-only file tree."""

    use_ns = True

    def __init__(
        self,
        store,
        scope: str | None = None,
        read_write: bool = False,
        cache_ttl: float = 1.0,
    ) -> None:
        self.store = store
        self.scope = check_name("scope", scope) if scope else None
        self.read_write = read_write
        self.cache_ttl = cache_ttl
        self.max_event_size = store.max_event_size
        self._info_cache: dict[tuple[str, str], tuple[float, object]] = {}
        self._cache_lock = threading.Lock()
        self._handles: dict[int, _Handle] = {}
        self._next_fh = 1
        self._fh_lock = threading.Lock()
        self.reads: dict[tuple[str, str, int], ReadCounter] = {}
        self._uid, self._gid = os.getuid(), os.getgid()
        self._mounted_at = time.time()

    #: set once the kernel mount is up (libfuse called init)
    initialized = False

    def init(self, path):
        self.initialized = True

    # ----------------------------------------------------------------- resolution
    def _split(self, path: str) -> tuple[str | None, str | None, int | None, int]:
        """path -> (scope, stream, segment, depth-kind); raises ENOENT for bad names."""
        parts = [p for p in path.split("/") if p]
        if self.scope:
            parts = [self.scope] + parts
        if len(parts) > 3:
            raise FuseOSError(errno.ENOENT)
        try:
            scope = check_name("scope", parts[0]) if parts else None
            stream = check_name("stream", parts[1]) if len(parts) > 1 else None
        except UsageError:
            raise FuseOSError(errno.ENOENT) from None
        segment = None
        if len(parts) == 3:
            if not parts[2].isdigit() or (len(parts[2]) > 1 and parts[2][0] == "0"):
                raise FuseOSError(errno.ENOENT)
            segment = int(parts[2])
        return scope, stream, segment, len(parts)

    def _info(self, scope: str, stream: str, fresh: bool = False):
        key = (scope, stream)
        now = time.monotonic()
        if not fresh and self.cache_ttl > 0:
            with self._cache_lock:
                hit = self._info_cache.get(key)
            if hit and now - hit[0] < self.cache_ttl:
                return hit[1]
        info = self.store.stream_info(scope, stream)
        with self._cache_lock:
            self._info_cache[key] = (now, info)
        return info

    def _forget(self, scope: str, stream: str | None = None) -> None:
        with self._cache_lock:
            for key in list(self._info_cache):
                if key[0] == scope and (stream is None or key[1] == stream):
                    del self._info_cache[key]

    def _key(self, scope, stream, segment) -> str:
        return "/".join(str(p) for p in (scope, stream, segment) if p is not None)

    def _open_length(self, scope: str, stream: str, segment: int) -> int | None:
        """File-view length including bytes buffered by an open writer handle of ours."""
        best = None
        with self._fh_lock:
            handles = list(self._handles.values())
        for h in handles:
            if h.writer is not None and (h.scope, h.stream, h.segment) == (scope, stream, segment):
                best = max(best or 0, h.end)
        return best

    def _dir_attrs(self, key: str, mtime: float | None) -> dict:
        t = _ns(mtime)
        mode = 0o755 if self.read_write else 0o555
        return {
            "st_mode": stat.S_IFDIR | mode,
            "st_nlink": 2,
            "st_ino": path_inode(key),
            "st_size": 0,
            "st_uid": self._uid,
            "st_gid": self._gid,
            "st_mtime": t,
            "st_ctime": t,
            "st_atime": t,
        }

    def _file_attrs(self, key: str, size: int, mtime: float | None) -> dict:
        t = _ns(mtime)
        mode = 0o644 if self.read_write else 0o444
        return {
            "st_mode": stat.S_IFREG | mode,
            "st_nlink": 1,
            "st_ino": path_inode(key),
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 128 * 1024,
            "st_uid": self._uid,
            "st_gid": self._gid,
            "st_mtime": t,
            "st_ctime": t,
            "st_atime": t,
        }

    def _scope_mtime(self, scope: str) -> float | None:
        """Latest append in the scope (as the fsspec view reports it): stable, not "now"."""
        times = []
        for name in self.store.list_streams(scope):
            try:
                info = self._info(scope, name)
            except StreamBackendError:
                continue
            t = info.last_append or info.created
            if t:
                times.append(t)
        return max(times) if times else None

    def _scopes(self) -> list[str]:
        return [self.scope] if self.scope else sorted(self.store.list_scopes())

    # ----------------------------------------------------------------- metadata
    @fuse_errors
    def getattr(self, path, fh=None):
        scope, stream, segment, depth = self._split(path)
        if scope is None:
            return self._dir_attrs("", None)
        if stream is None:
            if scope not in self.store.list_scopes():
                raise FuseOSError(errno.ENOENT)
            return self._dir_attrs(scope, self._scope_mtime(scope))
        info = self._info(scope, stream)
        key = self._key(scope, stream, segment)
        if segment is None:
            if info.segment_count != 1:
                return self._dir_attrs(key, info.last_append or info.created)
            seg = info.segments[0]
            size = self._open_length(scope, stream, seg.segment)
            size = seg.length if size is None else max(size, seg.length)
            return self._file_attrs(key, size, seg.last_append or info.created)
        seg = self._segment(info, segment)
        return self._file_attrs(key, seg.length, seg.last_append or info.created)

    @staticmethod
    def _segment(info, number: int):
        """Segment ``number`` of a multi-segment stream (numbers need not be 0..n-1: a
        truncated Pravega stream starts past its deleted segments); ENOENT otherwise."""
        if info.segment_count > 1:
            for seg in info.segments:
                if seg.segment == number:
                    return seg
        raise FuseOSError(errno.ENOENT)

    def _entry(self, name: str, key: str, is_dir: bool):
        """readdir entry with inode and type: with use_ino, a zero d_ino would hide it."""
        mode = stat.S_IFDIR if is_dir else stat.S_IFREG
        return (name, {"st_mode": mode, "st_ino": path_inode(key)}, 0)

    @fuse_errors
    def readdir(self, path, fh):
        scope, stream, segment, depth = self._split(path)
        here = self._key(scope, stream, None)
        parent = here.rsplit("/", 1)[0] if "/" in here else ""
        entries = [self._entry(".", here, True), self._entry("..", parent, True)]
        if scope is None:
            return entries + [self._entry(s, s, True) for s in self._scopes()]
        if stream is None:
            out = []
            for name in sorted(self.store.list_streams(scope)):
                try:
                    is_dir = self._info(scope, name).segment_count != 1
                except StreamBackendError:
                    continue  # deleted meanwhile
                out.append(self._entry(name, f"{scope}/{name}", is_dir))
            return entries + out
        if segment is not None:
            raise FuseOSError(errno.ENOTDIR)
        info = self._info(scope, stream)
        if info.segment_count == 1:
            raise FuseOSError(errno.ENOTDIR)
        return entries + [
            self._entry(str(s.segment), f"{scope}/{stream}/{s.segment}", False) for s in info.segments
        ]

    @fuse_errors
    def statfs(self, path):
        return {"f_bsize": _BLOCK, "f_frsize": _BLOCK, "f_namemax": 255}

    @fuse_errors
    def getxattr(self, path, name, position=0):
        if not name.startswith(XATTR_PREFIX):
            raise FuseOSError(mfusepy.ENOATTR if mfusepy else errno.ENODATA)
        scope, stream, segment, _ = self._split(path)
        attr = name.removeprefix(XATTR_PREFIX)
        if stream is None:
            raise FuseOSError(mfusepy.ENOATTR if mfusepy else errno.ENODATA)
        info = self._info(scope, stream)
        s = None
        if segment is not None:
            s = self._segment(info, segment)
        elif info.segment_count == 1:
            s = info.segments[0]
        counter = self.reads.get((scope, stream, s.segment if s else 0), ReadCounter())
        values = {
            "read_calls": counter.calls,
            "read_bytes": counter.bytes,
            "segments": info.segment_count,
        }
        if s is not None:
            values.update(events=s.events, head_seq=s.head_seq, tail_seq=s.tail_seq)
        if attr not in values:
            raise FuseOSError(mfusepy.ENOATTR if mfusepy else errno.ENODATA)
        return str(values[attr]).encode()

    def listxattr(self, path):
        return []

    # ----------------------------------------------------------------- reading
    def _file(self, path) -> tuple[str, str, int]:
        scope, stream, segment, _ = self._split(path)
        if stream is None:
            raise FuseOSError(errno.EISDIR)
        info = self._info(scope, stream)
        if segment is None:
            if info.segment_count != 1:
                raise FuseOSError(errno.EISDIR)
            return scope, stream, info.segments[0].segment
        return scope, stream, self._segment(info, segment).segment

    def _new_fh(self, handle: _Handle) -> int:
        with self._fh_lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = handle
        return fh

    @fuse_errors
    def open(self, path, flags):
        scope, stream, segment = self._file(path)
        accmode = flags & os.O_ACCMODE
        handle = _Handle(scope, stream, segment)
        if accmode != os.O_RDONLY:
            if not self.read_write:
                raise FuseOSError(errno.EROFS)
            if self._info(scope, stream).segment_count != 1:
                raise FuseOSError(errno.EOPNOTSUPP)  # routing across segments is not a file write
            self._attach_writer(handle, flags)
        return self._new_fh(handle)

    @fuse_errors
    def read(self, path, size, offset, fh):
        h = self._handles.get(fh)
        if h is None:
            scope, stream, segment = self._file(path)
        else:
            scope, stream, segment = h.scope, h.stream, h.segment
        data = self.store.read_range(scope, stream, segment, offset, size)
        with self._cache_lock:  # reads run on several FUSE threads
            c = self.reads.setdefault((scope, stream, segment), ReadCounter())
            c.calls += 1
            c.bytes += len(data)
        return data

    @fuse_errors
    def release(self, path, fh):
        with self._fh_lock:
            h = self._handles.get(fh)
        try:
            if h is not None and h.writer is not None:
                try:
                    self._drain(h, final=True)
                finally:
                    h.writer.close()
                    self._forget(h.scope, h.stream)
        finally:  # listed until its writer is closed: an open waiting for it sees it
            with self._fh_lock:
                self._handles.pop(fh, None)
        return 0

    # ----------------------------------------------------------------- writing
    def _need_rw(self):
        if not self.read_write:
            raise FuseOSError(errno.EROFS)

    #: how long an open for writing waits for this mount's previous handle on the stream
    RELEASE_WAIT = 2.0

    def _when_released(self, scope: str, stream: str, fn):
        """``fn()``, retried while it finds the stream's writer busy with a handle of this
        mount whose RELEASE has not come in yet (up to RELEASE_WAIT); another holder's
        writer is refused at once (EBUSY)."""
        deadline = time.monotonic() + self.RELEASE_WAIT
        while True:
            try:
                return fn()
            except WriterBusyError:
                with self._fh_lock:
                    ours = any(o.writer is not None and (o.scope, o.stream) == (scope, stream)
                               for o in self._handles.values())
                if not ours or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _attach_writer(self, h: _Handle, flags: int) -> None:
        """Take the stream's writer, then read where it ends (nobody can append meanwhile).

        close() returns once FLUSH is done; the kernel sends RELEASE, which frees the
        writer, afterwards. So `a >> f; b >> f` in a shell can open f again while this
        mount still holds the first handle's writer: that case waits for the release
        (briefly), instead of failing the second append with EBUSY."""
        h.writer = self._when_released(h.scope, h.stream, lambda: self.store.writer(h.scope, h.stream))
        try:
            length = self._info(h.scope, h.stream, fresh=True).segments[0].length
            if flags & os.O_TRUNC and length > 0:
                raise FuseOSError(errno.EPERM)  # `> file` must never empty a stream
        except BaseException:
            h.writer.close()
            h.writer = None
            raise
        h.append_only = bool(flags & os.O_APPEND)
        h.committed = length

    def _drain(self, h: _Handle, final: bool) -> None:
        """Append buffered bytes as events: full max-size events always, the rest if final."""
        with h.lock:
            n = self.max_event_size
            while len(h.buffer) >= n or (final and h.buffer):
                chunk = bytes(h.buffer[:n])
                h.writer.append(chunk, segment=h.segment)
                del h.buffer[: len(chunk)]
                h.committed += len(chunk)
            if final:
                h.writer.flush()

    @fuse_errors
    def create(self, path, mode, flags=0):
        self._need_rw()
        parent, _, name = path.rstrip("/").rpartition("/")
        self._split(parent or "/")
        check_name("stream", name)  # UsageError -> EINVAL: say why, not "no such file"
        scope, stream, segment, depth = self._split(path)
        if stream is None or segment is not None:
            raise FuseOSError(errno.EOPNOTSUPP)
        if self.scope is None and scope not in self.store.list_scopes():
            raise FuseOSError(errno.ENOENT)
        self.store.create_stream(scope, stream, segments=1, exist_ok=True)
        self._forget(scope, stream)
        info = self._info(scope, stream, fresh=True)
        if info.segment_count != 1:
            raise FuseOSError(errno.EISDIR)
        h = _Handle(scope, stream, info.segments[0].segment)
        self._attach_writer(h, flags)
        return self._new_fh(h)

    @fuse_errors
    def write(self, path, data, offset, fh):
        self._need_rw()
        h = self._handles.get(fh)
        if h is None or h.writer is None:
            raise FuseOSError(errno.EBADF)
        with h.lock:
            if not h.append_only and offset != h.end:
                raise FuseOSError(errno.EOPNOTSUPP)
            h.buffer += data
        self._drain(h, final=False)
        return len(data)

    @fuse_errors
    def flush(self, path, fh):
        h = self._handles.get(fh)
        if h is not None and h.writer is not None:
            self._drain(h, final=True)
            self._forget(h.scope, h.stream)
        return 0

    @fuse_errors
    def fsync(self, path, datasync, fh):
        return self.flush(path, fh)

    @fuse_errors
    def truncate(self, path, length, fh=None):
        self._need_rw()
        scope, stream, segment = self._file(path)
        current = self._open_length(scope, stream, segment)
        if current is None:
            info = self._info(scope, stream, fresh=True)
            current = next((s.length for s in info.segments if s.segment == segment), None)
            if current is None:  # the stream changed shape since the lookup
                raise FuseOSError(errno.ENOENT)
        if length == current:
            return 0
        if length < current:
            raise FuseOSError(errno.EPERM)
        raise FuseOSError(errno.EOPNOTSUPP)  # growing would zero-fill

    @fuse_errors
    def mkdir(self, path, mode):
        self._need_rw()
        scope, stream, segment, depth = self._split(path)
        if stream is not None or scope is None or self.scope:
            raise FuseOSError(errno.EOPNOTSUPP)
        self.store.create_scope(scope)
        return 0

    @fuse_errors
    def rmdir(self, path):
        self._need_rw()
        scope, stream, segment, depth = self._split(path)
        if stream is not None or scope is None or self.scope:
            raise FuseOSError(errno.EOPNOTSUPP)
        self.store.delete_scope(scope)
        self._forget(scope)
        return 0

    @fuse_errors
    def unlink(self, path):
        self._need_rw()
        scope, stream, segment, depth = self._split(path)
        if stream is None or segment is not None:
            raise FuseOSError(errno.EOPNOTSUPP)
        # `echo x > f; rm f`: the kernel may send UNLINK before the RELEASE of f's handle
        self._when_released(scope, stream, lambda: self.store.delete_stream(scope, stream))
        self._forget(scope, stream)
        return 0

    @fuse_errors
    def utimens(self, path, times=None):
        # Times are append times: they cannot be set. Accepted (ignored) on a read-write
        # mount so that `touch` and `cp -p` into the mount do not fail.
        self._need_rw()
        self._split(path)
        return 0

    def _refuse(self, *args, **kwargs):
        self._need_rw()
        raise FuseOSError(errno.EOPNOTSUPP)

    rename = _refuse
    link = _refuse
    symlink = _refuse
    mknod = _refuse
    chmod = _refuse
    chown = _refuse

    def fallocate(self, path, mode, offset, size, fh):
        self._need_rw()
        raise FuseOSError(errno.EOPNOTSUPP)

    def destroy(self, path):
        with self._fh_lock:
            handles = list(self._handles.values())
            self._handles.clear()
        for h in handles:
            if h.writer is not None:
                try:
                    self._drain(h, final=True)
                    h.writer.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("closing writer of %s/%s failed: %s", h.scope, h.stream, exc)


class FsspecOperations(Operations):
    """Any fsspec filesystem (an archive above all), mounted read-only.

    Stable attributes: mtime comes from info() (``mtime``/``LastModified``/``created``)
    and is 0 when the filesystem has none, never "now"."""

    use_ns = True

    def __init__(self, fs, root: str = "") -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._handles: dict[int, object] = {}
        self._next = 1
        self._lock = threading.Lock()
        self._uid, self._gid = os.getuid(), os.getgid()

    initialized = False

    def init(self, path):
        self.initialized = True

    def _p(self, path: str) -> str:
        path = path.strip("/")
        if not self.root:
            return path
        return f"{self.root}/{path}" if path else self.root

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
        is_dir = info.get("type") == "directory"
        size = int(info.get("size") or 0)
        return {
            "st_mode": (stat.S_IFDIR | 0o555) if is_dir else (stat.S_IFREG | 0o444),
            "st_nlink": 2 if is_dir else 1,
            "st_ino": path_inode("fsspec:" + full),
            "st_size": 0 if is_dir else size,
            "st_blocks": 0 if is_dir else (size + 511) // 512,
            "st_uid": self._uid,
            "st_gid": self._gid,
            "st_mtime": t,
            "st_ctime": t,
            "st_atime": t,
        }

    @fuse_errors
    def getattr(self, path, fh=None):
        full = self._p(path)
        if path.strip("/") == "":
            return self._attrs(full, {"type": "directory"})
        return self._attrs(full, self.fs.info(full))

    @fuse_errors
    def readdir(self, path, fh):
        full = self._p(path)
        entries = {}
        for entry in self.fs.ls(full, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if name:
                child = f"{full}/{name}" if full else name
                mode = stat.S_IFDIR if entry.get("type") == "directory" else stat.S_IFREG
                # with use_ino a zero d_ino hides the entry: give every one its inode
                ino = path_inode("fsspec:" + child)
                entries[name] = (name, {"st_mode": mode, "st_ino": ino}, 0)
        here = {"st_mode": stat.S_IFDIR, "st_ino": path_inode("fsspec:" + full)}
        up = full.rpartition("/")[0]
        parent = {"st_mode": stat.S_IFDIR, "st_ino": path_inode("fsspec:" + up)}
        return [(".", here, 0), ("..", parent, 0)] + [entries[n] for n in sorted(entries)]

    @fuse_errors
    def open(self, path, flags):
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise FuseOSError(errno.EROFS)
        f = self.fs.open(self._p(path), "rb")
        with self._lock:
            fh = self._next
            self._next += 1
            self._handles[fh] = (f, threading.Lock())
        return fh

    @fuse_errors
    def read(self, path, size, offset, fh):
        entry = self._handles.get(fh)
        if entry is None:
            return self.fs.cat_file(self._p(path), start=offset, end=offset + size)
        f, lock = entry
        with lock:
            f.seek(offset)
            return f.read(size)

    @fuse_errors
    def release(self, path, fh):
        with self._lock:
            entry = self._handles.pop(fh, None)
        if entry is not None:
            entry[0].close()
        return 0

    @fuse_errors
    def statfs(self, path):
        return {"f_bsize": _BLOCK, "f_frsize": _BLOCK, "f_namemax": 255}

    def listxattr(self, path):
        return []

    def _erofs(self, *args, **kwargs):
        raise FuseOSError(errno.EROFS)

    create = write = truncate = mkdir = rmdir = unlink = rename = _erofs
    link = symlink = mknod = chmod = chown = utimens = _erofs


READAHEAD_KB = 1024


def _mount_device(mountpoint: str) -> str | None:
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
            dev = _mount_device(mountpoint)
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
    if mfusepy is None:
        raise UsageError(
            f"FUSE is not available: {_IMPORT_ERROR} (install fuse3 or libfuse2, and mfusepy)"
        )
    if not os.path.isdir(mountpoint):
        from ..errors import NotFoundError

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
    if mfusepy.fuse_version_major == 2:
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
        mfusepy.FUSE(operations, mountpoint, **opts)
    except RuntimeError as exc:
        if getattr(operations, "initialized", False):
            return  # libfuse 3 returns non-zero when a signal ended the loop: a clean unmount
        raise UsageError(f"could not mount at {mountpoint!r} (libfuse error {exc})") from None
