"""LocalStore: the StreamStore protocol over a directory tree (the package docstring)."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import threading
import time
from typing import Iterator

from ... import settings
from ...errors import (
    AlreadyExistsError,
    CorruptionError,
    FormatVersionError,
    NotEmptyError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
from ...urls import check_name
from ..base import DEFAULT_MAX_EVENT_SIZE, Event, SegmentInfo, StreamInfo
from . import offset_index, records
from .files import (
    FORMAT_VERSION,
    LOCK_FILE,
    STREAM_JSON,
    fsync_dir,
    os_errors,
    seg_name,
    stat_key,
    valid_name,
    write_json_atomic,
)
from .offset_index import LocalOffsetIndex, SparseIndex
from .reader import SegmentView, parse_events
from .writer import LocalWriter, acquire_writer_lock, release_writer_lock, writer_of

FOLLOW_POLL_MIN = 0.005
FOLLOW_POLL_MAX = 0.2


class LocalStore:
    """Scopes and streams in a directory tree (see the module docstring)."""

    protocol = "stream"
    dense_seqs = True
    scalable = False

    def __init__(self, root: str | None = None, max_event_size: int = DEFAULT_MAX_EVENT_SIZE):
        self.root = os.path.abspath(os.path.expanduser(root or settings.default_store_root()))
        if not isinstance(max_event_size, int) or not 0 < max_event_size <= records.MAX_PAYLOAD:
            raise UsageError(
                f"max event size must be 1..{records.MAX_PAYLOAD} bytes, not {max_event_size!r}"
            )
        self.max_event_size = max_event_size
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise PermissionDeniedError(
                f"cannot create store root {self.root}: {e.strerror or e}"
            ) from None
        if not os.path.isdir(self.root):
            raise PermissionDeniedError(f"store root {self.root} is not a directory")
        self._views: dict[tuple[str, str, int], SegmentView] = {}
        self._meta_cache: dict[str, tuple[object, dict]] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"LocalStore(root={self.root!r})"

    # -- paths and metadata

    def _scope_dir(self, scope: str) -> str:
        return os.path.join(self.root, check_name("scope", scope))

    def _stream_dir(self, scope: str, stream: str) -> str:
        return os.path.join(self._scope_dir(scope), check_name("stream", stream))

    def _meta(self, scope: str, stream: str) -> dict:
        path = os.path.join(self._stream_dir(scope, stream), STREAM_JSON)
        key = stat_key(path)
        if key is None:
            if not os.path.isdir(self._scope_dir(scope)):
                raise NotFoundError(f"scope {scope} not found in the local store at {self.root}")
            raise NotFoundError(f"stream {scope}/{stream} not found in the local store at {self.root}")
        with self._lock:
            hit = self._meta_cache.get(path)
            if hit is not None and hit[0] == key:
                return hit[1]
        try:
            with open(path) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise NotFoundError(f"stream {scope}/{stream} not found in the local store at {self.root}") from None
        except (OSError, ValueError) as e:
            raise CorruptionError(
                f"stream {scope}/{stream}: unreadable {STREAM_JSON}: {e}"
            ) from None
        if int(meta.get("format", 0)) > FORMAT_VERSION:
            raise FormatVersionError(
                f"stream {scope}/{stream} has store format {meta.get('format')}; "
                f"this version reads up to {FORMAT_VERSION}"
            )
        with self._lock:
            self._meta_cache[path] = (key, meta)
        return meta

    def _view(self, scope: str, stream: str, segment: int) -> SegmentView:
        meta = self._meta(scope, stream)
        nseg = int(meta["segments"])
        if not isinstance(segment, int) or not 0 <= segment < nseg:
            raise NotFoundError(f"stream {scope}/{stream} has no segment {segment} (0..{nseg - 1})")
        sdir = self._stream_dir(scope, stream)
        k = (scope, stream, segment)
        log_path = os.path.join(sdir, seg_name(segment) + ".log")
        try:
            st = os.stat(log_path)
        except FileNotFoundError:
            raise NotFoundError(f"stream {scope}/{stream} not found in the local store at {self.root}") from None
        with self._lock:
            v = self._views.get(k)
            if v is not None and (v.ident != (st.st_dev, st.st_ino) or st.st_size < v.end_pos):
                self._views.pop(k).close()
                v = None
            if v is None:
                v = SegmentView(
                    sdir,
                    segment,
                    f"stream {scope}/{stream} segment {segment}",
                    int(meta["max_event_size"]),
                )
                self._views[k] = v
            return v

    def _drop_views(self, scope: str, stream: str | None = None) -> None:
        with self._lock:
            for k in [
                k for k in self._views if k[0] == scope and (stream is None or k[1] == stream)
            ]:
                self._views.pop(k).close()

    # -- scopes

    def create_scope(self, scope: str, exist_ok: bool = False) -> None:
        path = self._scope_dir(scope)
        if exist_ok and os.path.isdir(path):
            return
        with os_errors(f"create scope {scope}"):
            try:
                os.mkdir(path)
            except FileExistsError:
                if exist_ok and os.path.isdir(path):
                    return
                raise AlreadyExistsError(f"scope {scope} already exists") from None
            fsync_dir(self.root)

    def list_scopes(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if valid_name(n) and os.path.isdir(os.path.join(self.root, n)))

    def delete_scope(self, scope: str) -> None:
        path = self._scope_dir(scope)
        if not os.path.isdir(path):
            raise NotFoundError(f"scope {scope} not found in the local store at {self.root}")
        streams = self.list_streams(scope)
        if streams:
            raise NotEmptyError(
                f"scope {scope} is not empty: {len(streams)} stream(s), e.g. {streams[0]} "
                "(rm --recursive deletes them too)"
            )
        with os_errors(f"delete scope {scope}"):
            for n in os.listdir(path):  # leftovers of interrupted creates/deletes
                if n.startswith("."):
                    shutil.rmtree(os.path.join(path, n), ignore_errors=True)
            try:
                os.rmdir(path)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise NotEmptyError(f"scope {scope} is not empty") from None
                raise
            fsync_dir(self.root)

    # -- streams

    def create_stream(
        self, scope: str, stream: str, segments: int = 1, exist_ok: bool = False,
        max_event_size: int | None = None,
    ) -> None:
        max_event_size = self.max_event_size if max_event_size is None else max_event_size
        if not isinstance(max_event_size, int) or not 0 < max_event_size <= records.MAX_PAYLOAD:
            raise UsageError(f"max event size must be 1..{records.MAX_PAYLOAD} bytes, not {max_event_size!r}")
        if (
            not isinstance(segments, int)
            or isinstance(segments, bool)
            or not 1 <= segments <= 100000
        ):
            raise UsageError(f"segments must be a whole number from 1 to 100000, not {segments!r}")
        sdir = self._stream_dir(scope, stream)
        self.create_scope(scope, exist_ok=True)
        if os.path.exists(os.path.join(sdir, STREAM_JSON)):
            if exist_ok:
                return
            raise AlreadyExistsError(f"stream {scope}/{stream} already exists")
        scope_dir = os.path.dirname(sdir)
        tmp = os.path.join(scope_dir, f".create-{stream}-{os.getpid()}-{secrets.token_hex(4)}")
        with os_errors(f"create stream {scope}/{stream}"):
            os.mkdir(tmp)
            try:
                for i in range(segments):
                    with open(os.path.join(tmp, seg_name(i) + ".log"), "wb") as f:
                        os.fsync(f.fileno())
                    offset_index.write_new(
                        os.path.join(tmp, seg_name(i) + ".idx"), SparseIndex(), 0
                    )
                open(os.path.join(tmp, LOCK_FILE), "wb").close()
                meta = {
                    "format": FORMAT_VERSION,
                    "segments": segments,
                    "sealed": False,
                    "max_event_size": max_event_size,
                    "created": time.time(),
                    "id": secrets.token_hex(16),
                }
                write_json_atomic(os.path.join(tmp, STREAM_JSON), meta)
                try:
                    os.rename(tmp, sdir)
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        if exist_ok:
                            return
                        raise AlreadyExistsError(
                            f"stream {scope}/{stream} already exists"
                        ) from None
                    raise
                fsync_dir(scope_dir)
            finally:
                if os.path.exists(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)

    def list_streams(self, scope: str) -> list[str]:
        path = self._scope_dir(scope)
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"scope {scope} not found in the local store at {self.root}") from None
        return sorted(
            n for n in names if valid_name(n) and os.path.exists(os.path.join(path, n, STREAM_JSON))
        )

    def delete_stream(self, scope: str, stream: str) -> None:
        self._meta(scope, stream)  # NotFoundError
        sdir = self._stream_dir(scope, stream)
        where = f"stream {scope}/{stream}"
        fd = acquire_writer_lock(sdir, where, None)
        try:
            gone = os.path.join(
                os.path.dirname(sdir), f".deleted-{stream}-{os.getpid()}-{secrets.token_hex(4)}"
            )
            with os_errors(f"delete {where}"):
                os.rename(sdir, gone)
                fsync_dir(os.path.dirname(sdir))
        finally:
            release_writer_lock(sdir, fd)
        self._drop_views(scope, stream)
        shutil.rmtree(gone, ignore_errors=True)

    def seal_stream(self, scope: str, stream: str) -> None:
        meta = dict(self._meta(scope, stream))
        sdir = self._stream_dir(scope, stream)
        if not meta.get("sealed"):
            meta["sealed"] = True
            with os_errors(f"seal stream {scope}/{stream}"):
                write_json_atomic(os.path.join(sdir, STREAM_JSON), meta)
        w = writer_of(sdir)
        if w is not None:
            w._mark_sealed()

    def stream_info(self, scope: str, stream: str) -> StreamInfo:
        meta = self._meta(scope, stream)
        segs = [self.segment_info(scope, stream, i) for i in range(int(meta["segments"]))]
        return StreamInfo(
            scope=scope,
            stream=stream,
            segments=segs,
            sealed=bool(meta.get("sealed")),
            max_event_size=int(meta["max_event_size"]),
            created=meta.get("created"),
            # streams made before ids were recorded: their creation time tells them apart
            identity=meta.get("id") or (f"created:{meta['created']!r}" if meta.get("created") else None),
        )

    def check_whole(self, scope: str, stream: str) -> None:
        self._meta(scope, stream)  # NotFoundError; a local stream's segments are fixed

    def segment_info(self, scope: str, stream: str, segment: int) -> SegmentInfo:
        return self._view(scope, stream, segment).info()

    # -- data

    def writer(self, scope: str, stream: str) -> LocalWriter:
        return LocalWriter(self, scope, stream)

    def offset_index(self, scope: str, stream: str, segment: int) -> LocalOffsetIndex:
        v = self._view(scope, stream, segment)
        with v.lock:
            v.extend()
            return LocalOffsetIndex(v, v.end_foff, v.end_seq, v.end_pos, v.where)

    def read_range(self, scope: str, stream: str, segment: int, offset: int, length: int) -> bytes:
        return self._view(scope, stream, segment).read_range(offset, length)

    def read_events(
        self,
        scope: str,
        stream: str,
        segment: int,
        from_seq: int = 0,
        to_seq: int | None = None,
        follow: bool = False,
    ) -> Iterator[Event]:
        # validate now, not at the first next()
        v = self._view(scope, stream, segment)
        if from_seq < 0 or (to_seq is not None and to_seq < from_seq):
            raise UsageError(f"bad seq range {from_seq}..{to_seq}")
        return self._events(scope, stream, v, from_seq, to_seq, follow)

    def _sealed(self, scope: str, stream: str) -> bool:
        try:
            return bool(self._meta(scope, stream).get("sealed"))
        except NotFoundError:
            return True

    def _events(self, scope, stream, v: SegmentView, from_seq, to_seq, follow) -> Iterator[Event]:
        v.extend()
        seq, foff, pos = v.entry_for_seq(from_seq)
        fd = os.dup(v.fd)
        try:
            poll = FOLLOW_POLL_MIN
            while True:
                limit = v.end_seq if to_seq is None else min(to_seq, v.end_seq)
                if seq < limit:
                    for batch, pos, seq, foff in parse_events(
                        v, fd, pos, seq, foff, from_seq, limit
                    ):
                        yield from batch
                    poll = FOLLOW_POLL_MIN
                if to_seq is not None and seq >= to_seq:
                    return
                if v.damage is not None and seq >= v.end_seq:
                    raise v.damage
                if not follow:
                    return
                sealed = self._sealed(scope, stream)
                before = v.end_pos
                v.extend()
                if v.end_pos == before:
                    if sealed:
                        return
                    time.sleep(poll)
                    poll = min(poll * 2, FOLLOW_POLL_MAX)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            for v in self._views.values():
                v.close()
            self._views.clear()
