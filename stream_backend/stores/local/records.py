"""Record framing of the local store's segment logs (``segment-NNNNNN.log``).

Every event is one self-describing record, so a log can be verified and re-indexed from
its bytes alone::

    offset size field
    0      4    crc32c  over bytes [4, end): the rest of the header, the key, the payload
    4      4    payload length
    8      8    seq          (dense 0, 1, 2, ... inside the segment)
    16     8    file offset  (file-view offset of the payload's first byte)
    24     8    append time  (nanoseconds since the epoch)
    32     2    routing key length (bytes, UTF-8)
    34     1    magic 0xA5
    35     1    flags        (bit 0: a routing key is present, even an empty one)
    36     ..   routing key, then payload

Why seq and file offset in every header: a reader that jumps to a position taken from
the (sparse, rebuildable) offset index checks that the record there says the same seq and
file offset, so a damaged or stale index can never make it serve the wrong bytes.
"""

from __future__ import annotations

import struct

from crc32c import crc32c

HEADER = struct.Struct("<IIQQQHBB")
HEADER_SIZE = HEADER.size  # 36
_unpack = HEADER.unpack_from
MAGIC = 0xA5
FLAG_KEY = 0x01
MAX_KEY_BYTES = 0xFFFF
#: No record payload can be larger than this, whatever a stream's max_event_size says;
#: a header claiming more is damage, not a record.
MAX_PAYLOAD = 1 << 30

# scan outcomes
OK = 0
INCOMPLETE = 1  # not enough bytes (yet): a tail being written, or torn by a crash
BAD = 2  # complete but wrong: checksum, magic or position mismatch


def encode(payload: bytes, key: bytes | None, seq: int, foff: int, ts_ns: int) -> bytes:
    """One framed record (header + key + payload)."""
    kb = key if key is not None else b""
    head = HEADER.pack(
        0, len(payload), seq, foff, ts_ns, len(kb), MAGIC, FLAG_KEY if key is not None else 0
    )
    crc = crc32c(payload, crc32c(kb, crc32c(memoryview(head)[4:])))
    return struct.pack("<I", crc) + head[4:] + kb + payload


def encode_parts(
    payload: bytes, key: bytes | None, seq: int, foff: int, ts_ns: int
) -> tuple[bytes, ...]:
    """The same record as ``encode``, as (header + key, payload) when the payload is big,
    so the writer can hand both to ``pwritev`` without copying the payload."""
    if len(payload) < 16384:
        return (encode(payload, key, seq, foff, ts_ns),)
    kb = key if key is not None else b""
    head = HEADER.pack(
        0, len(payload), seq, foff, ts_ns, len(kb), MAGIC, FLAG_KEY if key is not None else 0
    )
    crc = crc32c(payload, crc32c(kb, crc32c(memoryview(head)[4:])))
    return struct.pack("<I", crc) + head[4:] + kb, payload


def decode(buf, o: int, seq: int, foff: int):
    """The header of the record that must sit at ``buf[o:]`` (seq ``seq``, file offset
    ``foff``) as ``(crc, payload length, append time ns, key length, flags)``, or None when
    the bytes there are not that record. ``buf[o:]`` must hold HEADER_SIZE bytes."""
    crc, ln, s, f, ts, kl, mg, fl = _unpack(buf, o)
    if mg != MAGIC or s != seq or f != foff or fl & ~FLAG_KEY or ln > MAX_PAYLOAD:
        return None
    return crc, ln, ts, kl, fl


def extent(buf, o: int) -> int:
    """Bytes the record at ``buf[o:]`` spans (header, key and payload), from its header:
    how much to read to hold the whole of a record larger than a read chunk."""
    _c, ln, _s, _f, _t, kl, _m, _fl = _unpack(buf, o)
    return HEADER_SIZE + kl + ln


def check(buf, o: int, n: int, seq: int, foff: int, verify: bool = True):
    """Classify the record at ``buf[o:]`` (``n`` = valid length of buf).

    Returns ``(status, end, length, ts_ns, key_len, flags, reason)``; ``end`` is the
    offset in buf just past the record (when the header is readable).
    """
    if o + HEADER_SIZE > n:
        return INCOMPLETE, o + HEADER_SIZE, 0, 0, 0, 0, "incomplete header"
    head = decode(buf, o, seq, foff)
    if head is None:
        _c, _l, s, f, _t, _k, mg, fl = _unpack(buf, o)
        if mg != MAGIC or fl & ~FLAG_KEY or _l > MAX_PAYLOAD:
            return BAD, o, 0, 0, 0, 0, "bad record header"
        return BAD, o, 0, 0, 0, 0, f"record says seq {s} offset {f}, expected seq {seq} offset {foff}"
    crc, ln, ts, kl, fl = head
    end = o + HEADER_SIZE + kl + ln
    if end > n:
        return INCOMPLETE, end, ln, ts, kl, fl, "incomplete record"
    if verify and crc32c(memoryview(buf)[o + 4 : end]) != crc:
        return BAD, end, ln, ts, kl, fl, "checksum mismatch"
    return OK, end, ln, ts, kl, fl, ""
