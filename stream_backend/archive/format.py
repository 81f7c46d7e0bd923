"""Record framing and data objects (docs/format.md, "Records" and "Data objects").

A data object is a sequence of records; a record is one chunk of one event. Objects are
filled to a target size and an event that does not fit is split (spillover), so object
size and event size never have to match. Everything here is a pure function of the
events and the start position: the same input always yields the same keys and bytes,
which is what makes a resumed export byte-identical to an uninterrupted one.

The packer streams: an object's bytes come out as chunks while the caller uploads them,
so memory is bounded by the chunk size plus one event, never by the object size.

This module takes plain values (segment, seq, payload, routing key, timestamp) and knows
nothing about stores or S3.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable, Iterator

import crc32c as _crc32c
import zstandard

from ..errors import CorruptionError, FormatVersionError
from .layout import parse_object_key

FORMAT_VERSION = 2  # the newest this code reads; see version_for()
SHAPE_VERSION = 2  # documents that record a Pravega stream's segment graph


def version_for(has_shape: bool) -> int:
    """The version a document is written with: 1 unless it records a segment graph, so
    archives of fixed streams stay readable by readers of version 1 (docs/format.md)."""
    return SHAPE_VERSION if has_shape else 1

MAGIC = b"SBR1"
# magic, segment, seq, event size, chunk offset, chunk length, key length, flags,
# timestamp ns, crc32c(header without crc + key + chunk)
HEADER = struct.Struct("<4sIQQQQHHqI")
HEADER_SIZE = HEADER.size  # 56
_CRC_OFFSET = HEADER_SIZE - 4
HEAD_NO_CRC = struct.Struct("<4sIQQQQHHq")
CRC = struct.Struct("<I")

FLAG_ROUTING_KEY = 0x1  # a routing key is present (tells None from "")
FLAG_TIMESTAMP = 0x2  # timestamp_ns is meaningful (tells None from 0)
KNOWN_FLAGS = FLAG_ROUTING_KEY | FLAG_TIMESTAMP

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_KEY_BYTES = 0xFFFF
DEFAULT_CHUNK_SIZE = 1024 * 1024
ZSTD_LEVEL = 3
COMPRESSIONS = ("none", "zstd")
_READ_PIECE = 1024 * 1024  # never trust a length field with one big allocation


def crc32c(data: bytes | memoryview, value: int = 0) -> int:
    return _crc32c.crc32c(data, value=value)


def index_interval(object_size: int) -> int:
    """Raw bytes between entries of an object's sparse record index (a function of the
    object size only, so resumed exports write the same index)."""
    return max(64 * 1024, object_size // 32)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """One decoded record: a chunk of one event."""

    segment: int
    seq: int
    event_size: int
    chunk_offset: int
    chunk: bytes
    routing_key: str | None
    timestamp_ns: int | None
    #: index of the record inside its object, and its byte position in the raw
    #: (uncompressed) object — for error messages and ranged reads
    index: int = 0
    position: int = 0
    #: key of the object the record came from (named in error messages)
    key: str = ""

    @property
    def size(self) -> int:
        return HEADER_SIZE + len(self.routing_key.encode() if self.routing_key else b"") + len(self.chunk)

    @property
    def ends_event(self) -> bool:
        return self.chunk_offset + len(self.chunk) == self.event_size


def encode_record_head(
    segment: int,
    seq: int,
    event_size: int,
    chunk_offset: int,
    chunk: bytes | memoryview,
    routing_key: bytes | None,
    timestamp_ns: int | None,
) -> bytes:
    """Header + routing key of one record (the chunk follows). Split from the chunk so
    large chunks are never copied."""
    flags = 0
    key = b""
    if routing_key is not None:
        flags |= FLAG_ROUTING_KEY
        key = routing_key
    if timestamp_ns is not None:
        flags |= FLAG_TIMESTAMP
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"routing key longer than {MAX_KEY_BYTES} bytes")
    head = HEAD_NO_CRC.pack(
        MAGIC, segment, seq, event_size, chunk_offset, len(chunk), len(key), flags,
        timestamp_ns if timestamp_ns is not None else 0,
    )
    crc = crc32c(chunk, crc32c(key, crc32c(head)))
    return head + CRC.pack(crc) + key


def encode_record(
    segment: int,
    seq: int,
    event_size: int,
    chunk_offset: int,
    chunk: bytes,
    routing_key: str | None = None,
    timestamp_ns: int | None = None,
) -> bytes:
    """One whole record as bytes."""
    key = routing_key.encode("utf-8") if routing_key is not None else None
    return encode_record_head(segment, seq, event_size, chunk_offset, chunk, key, timestamp_ns) + bytes(chunk)


class _Blocks:
    """Reads a stream in large blocks and hands out exact byte counts (few calls per
    record, and a garbled length field costs at most the rest of the object, never a
    huge allocation up front)."""

    def __init__(self, f: Any, block: int = _READ_PIECE):
        self.f = f
        self.block = block
        self.buf = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        """``n`` bytes, or fewer at EOF."""
        end = self.pos + n
        if end <= len(self.buf):
            out = self.buf[self.pos:end]
            self.pos = end
            return out
        parts = [self.buf[self.pos:]]
        have = len(parts[0])
        self.buf, self.pos = b"", 0
        while have < n:
            block = self.f.read(max(self.block, min(n - have, 16 * self.block)))
            if not block:
                break
            need = n - have
            if len(block) > need:
                parts.append(block[:need])
                self.buf, self.pos = block, need
                have = n
            else:
                parts.append(block)
                have += len(block)
        return b"".join(parts)


class _CountingReader:
    """Wraps the stored bytes: counts them and keeps their crc32c while they are read."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.size = 0
        self.crc = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if data:
            self.size += len(data)
            self.crc = crc32c(data, self.crc)
        return data

    def readinto(self, b) -> int:  # zstandard may use it
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(_READ_PIECE):
            pass


def _as_file(src: Any) -> BinaryIO:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(src))
    return src


def iter_records(
    src: Any,
    key: str = "<object>",
    *,
    compressed: bool | None = None,
    expected_size: int | None = None,
    expected_crc32c: int | str | None = None,
    expected_records: int | None = None,
    start_position: int = 0,
    start_index: int = 0,
) -> Iterator[Record]:
    """Decode the records of one object from bytes or a file-like.

    ``compressed`` None means: decide from the key suffix, else from the zstd magic.
    Any damage raises CorruptionError naming ``key`` and the record (index and byte
    position in the raw object). With ``expected_*`` (from the manifest) a truncation at
    a record boundary or a change in the stored bytes is detected too, after the last
    record. ``start_position``/``start_index`` describe where ``src`` starts inside the
    raw object when it is a ranged read (then no whole-object check is possible).
    """
    raw = _CountingReader(_as_file(src))
    if compressed is None:
        if key.endswith(".zst"):
            compressed = True
        elif isinstance(src, (bytes, bytearray, memoryview)):
            compressed = bytes(src[:4]) == ZSTD_MAGIC
        else:
            compressed = False
    if compressed:
        f: Any = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=False, closefd=False)
    else:
        f = raw
    blocks = _Blocks(f)
    take = blocks.take
    crc = _crc32c.crc32c
    pos, index = start_position, start_index

    def bad(msg: str) -> CorruptionError:
        return CorruptionError(f"corrupt archive object {key}: record {index} at byte {pos}: {msg}")

    try:
        while True:
            head = take(HEADER_SIZE)
            if not head:
                break
            if len(head) < HEADER_SIZE:
                raise bad(f"truncated record header ({len(head)} of {HEADER_SIZE} bytes)")
            magic, segment, seq, event_size, chunk_offset, chunk_len, key_len, flags, ts, want = HEADER.unpack(head)
            if magic != MAGIC:
                # newer record formats come with a newer manifest version, which is
                # refused before any object is read; here a bad magic is damage
                raise bad("bad record magic")
            if chunk_offset + chunk_len > event_size:
                # garbled lengths: report as damage before trusting them for a read
                raise bad("chunk extends beyond its event")
            body = take(key_len + chunk_len)
            if len(body) < key_len + chunk_len:
                raise bad(f"truncated record ({len(body)} of {key_len + chunk_len} body bytes)")
            if crc(body, value=crc(head[:_CRC_OFFSET])) != want:
                raise bad("checksum mismatch")
            if flags & ~KNOWN_FLAGS:
                raise FormatVersionError(
                    f"archive object {key} record {index} uses flags {flags:#x} unknown to this "
                    "version: upgrade stream-backend"
                )
            if flags & FLAG_ROUTING_KEY:
                try:
                    rkey: str | None = body[:key_len].decode("utf-8")
                except UnicodeDecodeError:
                    raise bad("routing key is not UTF-8") from None
            elif key_len:
                raise bad("routing key bytes without the routing-key flag")
            else:
                rkey = None
            yield Record(
                segment, seq, event_size, chunk_offset, body[key_len:], rkey,
                ts if flags & FLAG_TIMESTAMP else None, index, pos, key,
            )
            pos += HEADER_SIZE + key_len + chunk_len
            index += 1
        if compressed:
            raw.drain()  # count trailing bytes too: they must match the manifest
    except zstandard.ZstdError as exc:
        raise bad(f"zstd: {exc}") from None
    if expected_records is not None and index != expected_records:
        raise CorruptionError(
            f"corrupt archive object {key}: {index} records, manifest says {expected_records} (truncated?)"
        )
    if expected_size is not None and raw.size != expected_size:
        raise CorruptionError(f"corrupt archive object {key}: {raw.size} bytes, manifest says {expected_size}")
    if expected_crc32c is not None:
        want = int(expected_crc32c, 16) if isinstance(expected_crc32c, str) else expected_crc32c
        if raw.crc != want:
            raise CorruptionError(f"corrupt archive object {key}: crc32c {raw.crc:08x}, manifest says {want:08x}")


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ArchivedEvent:
    """An event as read back from an archive (plain values, like the store's Event)."""

    segment: int
    seq: int
    payload: bytes
    routing_key: str | None = None
    timestamp_ns: int | None = None

    @property
    def timestamp(self) -> float | None:
        return None if self.timestamp_ns is None else self.timestamp_ns / 1e9


def iter_events(records: Iterable[Record], key: str = "<archive>", *, skip_partial_start: bool = False) -> Iterator[ArchivedEvent]:
    """Reassemble events from records, across spillover and object boundaries.

    Checks that chunks continue each other exactly (same event, contiguous offsets) and
    that seqs increase; an event still incomplete at the end is a truncation.
    ``skip_partial_start`` drops the tail of an event whose start lies before ``records``
    (reading from the middle of a segment); otherwise that is corruption.
    """
    pending: list[bytes] = []
    cur: Record | None = None
    have = 0
    last_seq = -1
    last_rec: Record | None = None
    skipping = skip_partial_start

    def where(r: Record) -> str:
        return f"{r.key or key}: record {r.index} at byte {r.position}"

    for r in records:
        last_rec = r
        if skipping and r.chunk_offset > 0:
            last_seq = r.seq
            continue
        skipping = False
        if cur is None:
            if r.chunk_offset != 0:
                raise CorruptionError(
                    f"corrupt archive object {where(r)}: continues event seq {r.seq} whose start is missing"
                )
            if r.seq <= last_seq:
                raise CorruptionError(f"corrupt archive object {where(r)}: seq {r.seq} after seq {last_seq}")
            cur, pending, have = r, [r.chunk], len(r.chunk)
        else:
            if (
                r.seq != cur.seq
                or r.segment != cur.segment
                or r.event_size != cur.event_size
                or r.chunk_offset != have
                or r.routing_key != cur.routing_key
                or r.timestamp_ns != cur.timestamp_ns
            ):
                raise CorruptionError(
                    f"corrupt archive object {where(r)}: expected byte {have} of event seq {cur.seq}, "
                    f"found byte {r.chunk_offset} of seq {r.seq}"
                )
            pending.append(r.chunk)
            have += len(r.chunk)
        if have == cur.event_size:
            payload = pending[0] if len(pending) == 1 else b"".join(pending)
            yield ArchivedEvent(cur.segment, cur.seq, payload, cur.routing_key, cur.timestamp_ns)
            last_seq = cur.seq
            cur, pending, have = None, [], 0
    if cur is not None:
        where_ = last_rec.key if last_rec is not None and last_rec.key else key
        raise CorruptionError(
            f"corrupt archive {where_}: event seq {cur.seq} ends after {have} of {cur.event_size} bytes (truncated)"
        )


def read_objects(objects: Iterable[tuple[str, Any]], **kw) -> Iterator[ArchivedEvent]:
    """Events of consecutive objects ``(key, bytes-or-file)`` of one segment, in order."""

    def records() -> Iterator[Record]:
        for key, src in objects:
            yield from iter_records(src, key)

    return iter_events(records(), **kw)


# --------------------------------------------------------------------------- objects


@dataclass
class ObjectInfo:
    """What the manifest records about one data object (known after draining it)."""

    key: str
    size: int  # stored bytes
    crc32c: int  # of the stored bytes
    raw_size: int  # uncompressed record bytes
    first_seq: int
    first_offset: int
    end_seq: int
    end_offset: int
    records: int
    payload_bytes: int
    first_time: int | None = None  # event timestamps (ns) of the first and last record
    last_time: int | None = None
    #: sparse record index of an uncompressed object: [raw position, payload position]
    #: pairs at record starts, for ranged reads that skip to the right record
    index: list[list[int]] = field(default_factory=list)

    @property
    def events_started(self) -> int:
        """Events whose first byte lies in this object: every record but a leading
        continuation of an event begun in the object before."""
        return self.records - (1 if self.first_offset > 0 else 0)

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "size": self.size,
            "crc32c": f"{self.crc32c:08x}",
            "raw_size": self.raw_size,
            "first_seq": self.first_seq,
            "first_offset": self.first_offset,
            "end_seq": self.end_seq,
            "end_offset": self.end_offset,
            "records": self.records,
            "payload_bytes": self.payload_bytes,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "index": [list(p) for p in self.index],
        }

    @classmethod
    def from_json(cls, d: dict) -> "ObjectInfo":
        return cls(
            key=d["key"], size=int(d["size"]), crc32c=int(d["crc32c"], 16), raw_size=int(d["raw_size"]),
            first_seq=int(d["first_seq"]), first_offset=int(d["first_offset"]),
            end_seq=int(d["end_seq"]), end_offset=int(d["end_offset"]), records=int(d["records"]),
            payload_bytes=int(d["payload_bytes"]), first_time=d.get("first_time"), last_time=d.get("last_time"),
            index=[[int(a), int(b)] for a, b in d.get("index", [])],
        )

    @property
    def compressed(self) -> bool:
        return parse_object_key(self.key)[3]
