"""What Pravega's bytes and names look like to us: the 8-byte event framing and the offset
index built over it (file view <-> seq), segment ids and the segment graph's nodes, and
controller URIs."""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...errors import CorruptionError, UsageError
from ..base import DEFAULT_MAX_EVENT_SIZE

#: every event starts with ``int32 type = 0, int32 length`` (big-endian)
HEADER = 8
_HEAD = struct.Struct(">ii")


class PravegaOffsetIndex:
    """Dense index of one segment: seq (byte offset of the event) and file-view offset of
    every event, plus payload lengths. O(log n) both ways."""

    def __init__(self, head: int = 0) -> None:
        self.head = head  # file-view offset 0 is the event at this seq
        self.seqs = array("q")
        self.foffs = array("q")
        self.lens = array("q")
        self.scanned_to = head  # raw offset up to which events are indexed
        self.final = False  # scanned to the end of a sealed stream: nothing can follow
        self._length = 0
        # non-empty events only, for locate()
        self._ne_foffs = array("q")
        self._ne_idx = array("q")

    def add(self, seq: int, size: int) -> None:
        if size:
            self._ne_foffs.append(self._length)
            self._ne_idx.append(len(self.seqs))
        self.seqs.append(seq)
        self.foffs.append(self._length)
        self.lens.append(size)
        self._length += size
        self.scanned_to = seq + HEADER + size

    @property
    def length(self) -> int:
        return self._length

    @property
    def tail_seq(self) -> int:
        return self.scanned_to

    @property
    def events(self) -> int:
        return len(self.seqs)

    def events_from(self, seq: int) -> int:
        """Events at or after ``seq``."""
        return len(self.seqs) - bisect_left(self.seqs, seq)

    def locate(self, offset: int) -> tuple[int, int]:
        if offset < 0 or offset > self._length:
            raise ValueError(f"offset {offset} outside [0, {self._length}]")
        if offset == self._length:
            return self.scanned_to, 0
        j = bisect_right(self._ne_foffs, offset) - 1
        i = self._ne_idx[j]
        return self.seqs[i], offset - self.foffs[i]

    def offset_of(self, seq: int) -> int:
        if seq >= self.scanned_to:
            if seq == self.scanned_to:
                return self._length
            raise ValueError(f"seq {seq} beyond the indexed tail {self.scanned_to}")
        i = bisect_left(self.seqs, seq)
        if i < len(self.seqs) and self.seqs[i] == seq:
            return self.foffs[i]
        # between events: the next event's offset
        return self.foffs[i] if i < len(self.seqs) else self._length


def parse_events(raw: bytes, base: int):
    """Yield (seq, payload) of complete events in ``raw`` (which starts at segment offset
    ``base``) and finally return the offset of the first incomplete byte."""
    pos, n = 0, len(raw)
    mv = memoryview(raw)
    while pos + HEADER <= n:
        typ, size = _HEAD.unpack_from(raw, pos)
        if typ != 0 or size < 0 or size > DEFAULT_MAX_EVENT_SIZE:
            raise CorruptionError(
                f"segment data at offset {base + pos} is not a Pravega event header (type {typ}, length {size})"
            )
        if pos + HEADER + size > n:
            break
        yield base + pos, bytes(mv[pos + HEADER : pos + HEADER + size])
        pos += HEADER + size
    return base + pos


def parse_controller(uri: str) -> tuple[str, str, int, bool]:
    """-> (client URI, host, port, tls). Accepts tcp://h:p, tls://h:p, h:p (tcp)."""
    raw = (uri or "").strip()
    if not raw:
        raise UsageError("empty Pravega controller URI")
    if "://" not in raw:
        raw = "tcp://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port or 9090
    except ValueError:
        raise UsageError(f"bad Pravega controller URI {uri!r} (expected tcp://host:port or tls://host:port)") from None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"bad Pravega controller URI {uri!r} (expected tcp://host:port or tls://host:port)")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}", host, port, parts.scheme == "tls"


@dataclass(frozen=True)
class Segment:
    """One node of a stream's segment graph, as read at one moment."""

    id: int
    low: float
    high: float
    start: int  # first readable offset
    end: int  # write offset
    sealed: bool
    predecessors: tuple[int, ...]  # ids
    successors: tuple[int, ...]  # ids

    @property
    def number(self) -> int:
        return self.id & 0xFFFFFFFF

    @property
    def epoch(self) -> int:
        return self.id >> 32
