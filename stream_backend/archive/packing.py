"""Packing a segment's events into data objects (docs/format.md, "Data objects"): records
framed and chunked, objects cut at their target size with events spilling over, and each
object's ``ObjectInfo`` known once its bytes are drained."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import crc32c as _crc32c
import zstandard

from .. import settings
from .format import (
    COMPRESSIONS,
    CRC,
    DEFAULT_CHUNK_SIZE,
    FLAG_ROUTING_KEY,
    FLAG_TIMESTAMP,
    HEAD_NO_CRC,
    HEADER_SIZE,
    MAGIC,
    MAX_KEY_BYTES,
    ZSTD_LEVEL,
    ObjectInfo,
    index_interval,
)
from .layout import object_key


def _normalize(ev: Any) -> tuple[int, bytes, bytes | None, int | None]:
    """(seq, payload, routing key bytes, timestamp ns) from a tuple or an event-like object.

    Accepts ``(seq, payload[, routing_key[, timestamp]])`` or anything with ``seq``,
    ``payload`` and optionally ``routing_key`` and ``timestamp_ns`` or ``timestamp``
    (float seconds), like the store's Event.
    """
    if isinstance(ev, tuple):
        seq, payload = ev[0], ev[1]
        rkey = ev[2] if len(ev) > 2 else None
        ts = ev[3] if len(ev) > 3 else None
        ts_ns = None if ts is None else (ts if isinstance(ts, int) else round(ts * 1e9))
    else:
        seq, payload = ev.seq, ev.payload
        rkey = getattr(ev, "routing_key", None)
        ts_ns = getattr(ev, "timestamp_ns", None)
        if ts_ns is None:
            ts = getattr(ev, "timestamp", None)
            ts_ns = None if ts is None else round(ts * 1e9)
    kb = rkey.encode("utf-8") if rkey is not None else None
    if kb is not None and len(kb) > MAX_KEY_BYTES:
        raise ValueError(f"routing key of event {seq} longer than {MAX_KEY_BYTES} bytes")
    return seq, payload if isinstance(payload, bytes) else bytes(payload), kb, ts_ns


class _Peekable:
    def __init__(self, events: Iterable[Any], end_seq: int | None):
        self._it = iter(events)
        self._end = end_seq
        self._head: tuple | None = None
        self._done = False
        self.last_seq: int | None = None

    def peek(self) -> tuple | None:
        if self._head is None and not self._done:
            try:
                ev = next(self._it)
            except StopIteration:
                self._done = True
                return None
            if type(ev) is not tuple and not hasattr(ev, "timestamp_ns"):
                # the store's Event, inlined (this runs once per event)
                seq, payload = ev.seq, ev.payload
                rkey = getattr(ev, "routing_key", None)
                t = getattr(ev, "timestamp", None)
                kb = rkey.encode("utf-8") if rkey is not None else None
                if kb is not None and len(kb) > MAX_KEY_BYTES:
                    raise ValueError(f"routing key of event {seq} longer than {MAX_KEY_BYTES} bytes")
                ev = (seq, payload if type(payload) is bytes else bytes(payload), kb,
                      None if t is None else round(t * 1e9))
            else:
                ev = _normalize(ev)
            if self._end is not None and ev[0] >= self._end:
                self._done = True
                return None
            if self.last_seq is not None and ev[0] <= self.last_seq:
                raise ValueError(f"event seqs must increase: {ev[0]} after {self.last_seq}")
            self._head = ev
        return self._head

    def advance(self) -> None:
        assert self._head is not None
        self.last_seq = self._head[0]
        self._head = None


class PackedObject:
    """One data object being produced. Drain :meth:`chunks` (or :meth:`parts`) once;
    afterwards :attr:`info` holds size, crc32c and the end position."""

    def __init__(self, packer: "SegmentPacker", key: str, first_seq: int, first_offset: int):
        self._packer = packer
        self.key = key
        self.first_seq = first_seq
        self.first_offset = first_offset
        self.info: ObjectInfo | None = None
        self._started = False

    @property
    def done(self) -> bool:
        return self.info is not None

    def chunks(self) -> Iterator[bytes]:
        """The stored bytes, as a stream of chunks of about the packer's chunk size."""
        if self._started:
            raise RuntimeError(f"object {self.key} was already read; pack again to re-read it")
        self._started = True
        return self._packer._produce(self)

    def parts(self, part_size: int) -> Iterator[bytes]:
        """The stored bytes re-cut into pieces of exactly ``part_size`` (the last may be
        shorter) — S3 multipart parts. Deterministic, so a resumed upload can skip the
        parts ListParts reports and send the rest."""
        if part_size == self._packer.chunk_size:  # the packer cuts exact pieces itself
            if self._started:
                raise RuntimeError(f"object {self.key} was already read; pack again to re-read it")
            self._started = True
            empty = True
            for piece in self._packer._produce(self, exact=True):
                empty = False
                yield piece
            if empty:
                yield b""
            return
        buf = bytearray()
        for chunk in self.chunks():
            buf += chunk
            while len(buf) >= part_size:
                yield bytes(buf[:part_size])
                del buf[:part_size]
        if buf or self.info.size == 0:
            yield bytes(buf)

    def read(self) -> bytes:
        """All stored bytes at once (small objects and tests only)."""
        return b"".join(self.chunks())


class SegmentPacker:
    """Pack one segment's events into data objects, yielded one at a time.

    ``events`` yields events with increasing seqs, starting with event ``start_seq``
    (whose first ``start_offset`` bytes are skipped: they ended the previous object);
    events with seq >= ``end_seq`` are not packed (the first of them is read from the
    iterator and dropped, so pass an iterator that may be read one event past the end).
    Each yielded :class:`PackedObject`
    must be drained (``chunks()``/``parts()``) before the next one is asked for.

    ``object_size`` bounds the raw (uncompressed) record bytes of an object: an object
    holds as many records as fit, and the event that does not fit is split. An object
    exceeds the target only when not even a record with one payload byte fits into an
    empty object (target smaller than header + routing key + 1).

    Resuming at an object boundary — ``start_seq, start_offset = info.end_seq,
    info.end_offset`` of the last finished object — yields exactly the objects (keys and
    bytes) an uninterrupted run would have yielded after it. The end position of the
    last object is ``(end_seq, 0)``, or ``(last seq + 1, 0)`` when ``end_seq`` is None.
    """

    def __init__(
        self,
        events: Iterable[Any],
        segment: int,
        start_seq: int = 0,
        start_offset: int = 0,
        object_size: int = settings.DEFAULT_OBJECT_SIZE,
        compression: str = "none",
        end_seq: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ):
        if object_size < 1:
            raise ValueError("object size must be at least 1 byte")
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")
        self.segment = segment
        self.object_size = object_size
        self.compression = compression
        self.chunk_size = max(1, chunk_size)
        self.end_seq = end_seq
        self._events = _Peekable(events, end_seq)
        self._offset = start_offset
        self._start_seq = start_seq
        self._current: PackedObject | None = None
        first = self._events.peek()
        if first is not None:
            if first[0] < start_seq:
                raise ValueError(f"first event seq {first[0]} is before the start seq {start_seq}")
            if start_offset:
                if first[0] != start_seq:
                    raise ValueError(f"resuming inside event {start_seq} but the first event is {first[0]}")
                if start_offset >= len(first[1]):
                    raise ValueError(f"start offset {start_offset} is not inside event {start_seq}")
        elif start_offset:
            raise ValueError(f"resuming inside event {start_seq} but no events were given")

    def __iter__(self) -> Iterator[PackedObject]:
        while True:
            if self._current is not None and not self._current.done:
                raise RuntimeError(f"drain object {self._current.key} before asking for the next one")
            ev = self._events.peek()
            if ev is None:
                return
            obj = PackedObject(self, object_key(self.segment, ev[0], self._offset, self.compression == "zstd"), ev[0], self._offset)
            self._current = obj
            yield obj

    def _produce(self, obj: PackedObject, exact: bool = False) -> Iterator[bytes]:
        """The object's stored bytes. One tight loop per record (header packed, crc32c
        chained over header, key and chunk without joining them) because at ~100-byte
        events the per-record Python work, not the I/O, bounds the export rate.
        ``exact``: every piece but the last is exactly ``chunk_size`` bytes (S3 parts,
        passed on without re-cutting)."""
        target = self.object_size
        compress = self.compression == "zstd"
        cobj = (
            zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, write_content_size=False, threads=0).compressobj()
            if compress else None
        )
        cs = self.chunk_size
        interval = index_interval(target)
        next_mark = 0
        index: list[list[int]] = []
        used = 0  # raw bytes in this object
        payload_bytes = 0
        records = 0
        first_time = last_time = None
        size = 0
        crc = 0
        crcf = _crc32c.crc32c
        pack_head = HEAD_NO_CRC.pack
        pack_crc = CRC.pack
        segment = self.segment
        out = bytearray()  # stored bytes not yet handed out
        raw = bytearray() if compress else out  # record bytes not yet compressed

        def cut(final: bool) -> Iterator[bytes]:
            nonlocal out, size, crc
            if exact:
                while len(out) >= cs:
                    piece = bytes(out[:cs])
                    del out[:cs]
                    size += cs
                    crc = crcf(piece, crc)
                    yield piece
            elif len(out) >= cs:
                piece = bytes(out)
                out.clear()
                size += len(piece)
                crc = crcf(piece, crc)
                yield piece
            if final and out:
                piece = bytes(out)
                out.clear()
                size += len(piece)
                crc = crcf(piece, crc)
                yield piece

        def feed() -> Iterator[bytes]:
            # compressed: hand the accumulated records to zstd, then cut its output
            if raw:
                out.extend(cobj.compress(raw))
                raw.clear()
            yield from cut(False)

        events = self._events
        ev = events.peek()
        while ev is not None:
            seq, payload, rkey, ts = ev
            plen = len(payload)
            off = self._offset
            remaining = plen - off
            if rkey is not None:
                klen = len(rkey)
                flags = FLAG_ROUTING_KEY
            else:
                klen = 0
                flags = 0
            if used > 0 and used + HEADER_SIZE + klen + (1 if remaining else 0) > target:
                break  # the object is full: this record starts the next one
            room = target - used - HEADER_SIZE - klen
            n = (remaining if remaining <= room else max(room, 1)) if remaining else 0
            if not compress and used >= next_mark:
                index.append([used, payload_bytes])
                next_mark = used + interval
            if ts is not None:
                flags |= FLAG_TIMESTAMP
                if first_time is None:
                    first_time = ts
                last_time = ts
                head = pack_head(MAGIC, segment, seq, plen, off, n, klen, flags, ts)
            else:
                head = pack_head(MAGIC, segment, seq, plen, off, n, klen, flags, 0)
            chunk = payload if n == plen else memoryview(payload)[off : off + n]
            c = crcf(head)
            if klen:
                c = crcf(rkey, c)
            if n:
                c = crcf(chunk, c)
            raw += head
            raw += pack_crc(c)
            if klen:
                raw += rkey
            if n:
                if exact and not compress and n >= cs:
                    # a large chunk: fill the current piece, then pass whole pieces on
                    mv = memoryview(payload)[off : off + n]
                    pos = 0
                    while pos < n:
                        take = min(n - pos, cs - len(out)) if len(out) < cs else 0
                        if take:
                            out += mv[pos : pos + take]
                            pos += take
                        yield from cut(False)
                else:
                    raw += chunk
            used += HEADER_SIZE + klen + n
            payload_bytes += n
            records += 1
            if compress:
                if len(raw) >= cs:
                    yield from feed()
            elif len(out) >= cs:
                yield from cut(False)
            if n == remaining:
                self._offset = 0
                events.advance()
                ev = events.peek()
            else:
                self._offset = off + n
        if cobj is not None:
            if raw:
                out.extend(cobj.compress(raw))
                raw.clear()
            out.extend(cobj.flush())
        yield from cut(True)
        nxt = events.peek()
        if nxt is not None:
            end_seq, end_offset = nxt[0], self._offset
        else:
            end_seq = self.end_seq if self.end_seq is not None else (events.last_seq + 1)
            end_offset = 0
        obj.info = ObjectInfo(
            key=obj.key, size=size, crc32c=crc, raw_size=used, first_seq=obj.first_seq,
            first_offset=obj.first_offset, end_seq=end_seq, end_offset=end_offset, records=records,
            payload_bytes=payload_bytes, first_time=first_time, last_time=last_time, index=index,
        )
