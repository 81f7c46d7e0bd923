"""The embedded local stream store: streams as directories of append-only logs.

Layout (docs/store.md has the full story)::

    ROOT/SCOPE/STREAM/stream.json          format, segments, sealed, max_event_size, created, id
    ROOT/SCOPE/STREAM/segment-NNNNNN.log   framed records (stores/records.py)
    ROOT/SCOPE/STREAM/segment-NNNNNN.idx   sparse offset index (stores/offset_index.py)
    ROOT/SCOPE/STREAM/writer.lock          fcntl.lockf: one writer per stream

Why a directory of plain files: it works on any local disk and on NFS persistent volumes
with no server, and every byte can be verified (crc32c per record) and re-indexed from the
log alone. Durability is group commit: ``append`` buffers, ``flush`` writes and fsyncs once.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from crc32c import crc32c

from .. import settings
from ..errors import (
    AlreadyExistsError,
    CorruptionError,
    EventTooLargeError,
    FormatVersionError,
    NotEmptyError,
    NotFoundError,
    PermissionDeniedError,
    SealedError,
    StreamBackendError,
    UsageError,
    WriterBusyError,
    from_os_error,
)
from ..urls import check_name
from . import offset_index, records
from .base import DEFAULT_MAX_EVENT_SIZE, Event, SegmentInfo, StreamInfo
from .offset_index import LocalOffsetIndex, SparseIndex

FORMAT_VERSION = 1
STREAM_JSON = "stream.json"
LOCK_FILE = "writer.lock"
#: appended bytes buffered per segment before they are written (not yet fsync'ed)
WRITE_BUFFER = 8 * 1024 * 1024
#: how much log a reader reads per system call
READ_CHUNK = 1024 * 1024
#: ranges at least this long are read straight into the result (``_View._read_direct``)
DIRECT_MIN = 64 * 1024
#: ... as long as events are at least this big (smaller ones: one pread, then copy)
DIRECT_MIN_EVENT = 8 * 1024
#: records per preadv call (2-3 buffers each; IOV_MAX is 1024)
DIRECT_MAX_RECORDS = 256
#: batches at least this big are split in two halves read and checked in parallel
#: (below it the hand-off to the helper thread costs more than it saves)
DIRECT_SPLIT = 2 * 1024 * 1024
FOLLOW_POLL_MIN = 0.005
FOLLOW_POLL_MAX = 0.2

_HEADER = records.HEADER
_HS = records.HEADER_SIZE
_MAGIC = records.MAGIC


def seg_name(segment: int) -> str:
    return f"segment-{segment:06d}"


@contextmanager
def _os_errors(what: str):
    """Turn OS errors of a mutating operation into one-line tool errors."""
    try:
        yield
    except StreamBackendError:
        raise
    except OSError as e:
        raise from_os_error(e, what) from None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def _all_zero(fd: int, pos: int, size: int) -> bool:
    while pos < size:
        buf = os.pread(fd, min(1 << 20, size - pos), pos)
        if not buf or buf.count(0) != len(buf):
            return bool(not buf)
        pos += len(buf)
    return True


# --------------------------------------------------------------------------- reading


def _read_sums(fd: int, iov: list, pos: int, rec: int) -> tuple[int, list[int]]:
    """``preadv`` records of ``rec`` bytes laid out two iovec entries each (header+key,
    payload; the last may have a third, its unwanted tail) and compute the crc32c of each
    record read whole (as records.py defines it: from byte 4 of the header on)."""
    n = os.preadv(fd, iov, pos)
    sums = []
    last = len(iov) // 2 - 1
    for r in range(n // rec):
        c = crc32c(iov[2 * r + 1], crc32c(iov[2 * r][4:]))
        if r == last and len(iov) > 2 * r + 2:
            c = crc32c(iov[2 * r + 2], c)
        sums.append(c)
    iov.clear()  # no view of the caller's buffer outlives the call (not even in a work item)
    return n, sums


_HELPER: tuple[int, ThreadPoolExecutor] | None = None
_HELPER_LOCK = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    """One reader helper thread per process (a new one in a forked child)."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None or _HELPER[0] != os.getpid():
            _HELPER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="stream-read"))
        return _HELPER[1]


class _View:
    """What one process knows about one segment: its verified extent and index.

    The extent grows by scanning (and verifying) new records; records below ``end_pos``
    have been verified once, so anything wrong there later is corruption.
    """

    def __init__(self, sdir: str, segment: int, where: str, max_payload: int):
        self.where = where
        self.segment = segment
        self.log_path = os.path.join(sdir, seg_name(segment) + ".log")
        self.idx_path = os.path.join(sdir, seg_name(segment) + ".idx")
        self.max_payload = max_payload
        try:
            self.fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"{where}: segment log missing") from None
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PermissionDeniedError(f"cannot read {where}: {e.strerror}") from None
            raise StreamBackendError(f"cannot read {where}: {e.strerror or e}") from None
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)
        try:  # reads are mostly sequential: let the kernel read ahead further
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):  # pragma: no cover - not on every platform
            pass
        self.lock = threading.RLock()
        loaded = offset_index.load(self.idx_path, st.st_size)
        #: entries known to be in the index file (0: file must be rewritten)
        self.persisted = 0
        if loaded is not None:
            self.idx, self.committed = loaded
            self.persisted = len(self.idx)
        else:
            self.idx, self.committed = SparseIndex(), None
        self.end_seq, self.end_foff, self.end_pos = self.idx.entry(len(self.idx) - 1)
        self.last_ts: int | None = None
        self.tail_junk = False
        #: CorruptionError met by the last scan: the prefix before it stays readable
        self.damage: CorruptionError | None = None
        self._verified_entries: set[int] = set()
        self.cache: tuple[int, memoryview] | None = None  # last partly read record
        self.cursor: tuple[int, int, int] | None = None  # (pos, seq, foff) after last read
        self.shape: tuple[int, int] | None = None  # (key, payload length) of the last record
        self.extend(from_entry=True)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    def corrupt(self, pos: int, why: str) -> CorruptionError:
        return CorruptionError(
            f"{self.where}: corrupt record at byte {pos} of "
            f"{os.path.basename(self.log_path)} ({why})"
        )

    def _committed_now(self) -> int | None:
        try:
            fd = os.open(self.idx_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return self.committed
        try:
            c = offset_index.read_committed(fd)
        finally:
            os.close(fd)
        return c if c is not None else self.committed

    def _rebuild(self) -> None:
        self.idx = SparseIndex()
        self.persisted = 0
        self._verified_entries.clear()
        self.end_seq = self.end_foff = self.end_pos = 0
        self.last_ts = None

    def extend(self, from_entry: bool = False) -> None:
        """Scan (verifying checksums) from the known end to the end of the log."""
        with self.lock:
            size = os.fstat(self.fd).st_size
            pos, seq, foff = self.end_pos, self.end_seq, self.end_foff
            idx, fd = self.idx, self.fd
            last_ts = self.last_ts
            self.tail_junk = False
            self.damage = None
            need = READ_CHUNK
            while pos < size:
                buf = os.pread(fd, min(max(need, READ_CHUNK), size - pos), pos)
                n = len(buf)
                o = 0
                status = records.OK
                while True:
                    status, end, ln, ts, _kl, _fl, why = records.check(buf, o, n, seq, foff)
                    if status != records.OK:
                        break
                    if ln > self.max_payload:
                        status, why = records.BAD, "record larger than the stream's max event size"
                        break
                    idx.note(pos + o, seq, foff)
                    seq += 1
                    foff += ln
                    last_ts = ts
                    o = end
                    from_entry = False
                if (
                    from_entry
                    and o == 0
                    and pos == self.end_pos
                    and pos > 0
                    and (status == records.BAD or pos + end > size)
                ):
                    # the index pointed at something that is not the record it claims:
                    # the index is damaged or stale; rebuild it from the log
                    self._rebuild()
                    return self.extend()
                if status == records.INCOMPLETE:
                    if pos + end <= size:  # the chunk was too small, the record is there
                        pos += o
                        need = end - o
                        continue
                    pos += o
                    self.tail_junk = pos < size
                    break
                # BAD
                bad_at = pos + o
                committed = self._committed_now()
                if committed is not None:
                    if bad_at < committed:
                        self.damage = self.corrupt(bad_at, why)
                elif not _all_zero(fd, bad_at, size):
                    # no index says how far the log was acknowledged: only an all-zero
                    # tail (power loss) is torn; anything else is damage
                    self.damage = self.corrupt(bad_at, why)
                pos = bad_at
                self.tail_junk = True
                break
            self.end_pos, self.end_seq, self.end_foff, self.last_ts = pos, seq, foff, last_ts

    def _entry_ok(self, i: int) -> bool:
        """Does entry ``i`` match the record header it points at?"""
        if i == 0 or i in self._verified_entries:
            return True
        seq, foff, pos = self.idx.entry(i)
        raw = os.pread(self.fd, _HS, pos)
        if len(raw) != _HS:
            return False
        _c, _ln, s, f, _ts, _kl, mg, _fl = _HEADER.unpack_from(raw, 0)
        if mg != _MAGIC or s != seq or f != foff:
            return False
        self._verified_entries.add(i)
        return True

    def _verified(self, find) -> tuple[int, int, int]:
        """The entry ``find(idx)`` picks, after checking it against its record; a damaged
        index is rebuilt from the log (verifying it) and the lookup done again."""
        i = find(self.idx)
        if not self._entry_ok(i):
            self._rebuild()
            self.extend()
            i = find(self.idx)
        return self.idx.entry(i)

    def entry_for_offset(self, offset: int) -> tuple[int, int, int]:
        with self.lock:
            return self._verified(lambda idx: idx.floor_offset(offset))

    def entry_for_seq(self, seq: int) -> tuple[int, int, int]:
        with self.lock:
            return self._verified(lambda idx: idx.floor_seq(seq))

    def read_range(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset < 0:
            if offset < 0 or length < 0:
                raise UsageError(f"bad range: offset {offset}, length {length}")
            return b""
        with self.lock:
            stop = offset + length
            if stop > self.end_foff:
                self.extend()
                if self.damage is not None and stop > self.end_foff:
                    raise self.damage
            stop = min(stop, self.end_foff)
            if offset >= stop:
                return b""
            if stop - offset >= DIRECT_MIN:
                return self._read_direct(offset, stop)
            parts: list = []
            c = self.cache
            if c is not None and c[0] <= offset < c[0] + len(c[1]):
                take = c[1][offset - c[0] : stop - c[0]]
                parts.append(take)
                offset += len(take)
            if offset < stop:
                seq, foff, pos = self.entry_for_offset(offset)
                cur = self.cursor
                if cur is not None and cur[2] <= offset and cur[0] >= pos and cur[0] < self.end_pos:
                    pos, seq, foff = cur
                self._gather(parts, pos, seq, foff, offset, stop)
        if len(parts) == 1:
            return bytes(parts[0])
        return b"".join(parts)

    def _read_direct(self, offset: int, stop: int) -> bytes:
        """A large range read straight into the bytes object returned: payloads are
        ``preadv``'ed into place (headers and keys into a scratch buffer) and each
        record's checksum is computed over the pieces where they landed, so every byte
        is read once by the kernel and once by crc32c and is never copied again.

        The result is built in a BytesIO whose buffer is a fresh ``bytes`` object:
        ``getvalue()`` hands that very object back (no copy) once the view is released.
        """
        total = stop - offset
        bio = io.BytesIO(bytes(total))
        out = bio.getbuffer()
        try:
            w = 0
            while w < total:
                at = offset + w
                c = self.cache
                if c is not None and c[0] <= at < c[0] + len(c[1]):
                    take = c[1][at - c[0] : stop - c[0]]
                    out[w : w + len(take)] = take
                    w += len(take)
                    continue
                seq, foff, pos = self.entry_for_offset(at)
                cur = self.cursor
                if cur is not None and cur[2] <= at and cur[0] >= pos and cur[0] < self.end_pos:
                    pos, seq, foff = cur
                if foff < at:
                    # starts inside a record: read that one record the careful way (it is
                    # verified whole and cached), take the rest of it from the cache
                    parts: list = []
                    self._gather(parts, pos, seq, foff, at, at + 1)
                    out[w : w + 1] = parts[0]
                    w += 1
                    continue
                w = self._fill(out, offset, pos, seq, foff, stop) - offset
        finally:
            out.release()
        return bio.getvalue()

    def _fill(self, out, base: int, pos: int, seq: int, foff: int, stop: int) -> int:
        """Fill ``out`` (``out[0]`` is file-view byte ``base``) from the record boundary
        ``pos`` (seq, foff) up to ``stop``; returns ``stop``.

        Records are read ``preadv``-style assuming each has the key and payload length of
        the one before (events of one stream mostly do). Each header read is checked in
        order; a position is trusted only after every record before it matched, exactly
        as a sequential scan would. When the guess is wrong the rest is read by
        ``_gather`` (one more copy, same checks).
        """
        fd = self.fd
        unpack = _HEADER.unpack_from
        end_pos = self.end_pos
        shape = self.shape
        retried = False
        while foff < stop:
            if shape is None:
                raw = os.pread(fd, _HS, pos)
                if len(raw) != _HS:
                    raise self.corrupt(pos, "log shorter than its verified length")
                _c, ln, _s, _f, _t, kl, mg, _fl = unpack(raw, 0)
                if mg != _MAGIC:
                    raise self.corrupt(pos, "bad record header")
                shape = (kl, ln)
            kl, ln = shape
            if ln < DIRECT_MIN_EVENT:
                break
            hk = _HS + kl
            rec = hk + ln
            count = min(-(-(stop - foff) // ln), (end_pos - pos) // rec, DIRECT_MAX_RECORDS)
            if count <= 0:
                break
            heads = memoryview(bytearray(hk * count))
            iov = []
            tail = None
            f = foff
            for r in range(count):
                iov.append(heads[r * hk : (r + 1) * hk])
                take = min(ln, stop - f)
                iov.append(out[f - base : f - base + take])
                if take < ln:
                    tail = bytearray(ln - take)
                    iov.append(tail)
                f += ln
            half = count // 2 if count * rec >= DIRECT_SPLIT else 0
            fut = None
            if half:
                # the second half is read and summed on a helper thread meanwhile
                # (preadv and crc32c both release the GIL)
                try:
                    fut = _helper().submit(_read_sums, fd, iov[2 * half :], pos + half * rec, rec)
                except RuntimeError:  # interpreter shutting down: no new threads
                    half = 0
            if half:
                try:
                    n, sums = _read_sums(fd, iov[: 2 * half], pos, rec)
                finally:
                    n2, sums2 = fut.result()
                if len(sums) == half:
                    n += n2
                    sums += sums2
            else:
                n, sums = _read_sums(fd, iov, pos, rec)
            del iov
            progressed = False
            for r in range(len(sums)):
                h = r * hk
                crc, ln_r, s, f_r, _ts, kl_r, mg, _fl = unpack(heads, h)
                if mg != _MAGIC or s != seq or f_r != foff:
                    raise self.corrupt(pos, "bad record header")
                if ln_r != ln or kl_r != kl:
                    shape = (kl_r, ln_r)
                    break
                take = min(ln, stop - foff)
                if sums[r] != crc:
                    raise self.corrupt(pos, "checksum mismatch")
                if take < ln:
                    self.cache = (foff + take, memoryview(tail))
                pos += rec
                seq += 1
                foff += ln
                progressed = True
            self.cursor = (pos, seq, foff)
            if foff >= stop:
                break
            if progressed:
                retried = False
            if shape != (kl, ln):
                if progressed or retried:
                    break  # sizes vary: the careful path does the rest
                retried = True  # the first record had another shape: guess again once
            elif n < count * rec:
                break  # short read: let the careful path say what is wrong
        self.shape = shape
        if foff < stop:
            parts: list = []
            self._gather(parts, pos, seq, foff, foff, stop)
            for p in parts:
                out[foff - base : foff - base + len(p)] = p
                foff += len(p)
            if foff < stop:
                raise self.corrupt(pos, "log shorter than its verified length")
        return stop

    def _gather(self, parts: list, pos: int, seq: int, foff: int, offset: int, stop: int) -> None:
        fd = self.fd
        unpack = _HEADER.unpack_from
        # log bytes per file-view byte so far (headers, keys): read about what is needed
        ratio = self.end_pos / self.end_foff if self.end_foff else 2.0
        want = int((stop - foff) * ratio * 1.01) + 4096
        while offset < stop:
            buf = os.pread(fd, min(max(want, 65536), 64 << 20), pos)
            n = len(buf)
            mv = memoryview(buf)
            o = 0
            while offset < stop and o + _HS <= n:
                crc, ln, s, f, _ts, kl, mg, _fl = unpack(buf, o)
                if mg != _MAGIC or s != seq or f != foff:
                    raise self.corrupt(pos + o, "bad record header")
                end = o + _HS + kl + ln
                if f > offset:  # cannot happen with a checked index: never guess
                    raise self.corrupt(pos + o, f"index points past offset {offset}")
                if f + ln <= offset:  # wholly before the range: skip unread
                    o = end
                    seq += 1
                    foff += ln
                    continue
                if end > n:
                    break
                if crc32c(mv[o + 4 : end]) != crc:
                    raise self.corrupt(pos + o, "checksum mismatch")
                p0 = o + _HS + kl
                a = offset - f
                b = min(stop - f, ln)
                parts.append(mv[p0 + a : p0 + b])
                if b < ln:
                    self.cache = (f, mv[p0 : p0 + ln])
                offset = f + b
                o = end
                seq += 1
                foff += ln
            if o == 0 and n >= _HS:
                # one record larger than what was read: read all of it
                _c, ln, _s, _f, _t, kl, _m, _fl = unpack(buf, 0)
                want = _HS + kl + ln
                continue
            if n == 0:
                raise self.corrupt(pos, "log shorter than its verified length")
            pos += o
            want = int((stop - foff) * ratio * 1.01) + 4096
        self.cursor = (pos, seq, foff)

    def info(self) -> SegmentInfo:
        with self.lock:
            self.extend()
            if self.damage is not None:
                raise self.damage
            return SegmentInfo(
                segment=self.segment,
                head_seq=0,
                tail_seq=self.end_seq,
                events=self.end_seq,
                length=self.end_foff,
                last_append=None if self.last_ts is None else self.last_ts / 1e9,
            )


# --------------------------------------------------------------------------- writing

_HELD_LOCK = threading.Lock()
_HELD: dict[str, "LocalWriter"] = {}  # lock-file path -> writer of this process


def _acquire_writer_lock(sdir: str, where: str, owner) -> int:
    """Take the stream's writer lock or raise WriterBusyError at once.

    POSIX locks belong to the process and close() of *any* descriptor of the file drops
    them, so a process-wide table keeps a second writer in the same process out before
    it ever opens the file.
    """
    path = os.path.join(os.path.realpath(sdir), LOCK_FILE)  # one key however the root is spelt
    with _HELD_LOCK:
        if path in _HELD:
            raise WriterBusyError(f"{where}: another writer in this process holds the stream")
        with _os_errors(f"open the writer lock of {where}"):
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


def _release_writer_lock(sdir: str, fd: int) -> None:
    path = os.path.join(os.path.realpath(sdir), LOCK_FILE)
    with _HELD_LOCK:
        _HELD.pop(path, None)
        try:
            os.close(fd)
        except OSError:
            pass


class _SegmentWriter:
    def __init__(self, sdir: str, segment: int, where: str, max_payload: int):
        view = _View(sdir, segment, where, max_payload)
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
        _pwrite_all(self.fd, pieces, self.written)
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

    def __init__(self, store: "LocalStore", scope: str, stream: str):
        self._store = store
        self._where = f"stream {scope}/{stream}"
        self._sdir = store._stream_dir(scope, stream)
        meta = store._meta(scope, stream)
        self._meta_path = os.path.join(self._sdir, STREAM_JSON)
        self._meta_stat = _stat_key(self._meta_path)
        self._max = int(meta["max_event_size"])
        self._sealed = bool(meta.get("sealed"))
        self._closed = False
        self._failed: str | None = None
        self._rr = 0
        self._lock = threading.RLock()
        self._lock_fd = _acquire_writer_lock(self._sdir, self._where, self)
        self._segs: list[_SegmentWriter] = []
        try:
            with _os_errors(f"open {self._where} for writing"):
                for name in os.listdir(self._sdir):
                    if name.startswith("segment-") and ".idx.tmp-" in name:
                        # an index rewrite cut short by a crash (only writers make them)
                        os.unlink(os.path.join(self._sdir, name))
                for i in range(int(meta["segments"])):
                    self._segs.append(
                        _SegmentWriter(self._sdir, i, f"{self._where} segment {i}", self._max)
                    )
        except BaseException:
            for s in self._segs:
                s.close()
            _release_writer_lock(self._sdir, self._lock_fd)
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
            with _os_errors(f"write {self._where}"):
                fn()
        except StreamBackendError as e:
            self._failed = str(e)
            raise

    def _check_sealed_on_disk(self) -> None:
        key = _stat_key(self._meta_path)
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
                _release_writer_lock(self._sdir, self._lock_fd)


_IOV_MAX = min(getattr(os, "sysconf", lambda n: 1024)("SC_IOV_MAX") or 1024, 1024)


def _pwrite_all(fd: int, pieces: list, pos: int) -> None:
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


def _stat_key(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# --------------------------------------------------------------------------- store


class LocalStore:
    """Scopes and streams in a directory tree (see the module docstring)."""

    protocol = "stream"

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
        self._views: dict[tuple[str, str, int], _View] = {}
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
        key = _stat_key(path)
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

    def _view(self, scope: str, stream: str, segment: int) -> _View:
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
                v = _View(
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
        with _os_errors(f"create scope {scope}"):
            try:
                os.mkdir(path)
            except FileExistsError:
                if exist_ok and os.path.isdir(path):
                    return
                raise AlreadyExistsError(f"scope {scope} already exists") from None
            _fsync_dir(self.root)

    def list_scopes(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _valid(n) and os.path.isdir(os.path.join(self.root, n)))

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
        with _os_errors(f"delete scope {scope}"):
            for n in os.listdir(path):  # leftovers of interrupted creates/deletes
                if n.startswith("."):
                    shutil.rmtree(os.path.join(path, n), ignore_errors=True)
            try:
                os.rmdir(path)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise NotEmptyError(f"scope {scope} is not empty") from None
                raise
            _fsync_dir(self.root)

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
        with _os_errors(f"create stream {scope}/{stream}"):
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
                _write_json_atomic(os.path.join(tmp, STREAM_JSON), meta)
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
                _fsync_dir(scope_dir)
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
            n for n in names if _valid(n) and os.path.exists(os.path.join(path, n, STREAM_JSON))
        )

    def delete_stream(self, scope: str, stream: str) -> None:
        self._meta(scope, stream)  # NotFoundError
        sdir = self._stream_dir(scope, stream)
        where = f"stream {scope}/{stream}"
        fd = _acquire_writer_lock(sdir, where, None)
        try:
            gone = os.path.join(
                os.path.dirname(sdir), f".deleted-{stream}-{os.getpid()}-{secrets.token_hex(4)}"
            )
            with _os_errors(f"delete {where}"):
                os.rename(sdir, gone)
                _fsync_dir(os.path.dirname(sdir))
        finally:
            _release_writer_lock(sdir, fd)
        self._drop_views(scope, stream)
        shutil.rmtree(gone, ignore_errors=True)

    def seal_stream(self, scope: str, stream: str) -> None:
        meta = dict(self._meta(scope, stream))
        sdir = self._stream_dir(scope, stream)
        if not meta.get("sealed"):
            meta["sealed"] = True
            with _os_errors(f"seal stream {scope}/{stream}"):
                _write_json_atomic(os.path.join(sdir, STREAM_JSON), meta)
        with _HELD_LOCK:
            w = _HELD.get(os.path.join(os.path.realpath(sdir), LOCK_FILE))
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

    def _events(self, scope, stream, v: _View, from_seq, to_seq, follow) -> Iterator[Event]:
        v.extend()
        seq, foff, pos = v.entry_for_seq(from_seq)
        fd = os.dup(v.fd)
        try:
            poll = FOLLOW_POLL_MIN
            while True:
                limit = v.end_seq if to_seq is None else min(to_seq, v.end_seq)
                if seq < limit:
                    for batch, pos, seq, foff in _parse_events(
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


def _parse_events(v: _View, fd: int, pos: int, seq: int, foff: int, from_seq: int, limit: int):
    """Yield ``(events, pos, seq, foff)`` batches for seqs below ``limit`` (all verified
    once already, so any failure here is corruption)."""
    unpack = _HEADER.unpack_from
    segment = v.segment
    need = READ_CHUNK
    while seq < limit:
        buf = os.pread(fd, max(need, READ_CHUNK), pos)
        n = len(buf)
        mv = memoryview(buf)
        o = 0
        out = []
        append = out.append
        while seq < limit and o + _HS <= n:
            crc, ln, s, f, ts, kl, mg, fl = unpack(buf, o)
            if mg != _MAGIC or s != seq or f != foff:
                raise v.corrupt(pos + o, "bad record header")
            end = o + _HS + kl + ln
            if end > n:
                break
            if s >= from_seq:
                if crc32c(mv[o + 4 : end]) != crc:
                    raise v.corrupt(pos + o, "checksum mismatch")
                p0 = o + _HS + kl
                key = buf[o + _HS : p0].decode("utf-8", "replace") if fl else None
                append(Event(segment, s, buf[p0:end], key, f, ts / 1e9))
            o = end
            seq += 1
            foff += ln
        if o == 0:
            if n < _HS:
                raise v.corrupt(pos, "log shorter than its verified length")
            _c, ln, _s, _f, _t, kl, _m, _fl = unpack(buf, 0)
            need = _HS + kl + ln
            continue
        need = READ_CHUNK
        pos += o
        yield out, pos, seq, foff


def _valid(name: str) -> bool:
    try:
        check_name("name", name)
        return True
    except UsageError:
        return False
