"""Reading a segment log: a verified view of what is committed, ranges of the file view,
and events, checked against their crc32c and the offset index on the way."""

from __future__ import annotations

import errno
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from crc32c import crc32c

from ...errors import (
    CorruptionError,
    NotFoundError,
    PermissionDeniedError,
    StreamBackendError,
    UsageError,
)
from ..base import Event, SegmentInfo
from .files import seg_name
from . import offset_index, records
from .offset_index import SparseIndex
from .records import HEADER_SIZE, decode, extent

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

def _all_zero(fd: int, pos: int, size: int) -> bool:
    while pos < size:
        buf = os.pread(fd, min(1 << 20, size - pos), pos)
        if not buf or buf.count(0) != len(buf):
            return bool(not buf)
        pos += len(buf)
    return True


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


class SegmentView:
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
        raw = os.pread(self.fd, HEADER_SIZE, pos)
        if len(raw) != HEADER_SIZE:
            return False
        if decode(raw, 0, seq, foff) is None:
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
        end_pos = self.end_pos
        shape = self.shape
        retried = False
        while foff < stop:
            if shape is None:
                raw = os.pread(fd, HEADER_SIZE, pos)
                if len(raw) != HEADER_SIZE:
                    raise self.corrupt(pos, "log shorter than its verified length")
                head = decode(raw, 0, seq, foff)
                if head is None:
                    raise self.corrupt(pos, "bad record header")
                shape = (head[3], head[1])
            kl, ln = shape
            if ln < DIRECT_MIN_EVENT:
                break
            hk = HEADER_SIZE + kl
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
                head = decode(heads, h, seq, foff)
                if head is None:
                    raise self.corrupt(pos, "bad record header")
                crc, ln_r, _ts, kl_r, _fl = head
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
        # log bytes per file-view byte so far (headers, keys): read about what is needed
        ratio = self.end_pos / self.end_foff if self.end_foff else 2.0
        want = int((stop - foff) * ratio * 1.01) + 4096
        while offset < stop:
            buf = os.pread(fd, min(max(want, 65536), 64 << 20), pos)
            n = len(buf)
            mv = memoryview(buf)
            o = 0
            while offset < stop and o + HEADER_SIZE <= n:
                head = decode(buf, o, seq, foff)
                if head is None:
                    raise self.corrupt(pos + o, "bad record header")
                crc, ln, _ts, kl, _fl = head
                end = o + HEADER_SIZE + kl + ln
                if foff > offset:  # cannot happen with a checked index: never guess
                    raise self.corrupt(pos + o, f"index points past offset {offset}")
                if foff + ln <= offset:  # wholly before the range: skip unread
                    o = end
                    seq += 1
                    foff += ln
                    continue
                if end > n:
                    break
                if crc32c(mv[o + 4 : end]) != crc:
                    raise self.corrupt(pos + o, "checksum mismatch")
                p0 = o + HEADER_SIZE + kl
                a = offset - foff
                b = min(stop - foff, ln)
                parts.append(mv[p0 + a : p0 + b])
                if b < ln:
                    self.cache = (foff, mv[p0 : p0 + ln])
                offset = foff + b
                o = end
                seq += 1
                foff += ln
            if o == 0 and n >= HEADER_SIZE:
                # one record larger than what was read: read all of it
                want = extent(buf, 0)
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


def parse_events(v: SegmentView, fd: int, pos: int, seq: int, foff: int, from_seq: int, limit: int):
    """Yield ``(events, pos, seq, foff)`` batches for seqs below ``limit`` (all verified
    once already, so any failure here is corruption)."""
    segment = v.segment
    need = READ_CHUNK
    while seq < limit:
        buf = os.pread(fd, max(need, READ_CHUNK), pos)
        n = len(buf)
        mv = memoryview(buf)
        o = 0
        out = []
        append = out.append
        while seq < limit and o + HEADER_SIZE <= n:
            head = decode(buf, o, seq, foff)
            if head is None:
                raise v.corrupt(pos + o, "bad record header")
            crc, ln, ts, kl, fl = head
            end = o + HEADER_SIZE + kl + ln
            if end > n:
                break
            if seq >= from_seq:
                if crc32c(mv[o + 4 : end]) != crc:
                    raise v.corrupt(pos + o, "checksum mismatch")
                p0 = o + HEADER_SIZE + kl
                key = buf[o + HEADER_SIZE : p0].decode("utf-8", "replace") if fl else None
                append(Event(segment, seq, buf[p0:end], key, foff, ts / 1e9))
            o = end
            seq += 1
            foff += ln
        if o == 0:
            if n < HEADER_SIZE:
                raise v.corrupt(pos, "log shorter than its verified length")
            need = extent(buf, 0)
            continue
        need = READ_CHUNK
        pos += o
        yield out, pos, seq, foff
