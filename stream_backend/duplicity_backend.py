"""duplicity backend for stream targets (``stream://SCOPE/STREAM``, ``pravega://SCOPE/STREAM``)
and the ``stream-backend duplicity`` wrapper entry point.

duplicity only imports backends from its own ``backends/`` folder, so this module
registers the ``stream`` and ``pravega`` schemes itself (``duplicity.backend.register_backend``)
when imported, and the wrapper imports it before handing over to duplicity's main.
duplicity's ``--concurrency N`` workers are *spawned* processes that re-import the main
module: the wrapper sets ``STREAM_BACKEND_DUPLICITY=1`` so that the CLI module imported
there (``stream_backend.cli.duplicity``) registers the schemes again, and running this
module directly (``python -m stream_backend.duplicity_backend``) registers at import.
The schemes are not added to ``uses_netloc``: like ``file://``, ``stream://SCOPE/STREAM``
parses as the path ``//SCOPE/STREAM`` (a scope is not a host).

Layout of a target ``SCOPE/STREAM`` (a scope alone means stream ``duplicity``):

``SCOPE/STREAM``         the data: every duplicity file's bytes, appended as events of
                         at most the store's max event size, one file after the other
``SCOPE/STREAM.index``   the index: one JSON event per change, replayed on open,
                         last writer wins per name:
                         ``{"v":1,"op":"put","name":..,"offset":..,"size":..,
                         "first_seq":..,"end_seq":..,"sha256":..}`` or
                         ``{"v":1,"op":"delete","names":[..]}``

A file becomes visible only when its index entry is committed, after its bytes are
durable, so a crash in the middle of ``_put`` leaves unreferenced bytes and no half
file. ``_get`` is a ranged read of ``[offset, offset+size)`` (offset index), checked
against the sha256 in the entry. Deleting drops names from the index; the data stream
is append-only, so space is reclaimed only by rewriting the target (a new stream).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass

from . import settings
from .errors import (
    CorruptionError,
    NotFoundError,
    PermissionDeniedError,
    StreamBackendError,
    UnavailableError,
    WriterBusyError,
)
from .stores import open_store
from .urls import parse_stream_url

INDEX_SUFFIX = ".index"
DEFAULT_STREAM = "duplicity"
INDEX_VERSION = 1
READ_CHUNK = 4 * 1024 * 1024
#: env var that makes the CLI register our schemes in duplicity's spawned workers


@dataclass(frozen=True)
class IndexEntry:
    name: str
    offset: int
    size: int
    first_seq: int
    end_seq: int
    sha256: str


class StreamTarget:
    """Named files stored in one stream plus a replayed JSON index stream.

    Free of duplicity so it can be tested and reused; the duplicity Backend below is a
    thin adapter."""

    def __init__(self, store, scope: str, stream: str, writer_wait: float | None = None) -> None:
        self.store = store
        self.scope = scope
        self.stream = stream
        self.index_stream = stream + INDEX_SUFFIX
        if writer_wait is None:
            writer_wait = settings.seconds("writer_wait")
        self.writer_wait = writer_wait
        self._files: dict[str, IndexEntry] = {}
        self._next_seq = 0
        self._lock = threading.Lock()

    # -------------------------------------------------------------- index replay
    def _exists(self) -> bool:
        try:
            self.store.stream_info(self.scope, self.index_stream)
            return True
        except NotFoundError:
            return False

    def refresh(self) -> dict[str, IndexEntry]:
        """Replay index events not seen yet (other processes may have added some)."""
        with self._lock:
            try:
                tail = self.store.segment_info(self.scope, self.index_stream, 0).tail_seq
            except NotFoundError:
                return dict(self._files)
            if tail != self._next_seq:
                # tail_seq is a valid position in every store (local: event count,
                # Pravega: byte offset), unlike "last seq + 1"
                for ev in self.store.read_events(
                    self.scope, self.index_stream, 0, from_seq=self._next_seq, to_seq=tail
                ):
                    self._apply(ev.payload, ev.seq)
                self._next_seq = tail
            return dict(self._files)

    def _apply(self, payload: bytes, seq: int) -> None:
        try:
            rec = json.loads(payload)
        except ValueError:
            raise CorruptionError(
                f"index {self.scope}/{self.index_stream}: event {seq} is not JSON"
            ) from None
        if not isinstance(rec, dict) or rec.get("v", 0) > INDEX_VERSION:
            from .errors import FormatVersionError

            raise FormatVersionError(
                f"index {self.scope}/{self.index_stream}: event {seq} has an unknown format; "
                "upgrade stream-backend"
            )
        if rec.get("op") == "put":
            e = IndexEntry(
                rec["name"],
                rec["offset"],
                rec["size"],
                rec["first_seq"],
                rec["end_seq"],
                rec["sha256"],
            )
            self._files[e.name] = e
        elif rec.get("op") == "delete":
            for name in rec.get("names", []):
                self._files.pop(name, None)

    # -------------------------------------------------------------- writing
    def _writer(self, stream: str):
        """The stream's single writer, waiting while another process holds it."""
        deadline = time.monotonic() + self.writer_wait
        delay = 0.02
        while True:
            try:
                return self.store.writer(self.scope, stream)
            except WriterBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _max_event(self) -> int:
        return self.store.max_event_size

    @staticmethod
    def _encode(rec: dict) -> bytes:
        return json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()

    def _commit(self, *records: dict) -> None:
        """Append index records (each one event) and make them durable together."""
        payloads = [self._encode(r) for r in records]
        for p in payloads:
            if len(p) > self._max_event():
                from .errors import UsageError

                raise UsageError(
                    f"index record of {len(p)} bytes does not fit the store's max "
                    f"event size ({self._max_event()}); use a larger one"
                )
        w = self._writer(self.index_stream)
        try:
            for p in payloads:
                w.append(p, segment=0)
            w.flush()
        finally:
            w.close()

    def ensure(self) -> None:
        self.store.create_stream(self.scope, self.stream, segments=1, exist_ok=True)
        self.store.create_stream(self.scope, self.index_stream, segments=1, exist_ok=True)

    def put(self, name: str, fileobj) -> IndexEntry:
        """Append the file's bytes, then commit its index entry (only then it is visible)."""
        self.ensure()
        chunk = max(1, min(self._max_event(), READ_CHUNK))
        digest = hashlib.sha256()
        w = self._writer(self.stream)
        try:
            seg = self.store.segment_info(self.scope, self.stream, 0)
            offset, first_seq, size = seg.length, seg.tail_seq, 0
            while True:
                data = fileobj.read(chunk)
                if not data:
                    break
                w.append(data, segment=0)
                digest.update(data)
                size += len(data)
            w.flush()
            end_seq = self.store.segment_info(self.scope, self.stream, 0).tail_seq
            entry = IndexEntry(name, offset, size, first_seq, end_seq, digest.hexdigest())
            # committed while still holding the data writer: index order == data order
            self._commit({"v": INDEX_VERSION, "op": "put", **entry.__dict__})
        finally:
            w.close()
        with self._lock:
            self._files[name] = entry
        return entry

    def delete(self, names: list[str]) -> None:
        if not names or not self._exists():
            return
        records, batch = [], []
        for name in sorted(set(names)):  # as many names per record as fit one event
            rec = {"v": INDEX_VERSION, "op": "delete", "names": batch + [name]}
            if batch and len(self._encode(rec)) > self._max_event():
                records.append({"v": INDEX_VERSION, "op": "delete", "names": batch})
                batch = []
            batch.append(name)
        records.append({"v": INDEX_VERSION, "op": "delete", "names": batch})
        self._commit(*records)
        with self._lock:
            for n in names:
                self._files.pop(n, None)

    # -------------------------------------------------------------- reading
    def entry(self, name: str) -> IndexEntry:
        e = self._files.get(name) or self.refresh().get(name)
        if e is None:
            raise NotFoundError(f"{name} is not in {self.scope}/{self.stream}")
        return e

    def get(self, name: str, out) -> int:
        """Ranged read of one file into ``out``; verified against the index's sha256."""
        e = self.entry(name)
        digest = hashlib.sha256()
        pos = 0
        while pos < e.size:
            n = min(READ_CHUNK, e.size - pos)
            data = self.store.read_range(self.scope, self.stream, 0, e.offset + pos, n)
            if not data:
                raise CorruptionError(
                    f"{name}: data stream ends at {e.offset + pos}, "
                    f"expected {e.offset + e.size}"
                )
            out.write(data)
            digest.update(data)
            pos += len(data)
        if digest.hexdigest() != e.sha256:
            raise CorruptionError(f"{name}: sha256 mismatch in {self.scope}/{self.stream}")
        return pos

    def names(self) -> list[str]:
        return sorted(self.refresh())


def target_from_url(url: str, store=None) -> StreamTarget:
    """``stream://SCOPE[/STREAM]`` -> StreamTarget (a scope alone means stream ``duplicity``)."""
    parsed = parse_stream_url(url, need="scope")
    if parsed.segment is not None:
        from .errors import UsageError

        raise UsageError(f"a duplicity target is a stream, not a segment: {url}")
    store = store or open_store(parsed.protocol)
    return StreamTarget(store, parsed.scope, parsed.stream or DEFAULT_STREAM)


# ---------------------------------------------------------------------- duplicity adapter
_registered = False


def register() -> None:
    """Register the stream and pravega schemes with duplicity (idempotent)."""
    global _registered
    if _registered:
        return
    try:
        import duplicity.backend
    except ImportError as exc:
        from .errors import UsageError

        raise UsageError(
            f"duplicity is not installed ({exc}): pip install 'stream-backend[duplicity]'"
        ) from None
    from duplicity import log, progress
    from duplicity.errors import BackendException

    class StreamBackend(duplicity.backend.Backend):
        """duplicity files in a stream: see the module docstring for the layout."""

        def __init__(self, parsed_url):
            duplicity.backend.Backend.__init__(self, parsed_url)
            url = f"{parsed_url.scheme}://{parsed_url.path.lstrip('/')}"
            try:
                self.target = target_from_url(url)
            except StreamBackendError as exc:
                raise BackendException(f"{url}: {exc}") from None

        def _put(self, source_path, remote_filename):
            name = os.fsdecode(remote_filename)
            source_path.setdata()
            total = source_path.getsize()
            progress.report_transfer(0, total)  # feeds duplicity's --progress
            with source_path.open("rb") as f:
                done = 0

                class _Reporting:
                    def read(self, n=-1):
                        nonlocal done
                        data = f.read(n)
                        done += len(data)
                        progress.report_transfer(done, total)
                        return data

                self.target.put(name, _Reporting())

        def _get(self, remote_filename, local_path):
            name = os.fsdecode(remote_filename)
            with local_path.open("wb") as f:
                self.target.get(name, f)

        def _list(self):
            return self.target.names()

        def _query(self, remote_filename):
            name = os.fsdecode(remote_filename)
            e = self.target.refresh().get(name)
            return {"size": e.size if e else -1}

        def _delete(self, remote_filename):
            self.target.delete([os.fsdecode(remote_filename)])

        def _delete_list(self, filenames):
            self.target.delete([os.fsdecode(f) for f in filenames])

        def _close(self):
            pass

        def _error_code(self, operation, e):
            if isinstance(e, NotFoundError):
                return log.ErrorCode.backend_not_found
            if isinstance(e, PermissionDeniedError):
                return log.ErrorCode.backend_permission_denied
            if isinstance(e, UnavailableError):
                return log.ErrorCode.backend_error
            return None

    for scheme in ("stream", "pravega"):
        if scheme not in duplicity.backend._backends:
            duplicity.backend.register_backend(scheme, StreamBackend)
    _registered = True


def run_duplicity(argv: list[str]) -> None:
    """Run duplicity's own main with our schemes registered (here and in its workers)."""
    os.environ[settings.DUPLICITY_ENV] = "1"
    register()
    from duplicity.__main__ import dup_run

    sys.argv = ["duplicity", *argv]
    dup_run()
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(run_duplicity(sys.argv[1:]))
elif __name__ == "__mp_main__":
    # a duplicity worker spawned from `python -m stream_backend.duplicity_backend`
    register()
