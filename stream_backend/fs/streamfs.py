"""Streams as an fsspec filesystem: ``stream://SCOPE/STREAM`` (and, in pravegafs.py, the same
over Pravega, ``pravega://SCOPE/STREAM``).

The file view (docs/filesystem.md):

* the root lists scopes (directories), a scope lists its streams;
* a single-segment stream is a *file*: its events' payloads concatenated;
* a multi-segment stream is a *directory* holding one file per segment, named by the
  segment number (``stream://logs/app/0``, ``.../1``); order only exists inside a
  segment, so there is no honest single file for it. ``SCOPE/STREAM/0`` also names the
  only segment of a single-segment stream.

Reads go through ``StreamStore.read_range`` (the store's offset index), so seeks and
ranges cost O(log events). Writes append: bytes are cut into events of ``event_size``
bytes (default: the store's max event size), so a payload larger than one event
*spills over* into the next. A file opened for writing holds the stream's single writer
lock; ``close()`` returns once every event is acknowledged (durable).

Streams are append-only: overwriting a non-empty stream, writing in the middle,
truncating and renaming raise a clear error instead of pretending. Every store error
is re-raised as the matching builtin (FileNotFoundError, FileExistsError,
NotImplementedError, OSError with errno, ...) that *also* is the tool's own error class,
so fsspec callers and the CLI's exit codes both keep working.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
from typing import Any

from fsspec.spec import AbstractFileSystem

from .. import errors as E
from .. import settings
from ..stores import StreamInfo, open_store, registry
from ..stores.base import SegmentInfo
from ..urls import check_name
from .errors import as_fs_error, fs_error, translating, unsupported
from .streamfile import StreamFile

# errors: see fs/errors.py (shared with archivefs)


# --------------------------------------------------------------------------- filesystem


class _ResolvingCached(type(AbstractFileSystem)):
    """Resolve env-var defaults *before* fsspec tokenizes the options for its instance
    cache, so ``StreamFileSystem()`` under a different STREAM_BACKEND_ROOT is a different
    filesystem instead of a stale cached one."""

    def __call__(cls, *args, **kwargs):
        return super().__call__(*args, **cls._resolve_options(dict(kwargs)))


class StreamFileSystem(AbstractFileSystem, metaclass=_ResolvingCached):
    """Streams of the embedded local store as files (``stream://SCOPE/STREAM``).

    Storage options: ``root`` (store directory; default env STREAM_BACKEND_ROOT, else the
    per-user data dir), ``max_event_size`` (local store only, for new stores),
    ``event_size`` (default bytes per event when writing).
    """

    protocol = "stream"
    root_marker = ""
    store_protocol = "stream"

    def __init__(
        self,
        root: str | None = None,
        max_event_size: int | None = None,
        event_size: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        options: dict[str, Any] = {"root": root}
        if max_event_size is not None:
            options["max_event_size"] = int(max_event_size)
        self._init_store(options, event_size)

    def _init_store(self, options: dict[str, Any], event_size: int | None) -> None:
        """The store is opened on first use, with these options."""
        self._store_options = options
        self.event_size = event_size
        self._store = None
        self._store_lock = threading.Lock()

    @classmethod
    def _resolve_options(cls, kwargs: dict) -> dict:
        if kwargs.get("root") is None:
            kwargs["root"] = settings.store_root()
        if kwargs.get("root") is not None:
            # absolute: a relative root must not mean another store after a chdir
            kwargs["root"] = os.path.abspath(os.path.expanduser(os.fspath(kwargs["root"])))
        return kwargs

    # -- store ---------------------------------------------------------------

    @property
    def store(self):
        """The StreamStore, opened on first use (a filesystem object is cheap to make)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    try:
                        self._store = open_store(self.store_protocol, **self._store_options)
                    except E.StreamBackendError as exc:
                        raise as_fs_error(exc) from exc
        return self._store

    def close(self) -> None:
        """Close the store. fsspec caches filesystem instances, so this one stays usable:
        the next operation opens the store again."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- paths ---------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path) if not isinstance(path, str) else path
        protos = (cls.protocol,) if isinstance(cls.protocol, str) else cls.protocol
        for protocol in protos:
            if path.startswith(protocol + "://"):
                path = path[len(protocol) + 3:]
                break
            if path.startswith(protocol + "::"):
                path = path[len(protocol) + 2:]
                break
        return path.strip("/")

    def _parts(self, path) -> list[str]:
        """``[scope, stream, segment]`` prefix named by ``path``; validates the names."""
        path = self._strip_protocol(path)
        parts = [p for p in path.split("/") if p] if path else []
        if len(parts) > 3:
            raise fs_error(
                E.NotFoundError,
                f"no such path {self.unstrip_protocol(path)!r}: "
                "the layout is SCOPE/STREAM[/SEGMENT]",
            )
        try:
            if parts:
                check_name("scope", parts[0])
            if len(parts) > 1:
                check_name("stream", parts[1])
        except E.UsageError as exc:
            raise as_fs_error(exc) from exc
        if len(parts) == 3 and not parts[2].isdigit():
            raise fs_error(
                E.NotFoundError,
                f"no such segment {self.unstrip_protocol(path)!r}: "
                "segment files are named by number",
            )
        return parts

    def _url(self, *parts) -> str:
        return self.unstrip_protocol("/".join(str(p) for p in parts))

    # -- info ----------------------------------------------------------------

    @staticmethod
    def _mtime(info: StreamInfo, seg: SegmentInfo | None = None) -> float:
        t = seg.last_append if seg is not None else info.last_append
        if t is None:
            t = info.created
        return float(t) if t is not None else 0.0

    def _segment_entry(self, name: str, info: StreamInfo, seg: SegmentInfo) -> dict:
        return {
            "name": name,
            "size": seg.length,
            "type": "file",
            "mtime": self._mtime(info, seg),
            "created": info.created,
            "segment": seg.segment,
            "segments": info.segment_count,
            "events": seg.events,
            "head_seq": seg.head_seq,
            "tail_seq": seg.tail_seq,
            "sealed": info.sealed,
            "max_event_size": info.max_event_size,
        }

    def _stream_entry(self, scope: str, info: StreamInfo) -> dict:
        name = f"{scope}/{info.stream}"
        if info.segment_count == 1:
            return self._segment_entry(name, info, info.segments[0])
        return {
            "name": name,
            "size": 0,
            "type": "directory",
            "mtime": self._mtime(info),
            "created": info.created,
            "segments": info.segment_count,
            "events": info.events,
            "length": info.length,
            "sealed": info.sealed,
            "max_event_size": info.max_event_size,
            "segment_info": [
                {
                    "segment": s.segment,
                    "events": s.events,
                    "length": s.length,
                    "head_seq": s.head_seq,
                    "tail_seq": s.tail_seq,
                }
                for s in info.segments
            ],
        }

    def _stream_infos(self, scope: str) -> list[StreamInfo]:
        out = []
        for name in self.store.list_streams(scope):
            try:
                out.append(self.store.stream_info(scope, name))
            except E.NotFoundError:  # deleted while we listed
                continue
        return out

    def _scope_entry(self, scope: str, infos: list[StreamInfo]) -> dict:
        times = [self._mtime(i) for i in infos]
        return {
            "name": scope,
            "size": 0,
            "type": "directory",
            "mtime": max(times) if times else 0.0,
            "streams": len(infos),
        }

    def _segment_of(self, info: StreamInfo, number: str | int) -> SegmentInfo:
        for seg in info.segments:
            if seg.segment == int(number):
                return seg
        raise fs_error(
            E.NotFoundError,
            f"{self._url(info.scope, info.stream)} has no segment "
            f"{number} (segments: {', '.join(str(s.segment) for s in info.segments)})",
        )

    @translating
    def info(self, path, **kwargs):
        parts = self._parts(path)
        if not parts:
            return {"name": "", "size": 0, "type": "directory", "mtime": 0.0}
        if len(parts) == 1:
            return self._scope_entry(parts[0], self._stream_infos(parts[0]))
        info = self.store.stream_info(parts[0], parts[1])
        if len(parts) == 2:
            return self._stream_entry(parts[0], info)
        seg = self._segment_of(info, parts[2])
        return self._segment_entry("/".join(parts), info, seg)

    @translating
    def ls(self, path, detail=True, **kwargs):
        parts = self._parts(path)
        if not parts:
            entries = [
                self._scope_entry(s, self._stream_infos(s)) for s in self.store.list_scopes()
            ]
        elif len(parts) == 1:
            entries = [self._stream_entry(parts[0], i) for i in self._stream_infos(parts[0])]
        else:
            info = self.store.stream_info(parts[0], parts[1])
            if len(parts) == 2 and info.segment_count > 1:
                entries = [
                    self._segment_entry(f"{parts[0]}/{parts[1]}/{s.segment}", info, s)
                    for s in info.segments
                ]
            else:
                entries = [self.info("/".join(parts))]
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    def modified(self, path):
        return _dt.datetime.fromtimestamp(self.info(path)["mtime"], tz=_dt.timezone.utc)

    def created(self, path):
        c = self.info(path).get("created")
        if c is None:
            raise fs_error(E.UnsupportedError, f"{self._url(path)}: creation time unknown")
        return _dt.datetime.fromtimestamp(c, tz=_dt.timezone.utc)

    # -- targets -------------------------------------------------------------

    def _file_target(self, path) -> tuple[str, str, StreamInfo, SegmentInfo]:
        """The (scope, stream, info, segment) a file path reads; errors for directories."""
        parts = self._parts(path)
        if len(parts) < 2:
            raise fs_error(
                E.UsageError,
                f"{self._url(*parts)} is a directory (a scope), not a stream",
                IsADirectoryError,
            )
        info = self.store.stream_info(parts[0], parts[1])
        if len(parts) == 3:
            return parts[0], parts[1], info, self._segment_of(info, parts[2])
        if info.segment_count != 1:
            raise fs_error(
                E.UsageError,
                f"{self._url(*parts)} has {info.segment_count} segments, so it "
                f"is a directory: use {self._url(*parts)}/N for segment N",
                IsADirectoryError,
            )
        return parts[0], parts[1], info, info.segments[0]

    # -- reading -------------------------------------------------------------

    @translating
    def cat_file(self, path, start=None, end=None, **kwargs):
        scope, stream, _, seg = self._file_target(path)
        size = seg.length
        start = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
        end = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if end <= start:
            return b""
        return self.store.read_range(scope, stream, seg.segment, start, end - start)

    @translating
    def _open(
        self,
        path,
        mode="rb",
        block_size=None,
        autocommit=True,
        cache_options=None,
        event_size=None,
        routing_key=None,
        **kwargs,
    ):
        if mode == "rb":
            scope, stream, info, seg = self._file_target(path)
            name = self._strip_protocol(path)
            return StreamFile(
                self,
                name,
                "rb",
                block_size=block_size,
                cache_options=cache_options,
                scope=scope,
                stream=stream,
                segment=seg.segment,
                details=self._segment_entry(name, info, seg),
                **kwargs,
            )
        if mode not in ("wb", "ab", "xb"):
            raise unsupported(
                f"mode {mode!r} for {self._url(path)} (writing in the middle, "
                "or reading and writing at once)"
            )
        scope, stream, segment, max_size = self._prepare_write(path, mode)
        return StreamFile(
            self,
            self._strip_protocol(path),
            mode,
            block_size=block_size,
            scope=scope,
            stream=stream,
            segment=segment,
            max_event_size=max_size,
            event_size=event_size or self.event_size,
            routing_key=routing_key,
            **kwargs,
        )

    def _prepare_write(self, path, mode) -> tuple[str, str, int, int]:
        """Create the stream as the mode allows; return where appends go:
        ``(scope, stream, segment, the stream's max event size)``."""
        parts = self._parts(path)
        url = self._url(*parts)
        if len(parts) < 2:
            raise fs_error(
                E.UsageError,
                f"{url} is a scope (a directory): write to SCOPE/STREAM",
                IsADirectoryError,
            )
        scope, stream = parts[0], parts[1]
        if len(parts) == 2:
            if mode == "xb":
                self.store.create_stream(scope, stream, segments=1, exist_ok=False)
            else:
                self.store.create_stream(scope, stream, segments=1, exist_ok=True)
        info = self.store.stream_info(scope, stream)
        if len(parts) == 3:
            if int(parts[2]) not in info.numbers:
                raise fs_error(E.UnsupportedError, f"cannot create segment file {url}: a stream's "
                               "segments come from its shape (mkdir SCOPE/STREAM with segments=N)",
                               NotImplementedError, OSError)
            seg = self._segment_of(info, parts[2])
            if mode == "xb" and seg.events:
                raise fs_error(E.AlreadyExistsError, f"{url} exists")
        elif info.segment_count != 1:
            raise fs_error(
                E.UsageError,
                f"{url} has {info.segment_count} segments: write to "
                f"{url}/N to append to segment N",
                IsADirectoryError,
            )
        else:
            seg = info.segments[0]
        if info.sealed:
            raise fs_error(E.SealedError, f"{url} is sealed: no more appends")
        if mode == "wb" and seg.events:
            raise fs_error(
                E.UnsupportedError,
                f"refusing to overwrite {url}: it already holds "
                f"{seg.events} events and streams are append-only (open with mode 'ab' "
                "to append, or rm it first)",
                FileExistsError,
            )
        return scope, stream, seg.segment, info.max_event_size

    # -- writing -------------------------------------------------------------

    def touch(self, path, truncate=True, **kwargs):
        """Create an empty stream if absent. An existing stream is left as it is, unless
        ``truncate`` would have to drop events (append-only: that raises)."""
        if self.exists(path):
            if truncate and self.info(path).get("events"):
                raise unsupported(f"truncating {self._url(path)}")
            return
        with self.open(path, "wb", **kwargs):
            pass

    @translating
    def cp_file(self, path1, path2, **kwargs):
        """Copy event by event: boundaries and routing keys survive (not just bytes).

        Directories come first in a recursive copy: a scope becomes a scope, a
        multi-segment stream a stream with as many segments, filled segment by segment.
        """
        src, dst = self._parts(path1), self._parts(path2)
        if src[:2] == dst[:2] and len(src) >= 2:
            raise unsupported(f"copying {self._url(*src)} onto its own stream")
        if len(src) == 1:
            if len(dst) != 1:
                raise fs_error(E.UsageError, f"a scope copies to a scope, not to {self._url(*dst)}")
            self.store.create_scope(dst[0], exist_ok=True)
            return
        if len(src) == 2:
            info = self.store.stream_info(src[0], src[1])
            if info.segment_count > 1:
                return self._copy_stream_shape(info, dst)
        scope, stream, _, seg = self._file_target(path1)
        dscope, dstream, dseg, _ = self._prepare_write(path2, "wb")
        with self.store.writer(dscope, dstream) as w:
            for ev in self.store.read_events(
                scope, stream, seg.segment, from_seq=seg.head_seq, to_seq=seg.tail_seq
            ):
                w.append(ev.payload, routing_key=ev.routing_key, segment=dseg)

    def _copy_stream_shape(self, info: StreamInfo, dst: list[str]) -> None:
        """Make ``dst`` a stream with ``info``'s segment count (the segment files follow)."""
        if len(dst) != 2:
            raise fs_error(E.UsageError, f"a multi-segment stream copies to SCOPE/STREAM, "
                          f"not to {self._url(*dst)}")
        self.store.create_stream(dst[0], dst[1], segments=info.segment_count, exist_ok=True)
        have = self.store.stream_info(dst[0], dst[1]).segment_count
        if have != info.segment_count:
            raise fs_error(E.AlreadyExistsError, f"{self._url(*dst)} exists with {have} segments, "
                          f"not {info.segment_count}")

    # -- directories ---------------------------------------------------------

    @translating
    def mkdir(self, path, create_parents=True, segments: int | None = None, **kwargs):
        """``SCOPE`` creates a scope; ``SCOPE/STREAM`` with ``segments=N`` creates a
        stream of N segments (a directory when N > 1)."""
        parts = self._parts(path)
        if not parts:
            raise fs_error(E.AlreadyExistsError, "the store root always exists")
        if len(parts) == 1:
            if segments is not None:
                raise fs_error(E.UsageError, "segments= applies to SCOPE/STREAM, not to a scope")
            self.store.create_scope(parts[0], exist_ok=False)
            return
        if len(parts) == 2 and segments is not None:
            if not create_parents and parts[0] not in self.store.list_scopes():
                raise fs_error(E.NotFoundError, f"no scope {self._url(parts[0])}")
            self.store.create_stream(parts[0], parts[1], segments=int(segments), exist_ok=False)
            return
        raise fs_error(
            E.UnsupportedError,
            f"cannot make directory {self._url(*parts)}: a directory below a scope is a "
            "multi-segment stream; create it with mkdir(path, segments=N)",
            NotImplementedError,
            OSError,
        )

    @translating
    def makedirs(self, path, exist_ok=False, segments: int | None = None):
        parts = self._parts(path)
        if not parts:
            if not exist_ok:
                raise fs_error(E.AlreadyExistsError, "the store root always exists")
            return
        if len(parts) == 1:
            self.store.create_scope(parts[0], exist_ok=exist_ok)
            return
        if self.exists(path):
            if self.isdir(path):
                if not exist_ok:
                    raise fs_error(E.AlreadyExistsError, f"{self._url(*parts)} exists")
                return
            raise fs_error(
                E.AlreadyExistsError,
                f"{self._url(*parts)} is a file (a single-segment "
                "stream or a segment), not a directory",
            )
        self.mkdir(path, segments=segments)

    @translating
    def rmdir(self, path):
        parts = self._parts(path)
        if len(parts) != 1:
            raise fs_error(
                E.UnsupportedError,
                f"rmdir {self._url(*parts)}: only scopes are plain "
                "directories; delete a stream with rm",
                NotImplementedError,
                OSError,
            )
        if self.store.list_streams(parts[0]):
            raise fs_error(E.NotEmptyError, f"scope {self._url(parts[0])} is not empty")
        self.store.delete_scope(parts[0])

    @translating
    def rm_file(self, path):
        parts = self._parts(path)
        if len(parts) == 2:
            self.store.delete_stream(parts[0], parts[1])
        elif len(parts) == 3:
            raise unsupported(f"deleting segment {self._url(*parts)} on its own (rm the stream)")
        else:
            raise fs_error(
                E.UsageError,
                f"{self._url(*parts)} is a directory: use rm(recursive=True)",
                IsADirectoryError,
            )

    _rm = rm_file

    @translating
    def rm(self, path, recursive=False, maxdepth=None):
        """Delete streams; scopes too when ``recursive`` (or when empty)."""
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        scopes, streams = [], []
        for p in paths:
            parts = self._parts(p)
            if not parts:
                raise fs_error(E.UsageError, "refusing to delete the whole store")
            (scopes if len(parts) == 1 else streams if len(parts) == 2 else []).append(parts)
        stream_set = {tuple(s) for s in streams}
        for p in paths:
            parts = self._parts(p)
            if len(parts) == 3 and tuple(parts[:2]) not in stream_set:
                raise unsupported(
                    f"deleting segment {self._url(*parts)} on its own (rm the stream)"
                )
        for scope, stream in streams:
            self.store.delete_stream(scope, stream)
        for (scope,) in scopes:
            if not recursive and self.store.list_streams(scope):
                raise fs_error(
                    E.NotEmptyError, f"scope {self._url(scope)} is not empty: " "use recursive=True"
                )
            self.store.delete_scope(scope)

    # -- what a stream cannot do ---------------------------------------------

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs):
        raise unsupported(f"moving {self._url(path1)} (copy it, then rm the source)")

    def rename(self, path1, path2, **kwargs):
        raise unsupported(f"renaming {self._url(path1)} (copy it, then rm the source)")

    def truncate(self, path, size=0, **kwargs):  # not in the fsspec base class; used by FUSE
        raise unsupported(f"truncating {self._url(path)}")

    # -- stream-only extras --------------------------------------------------

    @translating
    def seal(self, path) -> None:
        """No more appends to this stream."""
        parts = self._parts(path)
        if len(parts) != 2:
            raise fs_error(E.UsageError, f"seal needs SCOPE/STREAM, got {self._url(*parts)}")
        self.store.seal_stream(parts[0], parts[1])


def filesystem_over(store) -> StreamFileSystem:
    """The filesystem of an already open store, whose owner (a mount, a test) closes it."""
    fs = registry.kind(store.protocol).filesystem_class()(skip_instance_cache=True)
    fs._store = store
    return fs
