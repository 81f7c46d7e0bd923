"""Writing a stream: one writer per stream (an fcntl lock), appends buffered per segment,
group commit on flush (write, one fsync per touched log, then the index)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time

from crc32c import crc32c

from ...errors import (
    EventTooLargeError,
    NotFoundError,
    SealedError,
    StreamBackendError,
    UsageError,
    WriterBusyError,
)
from . import offset_index, records
from .files import LOCK_FILE, STREAM_JSON, os_errors, stat_key
from .reader import SegmentView

#: appended bytes buffered per segment before they are written (not yet fsync'ed)
WRITE_BUFFER = 8 * 1024 * 1024


_HELD_LOCK = threading.Lock()
_HELD: dict[str, "LocalWriter"] = {}  # lock-file path -> writer of this process


def acquire_writer_lock(sdir: str, where: str, owner) -> int:
    """Take the stream's writer lock or raise WriterBusyError at once.

    POSIX locks belong to the process and close() of *any* descriptor of the file drops
    them, so a process-wide table keeps a second writer in the same process out before
    it ever opens the file.
    """
    path = os.path.join(os.path.realpath(sdir), LOCK_FILE)  # one key however the root is spelt
    with _HELD_LOCK:
        if path in _HELD:
            raise WriterBusyError(f"{where}: another writer in this process holds the stream")
        with os_errors(f"open the writer lock of {where}"):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EACCES, errno.EAGAIN):
                raise WriterBusyError(
                    f"{where}: another writer holds the stream (try again later)"
                ) from None
            raise StreamBackendError(f"{where}: cannot lock the stream: {e.strerror}") from None
        _HELD[path] = owner
        return fd


def writer_of(sdir: str) -> "LocalWriter | None":
    """This process's open writer of the stream in ``sdir``, if any."""
    with _HELD_LOCK:
        return _HELD.get(os.path.join(os.path.realpath(sdir), LOCK_FILE))


def release_writer_lock(sdir: str, fd: int) -> None:
    path = os.path.join(os.path.realpath(sdir), LOCK_FILE)
    with _HELD_LOCK:
        _HELD.pop(path, None)
        try:
            os.close(fd)
        except OSError:
            pass


class SegmentWriter:
    def __init__(self, sdir: str, segment: int, where: str, max_payload: int):
        view = SegmentView(sdir, segment, where, max_payload)
        try:
            self.where = where
            if view.damage is not None:
                raise view.damage
            self.fd = os.open(view.log_path, os.O_RDWR | os.O_CLOEXEC)
            size = os.fstat(self.fd).st_size
            if size > view.end_pos:
                # torn tail left by a crash: never acknowledged, cut it off
                os.ftruncate(self.fd, view.end_pos)
            os.fsync(self.fd)  # what we are about to mark committed must be on disk
            self.idx = view.idx
            self.pos = self.written = view.end_pos
            self.seq, self.foff, self.last_ts = view.end_seq, view.end_foff, view.last_ts
            self.idx_path = view.idx_path
            if view.persisted == 0:
                offset_index.write_new(self.idx_path, self.idx, self.pos)
            self.idx_fd = os.open(self.idx_path, os.O_RDWR | os.O_CLOEXEC)
            if view.persisted:
                # drop stale entries past what the log holds, add the new ones
                os.ftruncate(
                    self.idx_fd,
                    offset_index.IDX_HEADER_SIZE + view.persisted * offset_index.ENTRY_SIZE,
                )
                offset_index.write_update(self.idx_fd, self.idx, view.persisted, self.pos)
            self.persisted = len(self.idx)
            self.committed = self.pos
        finally:
            view.close()
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.unsynced = False

    def write_out(self) -> None:
        if not self.pending:
            return
        pieces = self.pending
        total = self.pending_bytes
        self.pending = []
        self.pending_bytes = 0
        pwrite_all(self.fd, pieces, self.written)
        self.written += total
        self.unsynced = True

    def sync(self) -> bool:
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = False
            return True
        return False

    def commit(self) -> None:
        if self.committed != self.written:
            offset_index.write_update(self.idx_fd, self.idx, self.persisted, self.written)
            self.persisted = len(self.idx)
            self.committed = self.written

    def close(self) -> None:
        for fd in (self.fd, self.idx_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class LocalWriter:
    """The single writer of one local stream (see StreamWriter in base.py)."""

    def __init__(self, store, scope: str, stream: str):
        self._store = store
        self._where = f"stream {scope}/{stream}"
        self._sdir = store._stream_dir(scope, stream)
        meta = store._meta(scope, stream)
        self._meta_path = os.path.join(self._sdir, STREAM_JSON)
        self._meta_stat = stat_key(self._meta_path)
        self._max = int(meta["max_event_size"])
        self._sealed = bool(meta.get("sealed"))
        self._closed = False
        self._failed: str | None = None
        self._rr = 0
        self._lock = threading.RLock()
        self._lock_fd = acquire_writer_lock(self._sdir, self._where, self)
        self._segs: list[SegmentWriter] = []
        try:
            with os_errors(f"open {self._where} for writing"):
                for name in os.listdir(self._sdir):
                    if name.startswith("segment-") and ".idx.tmp-" in name:
                        # an index rewrite cut short by a crash (only writers make them)
                        os.unlink(os.path.join(self._sdir, name))
                for i in range(int(meta["segments"])):
                    self._segs.append(
                        SegmentWriter(self._sdir, i, f"{self._where} segment {i}", self._max)
                    )
        except BaseException:
            for s in self._segs:
                s.close()
            release_writer_lock(self._sdir, self._lock_fd)
            raise

    def __enter__(self) -> "LocalWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _mark_sealed(self) -> None:
        self._sealed = True

    def append(
        self, payload: bytes, routing_key: str | None = None, segment: int | None = None
    ) -> None:
        if self._closed:
            raise UsageError(f"{self._where}: writer is closed")
        if self._sealed:
            raise SealedError(f"{self._where} is sealed: no more appends")
        if not isinstance(payload, bytes):
            if isinstance(payload, (bytearray, memoryview)):
                payload = bytes(payload)
            else:
                raise UsageError(f"event payload must be bytes, not {type(payload).__name__}")
        n = len(payload)
        if n > self._max:
            raise EventTooLargeError(
                f"event of {n} bytes exceeds the max event size of {self._where} "
                f"({self._max} bytes)"
            )
        nseg = len(self._segs)
        key = None
        if routing_key is not None:
            key = routing_key.encode("utf-8")
            if len(key) > records.MAX_KEY_BYTES:
                raise UsageError(f"routing key longer than {records.MAX_KEY_BYTES} bytes")
        if segment is None:
            if key is not None:
                segment = crc32c(key) % nseg
            else:
                segment = self._rr % nseg
                self._rr += 1
        elif not (0 <= segment < nseg):
            raise NotFoundError(f"{self._where} has no segment {segment} (0..{nseg - 1})")
        with self._lock:
            if self._failed:
                raise StreamBackendError(
                    f"{self._where}: writer failed earlier ({self._failed}); open a new one"
                )
            sw = self._segs[segment]
            ts = time.time_ns()
            rec = records.encode_parts(payload, key, sw.seq, sw.foff, ts)
            size = sum(map(len, rec)) if len(rec) > 1 else len(rec[0])
            sw.idx.note(sw.pos, sw.seq, sw.foff)
            sw.pending.extend(rec)
            sw.pending_bytes += size
            sw.pos += size
            sw.seq += 1
            sw.foff += n
            sw.last_ts = ts
            if sw.pending_bytes >= WRITE_BUFFER:
                self._guarded(sw.write_out)

    def _guarded(self, fn) -> None:
        try:
            with os_errors(f"write {self._where}"):
                fn()
        except StreamBackendError as e:
            self._failed = str(e)
            raise

    def _check_sealed_on_disk(self) -> None:
        key = stat_key(self._meta_path)
        if key != self._meta_stat:
            self._meta_stat = key
            try:
                with open(self._meta_path) as f:
                    self._sealed = self._sealed or bool(json.load(f).get("sealed"))
            except (OSError, ValueError):
                pass

    def flush(self) -> None:
        """Write everything appended, fsync each touched log once, then extend the index."""
        with self._lock:
            if self._closed:
                return
            if self._failed:
                raise StreamBackendError(
                    f"{self._where}: writer failed earlier ({self._failed}); open a new one"
                )
            if any(s.pending for s in self._segs):
                self._check_sealed_on_disk()
                if self._sealed:
                    dropped = sum(len(s.pending) for s in self._segs)
                    for s in self._segs:
                        s.pending, s.pending_bytes = [], 0
                    raise SealedError(
                        f"{self._where} was sealed: {dropped} unflushed events not written"
                    )

            def work():
                for s in self._segs:
                    s.write_out()
                for s in self._segs:
                    s.sync()
                for s in self._segs:
                    s.commit()

            self._guarded(work)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if not self._failed:
                    self.flush()
            finally:
                self._closed = True
                for s in self._segs:
                    s.close()
                release_writer_lock(self._sdir, self._lock_fd)


_IOV_MAX = min(getattr(os, "sysconf", lambda n: 1024)("SC_IOV_MAX") or 1024, 1024)


def pwrite_all(fd: int, pieces: list, pos: int) -> None:
    """Write ``pieces`` back to back at ``pos`` (gathered, no joining copy; partial writes
    resumed)."""
    i = 0
    while i < len(pieces):
        batch = pieces[i : i + _IOV_MAX]
        want = sum(map(len, batch))
        done = os.pwritev(fd, batch, pos)
        pos += done
        if done == want:
            i += len(batch)
            continue
        # partial: skip what was written, continue inside the piece where it stopped
        for j, b in enumerate(batch):
            if done < len(b):
                pieces = [memoryview(b)[done:]] + batch[j + 1 :] + pieces[i + len(batch) :]
                i = 0
                break
            done -= len(b)
