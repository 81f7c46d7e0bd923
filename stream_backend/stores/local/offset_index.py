"""The sparse offset index of a local segment (``segment-NNNNNN.idx``).

Maps a file-view offset (payloads concatenated) to ``(seq, offset inside event)`` and a
seq to its file-view offset in O(log n): a binary search over sparse entries
``(seq, file offset, log position)`` followed by a bounded walk over record headers.

Why sparse: an entry is kept for the first record that starts at least ``SPACING`` log
bytes after the previous entry, so a walk never covers more than ``SPACING`` plus one
record, and 10 GiB of 100-byte events needs ~220,000 entries (5 MiB), not 100 million.
The rule depends only on the records, so the writer, a reader extending its in-memory
copy and a rebuild all produce the same entries.

Why it can never serve wrong bytes: every record header repeats its seq and file offset,
and every entry is checked against the header it points at before it is used; a damaged,
truncated or stale index is dropped and rebuilt from the log.

File layout: a 64-byte header (magic, version, spacing, ``committed`` = log length that
was fsync'ed when the writer last acknowledged, crc32c) then 24-byte entries
``<QQQ seq, foff, pos``. The file is rewritten atomically on rebuild and otherwise
extended in place; it is not fsync'ed (the log is the truth, the index is derived).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_right

from crc32c import crc32c

from . import records

SPACING = 64 * 1024
IDX_MAGIC = b"SBSIDX01"
IDX_VERSION = 1
_IDX_HEAD = struct.Struct("<8sIIQ")
IDX_HEADER_SIZE = 64
_ENTRY = struct.Struct("<QQQ")
ENTRY_SIZE = _ENTRY.size


class SparseIndex:
    """In-memory entries: three parallel arrays, always starting with (0, 0, 0)."""

    __slots__ = ("seqs", "foffs", "poss")

    def __init__(self) -> None:
        self.seqs = array("Q", [0])
        self.foffs = array("Q", [0])
        self.poss = array("Q", [0])

    def __len__(self) -> int:
        return len(self.poss)

    def note(self, pos: int, seq: int, foff: int) -> bool:
        """Record the start of a record; keep it as an entry if the spacing rule says so."""
        if pos - self.poss[-1] >= SPACING:
            self.seqs.append(seq)
            self.foffs.append(foff)
            self.poss.append(pos)
            return True
        return False

    def entry(self, i: int) -> tuple[int, int, int]:
        return self.seqs[i], self.foffs[i], self.poss[i]

    def floor_offset(self, offset: int) -> int:
        """Index of the last entry whose file offset is <= offset."""
        return max(bisect_right(self.foffs, offset) - 1, 0)

    def floor_seq(self, seq: int) -> int:
        return max(bisect_right(self.seqs, seq) - 1, 0)

    def floor_pos(self, pos: int) -> int:
        return max(bisect_right(self.poss, pos) - 1, 0)

    def truncate(self, n: int) -> None:
        del self.seqs[n:], self.foffs[n:], self.poss[n:]

    def entries_bytes(self, start: int) -> bytes:
        out = bytearray()
        for i in range(start, len(self.poss)):
            out += _ENTRY.pack(self.seqs[i], self.foffs[i], self.poss[i])
        return bytes(out)


def _header(committed: int) -> bytes:
    head = _IDX_HEAD.pack(IDX_MAGIC, IDX_VERSION, SPACING, committed)
    return (head + struct.pack("<I", crc32c(head))).ljust(IDX_HEADER_SIZE, b"\0")


def read_committed(fd: int) -> int | None:
    """The ``committed`` log length from an open index file, None if unreadable."""
    try:
        raw = os.pread(fd, IDX_HEADER_SIZE, 0)
    except OSError:
        return None
    return _parse_header(raw)


def _parse_header(raw: bytes) -> int | None:
    if len(raw) < _IDX_HEAD.size + 4:
        return None
    magic, version, spacing, committed = _IDX_HEAD.unpack_from(raw, 0)
    (crc,) = struct.unpack_from("<I", raw, _IDX_HEAD.size)
    if magic != IDX_MAGIC or version != IDX_VERSION or spacing != SPACING:
        return None
    if crc32c(raw[: _IDX_HEAD.size]) != crc:
        return None
    return committed


def load(path: str, log_size: int) -> tuple[SparseIndex, int] | None:
    """Read an index file; None if it is missing, damaged, stale or inconsistent."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    committed = _parse_header(raw)
    if committed is None or committed > log_size:
        return None
    body = memoryview(raw)[IDX_HEADER_SIZE:]
    body = body[: len(body) - len(body) % ENTRY_SIZE]  # a torn last entry is dropped
    flat = array("Q")
    flat.frombytes(body)
    if flat.itemsize != 8:  # pragma: no cover - every platform we run on has 8-byte Q
        return None
    if sys.byteorder != "little":  # pragma: no cover
        flat.byteswap()
    idx = SparseIndex()
    if len(flat) < 3 or flat[0] != 0 or flat[1] != 0 or flat[2] != 0:
        return None
    seqs, foffs, poss = flat[0::3], flat[1::3], flat[2::3]
    # entries beyond the committed length were never acknowledged: drop them
    n = bisect_right(poss, committed) if committed else 1
    ps, ss, fs = poss[0], seqs[0], foffs[0]
    for i in range(1, n):
        p, s, fo = poss[i], seqs[i], foffs[i]
        if p - ps < SPACING or s <= ss or fo < fs or fo - fs > p - ps:
            return None
        ps, ss, fs = p, s, fo
    idx.seqs, idx.foffs, idx.poss = seqs[:n], foffs[:n], poss[:n]
    return idx, committed


def write_new(path: str, idx: SparseIndex, committed: int) -> None:
    """Replace the index file atomically (used after a rebuild)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(_header(committed))
        f.write(idx.entries_bytes(0))
    os.replace(tmp, path)


def write_update(fd: int, idx: SparseIndex, start: int, committed: int) -> None:
    """Extend the index file in place: entries from ``start`` on, then the header."""
    data = idx.entries_bytes(start)
    if data:
        os.pwrite(fd, data, IDX_HEADER_SIZE + start * ENTRY_SIZE)
    os.pwrite(fd, _header(committed), 0)


def walk_headers(fd: int, pos: int, seq: int, foff: int, end_pos: int, where: str):
    """Yield ``(pos, seq, foff, length)`` of records from ``pos`` up to ``end_pos``.

    Checks the header chain (magic, seq, file offset) but not checksums: it only maps
    positions; whoever returns bytes verifies them. Damage raises CorruptionError.
    """
    from ...errors import CorruptionError

    chunk = 256 * 1024
    while pos < end_pos:
        buf = os.pread(fd, min(chunk, end_pos - pos), pos)
        n = len(buf)
        o = 0
        while o + records.HEADER_SIZE <= n:
            head = records.decode(buf, o, seq, foff)
            if head is None:
                raise CorruptionError(f"damaged record header in {where} at byte {pos + o}")
            ln, kl = head[1], head[3]
            yield pos + o, seq, foff, ln
            o += records.HEADER_SIZE + kl + ln
            seq += 1
            foff += ln
        if o == 0 and n < records.HEADER_SIZE:
            raise CorruptionError(f"truncated record header in {where} at byte {pos}")
        pos += o


class LocalOffsetIndex:
    """The OffsetIndex of one local segment, as of when it was taken.

    ``view`` supplies the log descriptor and entries checked against their records
    (``fd``, ``entry_for_offset``, ``entry_for_seq``).
    """

    def __init__(self, view, length: int, tail_seq: int, end_pos: int, where: str):
        self._view = view
        self._length = length
        self._tail_seq = tail_seq
        self._end_pos = end_pos
        self._where = where

    @property
    def length(self) -> int:
        return self._length

    @property
    def tail_seq(self) -> int:
        return self._tail_seq

    def locate(self, offset: int) -> tuple[int, int]:
        if offset < 0 or offset > self._length:
            raise ValueError(f"offset {offset} outside 0..{self._length}")
        if offset == self._length:
            return self._tail_seq, 0
        seq, foff, pos = self._view.entry_for_offset(offset)
        for _p, s, f, ln in walk_headers(self._view.fd, pos, seq, foff, self._end_pos, self._where):
            if f <= offset < f + ln:
                return s, offset - f
        raise ValueError(f"offset {offset} not found in {self._where}")  # pragma: no cover

    def offset_of(self, seq: int) -> int:
        if seq < 0 or seq > self._tail_seq:
            raise ValueError(f"seq {seq} outside 0..{self._tail_seq}")
        if seq == self._tail_seq:
            return self._length
        s0, foff, pos = self._view.entry_for_seq(seq)
        for _p, s, f, _ln in walk_headers(self._view.fd, pos, s0, foff, self._end_pos, self._where):
            if s == seq:
                return f
        raise ValueError(f"seq {seq} not found in {self._where}")  # pragma: no cover
