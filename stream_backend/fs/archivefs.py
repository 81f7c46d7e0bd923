"""An archive as a read-only fsspec filesystem (protocol ``sbarchive``).

Browse and read what ``stream-backend export`` wrote, without importing it::

    fsspec.open("sbarchive://0::s3://backups/logs", s3={"endpoint_url": ...})
    ArchiveFileSystem(fo="s3://backups/logs", target_options={...})
    ArchiveFileSystem(fo="backups/logs", target_protocol="s3", target_options={...})

Layout (segment files are the events' payloads concatenated, like ``stream://``)::

    0, 1, ...                   one file per segment, as of the latest complete run
    runs/                       one directory per complete run
    runs/00000002/0, ...        each segment as of that run (runs 1..2 together)

Reads are ranged: for uncompressed objects only the byte ranges of the objects that hold
the requested payload bytes are fetched (the manifest's sparse record index says where
to start), never whole objects. zstd objects are streamed from their start, with a cursor
kept so sequential reads do not decompress twice. Every record's CRC is checked; damage
raises CorruptionError (an OSError too, errno EIO). The chain of runs is re-read after
``cache_ttl`` seconds (or ``invalidate_cache()``), so a long-lived mount sees new runs.
"""

from __future__ import annotations

import bisect
import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from .. import errors as E
from ..archive import layout
from ..archive.format import ObjectInfo, iter_records
from ..archive.manifest import ArchiveReader, RunManifest, segment_objects, walk_chain
from .errors import as_fs_error
from .errors import fs_error
from .errors import translating




@dataclass
class _SegmentView:
    """One segment's file view as of one run: its objects and where their payloads start."""

    segment: int
    run: int
    objects: list[ObjectInfo]
    starts: list[int]  # file-view offset of each object's first payload byte
    size: int
    events: int
    mtime: float

    @classmethod
    def build(cls, chain: list[RunManifest], segment: int) -> "_SegmentView":
        objs = [o for o in segment_objects(chain, segment) if o.records]
        starts, pos = [], 0
        for o in objs:
            starts.append(pos)
            pos += o.payload_bytes
        events = sum(p.events for m in chain for p in m.segments if p.segment == segment)
        times = [p.last_time for m in chain for p in m.segments if p.segment == segment and p.last_time is not None]
        return cls(segment, chain[-1].run, objs, starts, pos, events, max(times) / 1e9 if times else 0.0)


class _ZstdCursor:
    """A decompressing reader left where the last read stopped (sequential reads)."""

    def __init__(self, f, key: str):
        self.file = f
        self.records = iter_records(f, key, compressed=True)
        self.pos = 0  # payload offset of ``pending`` (or of the next record)
        self.pending = None
        self.lock = threading.Lock()

    def read(self, a: int, b: int, key: str) -> bytes:
        out = []
        while self.pos < b:
            rec = self.pending
            if rec is None:
                rec = next(self.records, None)
                if rec is None:
                    raise E.CorruptionError(f"corrupt archive object {key}: payload ends at {self.pos}, expected {b}")
            end = self.pos + len(rec.chunk)
            if end > a:
                out.append(rec.chunk[max(a - self.pos, 0): b - self.pos])
            if end > b:
                self.pending = rec  # the next read continues inside this record
                break
            self.pending = None
            self.pos = end
        return b"".join(out)

    def close(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - closing a read handle
            pass


class ArchiveFileSystem(AbstractFileSystem):
    """Read-only view of an archive; see the module docstring."""

    protocol = "sbarchive"
    root_marker = ""
    cachable = True

    def __init__(self, fo: str = "", target_protocol: str | None = None, target_options: dict | None = None,
                 fs: AbstractFileSystem | None = None, cache_ttl: float = 30.0, **kwargs):
        super().__init__(**kwargs)
        if fs is None:
            from ..urls import check_archive_url, redact

            try:
                check_archive_url(fo or ".", redact(fo or "."))
            except E.UsageError as exc:
                raise ValueError(str(exc)) from None
            if target_protocol:
                fs = fsspec.filesystem(target_protocol, **(target_options or {}))
                prefix = fs._strip_protocol(fo)
            else:
                fs, prefix = fsspec.core.url_to_fs(fo or ".", **(target_options or {}))
        else:
            prefix = fs._strip_protocol(fo)
        self.target = fs
        self.prefix = prefix.rstrip("/")
        self.reader = ArchiveReader(fs, self.prefix)
        self.cache_ttl = cache_ttl
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._chain: list[RunManifest] = []
        self._views: dict[tuple[int, int], _SegmentView] = {}
        self._cursors: OrderedDict[str, _ZstdCursor] = OrderedDict()
        try:
            self.identity = self.reader.identity()
        except E.StreamBackendError as exc:
            raise as_fs_error(exc) from None

    # ------------------------------------------------------------------ chain

    def invalidate_cache(self, path=None):
        with self._lock:
            self._loaded_at = -1e18
        super().invalidate_cache(path)

    def _load(self) -> list[RunManifest]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self.cache_ttl:
                latest = self.reader.latest_run()
                if latest is None:
                    self._chain = []
                elif not self._chain or self._chain[-1].run != latest:
                    self._chain = self._read_chain(latest)
                    self._views.clear()
                self._loaded_at = time.monotonic()
            return self._chain

    def _read_chain(self, latest: int) -> list[RunManifest]:
        """Walk back from ``latest``; earlier runs never change, so the walk stops where it
        links (by checksum) into the chain already known."""
        known = {m.run: i for i, m in enumerate(self._chain)}
        newer: list[RunManifest] = []
        for m in walk_chain(self.reader.read, latest):
            newer.append(m)
            prev = m.previous
            if prev and prev["run"] in known and self._chain[known[prev["run"]]].checksum == prev["checksum"]:
                return self._chain[: known[prev["run"]] + 1] + list(reversed(newer))
        return list(reversed(newer))

    def _chain_upto(self, run: int) -> list[RunManifest]:
        chain = self._load()
        upto = [m for m in chain if m.run <= run]
        if not upto or upto[-1].run != run:
            raise fs_error(E.NotFoundError, f"archive run {run} not found", FileNotFoundError)
        return upto

    def _segments(self, chain: list[RunManifest]) -> list[int]:
        segs = {p.segment for m in chain for p in m.segments}
        n = (chain[-1].source or {}).get("segments") if chain else None
        if isinstance(n, int):
            segs.update(range(n))
        return sorted(segs)

    def _view(self, run: int | None, segment: int) -> _SegmentView:
        chain = self._load() if run is None else self._chain_upto(run)
        if not chain or segment not in self._segments(chain):
            raise fs_error(E.NotFoundError, f"no segment {segment} in archive {self._display()}", FileNotFoundError)
        key = (chain[-1].run, segment)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = _SegmentView.build(chain, segment)
        return view

    def _display(self) -> str:
        return f"{self.target.protocol if isinstance(self.target.protocol, str) else self.target.protocol[0]}://{self.prefix}"

    # ------------------------------------------------------------------ paths

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("sbarchive://"):
            path = path[len("sbarchive://"):]
        return path.split("::", 1)[0].strip("/")

    def _resolve(self, path) -> tuple[str, int | None, int | None]:
        """("root"|"runs"|"run"|"segment", run, segment) of a path; FileNotFoundError if none."""
        parts = [p for p in self._strip_protocol(path).split("/") if p]
        missing = fs_error(E.NotFoundError, f"no such path in archive {self._display()}: {path!r}", FileNotFoundError)
        if not parts:
            return "root", None, None
        if parts[0] == layout.RUNS_DIR:
            if len(parts) == 1:
                return "runs", None, None
            run = layout.parse_run_dir(parts[1])
            if run is None or len(parts[1]) != 8 or len(parts) > 3:
                raise missing
            if len(parts) == 2:
                return "run", run, None
            if not parts[2].isdigit():
                raise missing
            return "segment", run, int(parts[2])
        if len(parts) == 1 and parts[0].isdigit():
            return "segment", None, int(parts[0])
        raise missing

    def _file_entry(self, name: str, view: _SegmentView) -> dict:
        return {"name": name, "type": "file", "size": view.size, "mtime": view.mtime, "segment": view.segment,
                "run": view.run, "events": view.events, "objects": len(view.objects)}

    def _dir_entry(self, name: str, chain: list[RunManifest]) -> dict:
        times = [p.last_time for m in chain for p in m.segments if p.last_time is not None]
        return {"name": name, "type": "directory", "size": 0, "mtime": max(times) / 1e9 if times else 0.0,
                "runs": len(chain), "events": sum(m.events for m in chain), "bytes": sum(m.bytes for m in chain)}

    # ------------------------------------------------------------------ fsspec API

    @translating
    def info(self, path, **kwargs):
        kind, run, seg = self._resolve(path)
        name = self._strip_protocol(path)
        if kind in ("root", "runs"):
            return self._dir_entry(name, self._load())
        if kind == "run":
            return self._dir_entry(name, self._chain_upto(run))
        view = self._view(run, seg)
        return self._file_entry(name, view)

    @translating
    def ls(self, path, detail=True, refresh=False, **kwargs):
        if refresh:
            self.invalidate_cache()
        kind, run, _ = self._resolve(path)
        base = self._strip_protocol(path)
        if kind == "segment":
            entries = [self.info(path)]
        elif kind == "root":
            chain = self._load()
            entries = [self._file_entry(str(s), self._view(None, s)) for s in self._segments(chain)]
            entries.append(self._dir_entry(layout.RUNS_DIR, chain))
        elif kind == "runs":
            chain = self._load()
            entries = [self._dir_entry(f"{layout.RUNS_DIR}/{m.run:08d}", chain[: i + 1]) for i, m in enumerate(chain)]
        else:
            chain = self._chain_upto(run)
            entries = [self._file_entry(f"{base}/{s}", self._view(run, s)) for s in self._segments(chain)]
        return entries if detail else [e["name"] for e in entries]

    def modified(self, path):
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    @translating
    def cat_file(self, path, start=None, end=None, **kwargs):
        kind, run, seg = self._resolve(path)
        if kind != "segment":
            raise fs_error(E.UsageError, f"{path!r} is a directory in archive {self._display()}", IsADirectoryError)
        view = self._view(run, seg)
        start, end = _clamp(start, end, view.size)
        return self.read_range(view, start, end)

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if mode != "rb":
            raise fs_error(E.UnsupportedError, f"archive {self._display()} is read-only", PermissionError)
        kind, run, seg = self._resolve(path)
        if kind != "segment":
            raise fs_error(E.UsageError, f"{path!r} is a directory in archive {self._display()}", IsADirectoryError)
        view = self._view(run, seg)
        return ArchiveFile(self, path, view, block_size=block_size or 4 * 1024 * 1024, cache_options=cache_options)

    def _readonly(self, *args, **kwargs):
        raise fs_error(E.UnsupportedError, f"archive {self._display()} is read-only", PermissionError)

    rm_file = rm = mkdir = makedirs = rmdir = touch = mv = cp_file = pipe_file = put_file = _readonly

    # ------------------------------------------------------------------ reading

    def read_range(self, view: _SegmentView, start: int, end: int) -> bytes:
        """File-view bytes ``[start, end)`` of a segment view."""
        if start >= end:
            return b""
        out = []
        i = max(bisect.bisect_right(view.starts, start) - 1, 0)
        while i < len(view.objects) and view.starts[i] < end:
            o, ostart = view.objects[i], view.starts[i]
            if o.payload_bytes and ostart + o.payload_bytes > start:
                a, b = max(start, ostart) - ostart, min(end, ostart + o.payload_bytes) - ostart
                out.append(self._object_payload(o, a, b))
            i += 1
        return b"".join(out)

    def _object_payload(self, o: ObjectInfo, a: int, b: int) -> bytes:
        """Payload bytes ``[a, b)`` of one object (offsets inside the object's payload)."""
        path = self.reader.path(o.key)
        if o.compressed:
            return self._zstd_payload(o, path, a, b)
        index = o.index or [[0, 0]]
        pays = [p for _, p in index]
        j = max(bisect.bisect_right(pays, a) - 1, 0)
        raw0, pay0 = index[j]
        raw1 = o.raw_size
        for r, p in index[j + 1:]:
            if p >= b:
                raw1 = r
                break
        try:
            data = self.target.cat_file(path, start=raw0, end=raw1)
        except FileNotFoundError:
            raise E.CorruptionError(f"archive object {o.key} is missing (listed in the manifest)") from None
        if len(data) != raw1 - raw0:
            raise E.CorruptionError(f"corrupt archive object {o.key}: shorter than its manifest says (truncated)")
        out, pos = [], pay0
        for rec in iter_records(io.BytesIO(data), o.key, compressed=False, start_position=raw0):
            end = pos + len(rec.chunk)
            if end > a:
                out.append(rec.chunk[max(a - pos, 0): b - pos])
            pos = end
            if pos >= b:
                break
        if pos < b:
            raise E.CorruptionError(f"corrupt archive object {o.key}: payload ends at {pos}, manifest says {b}")
        return b"".join(out)

    def _zstd_payload(self, o: ObjectInfo, path: str, a: int, b: int) -> bytes:
        with self._lock:
            cur = self._cursors.pop(o.key, None)
        if cur is None or cur.pos > a:
            if cur is not None:
                cur.close()
            try:
                f = self.target.open(path, "rb", block_size=4 * 1024 * 1024)
            except FileNotFoundError:
                raise E.CorruptionError(f"archive object {o.key} is missing (listed in the manifest)") from None
            cur = _ZstdCursor(f, o.key)
        try:
            with cur.lock:
                data = cur.read(a, b, o.key)
        except BaseException:
            cur.close()
            raise
        with self._lock:
            self._cursors[o.key] = cur
            while len(self._cursors) > 4:
                _, old = self._cursors.popitem(last=False)
                old.close()
        return data


def _clamp(start, end, size) -> tuple[int, int]:
    start = 0 if start is None else (max(size + start, 0) if start < 0 else min(start, size))
    end = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
    return start, max(start, end)


class ArchiveFile(AbstractBufferedFile):
    """A segment file of an archive, read through ranged fetches."""

    def __init__(self, fs: ArchiveFileSystem, path: str, view: _SegmentView, **kwargs):
        self.view = view
        super().__init__(fs, path, mode="rb", size=view.size, **kwargs)

    @translating
    def _fetch_range(self, start, end):
        return self.fs.read_range(self.view, start, min(end, self.view.size))
