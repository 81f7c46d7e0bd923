"""Test data: streams written through the store API and plain files with the same bytes.

The file view of every generated stream is one deterministic pseudo-random byte string
(an AES-CTR keystream, or seeded ``random`` chunks without ``cryptography``): nothing
repeats, so neither compression nor rsync-style delta matching (duplicity) can find
shortcuts a real backup would not, and byte ``P`` of the file view is always the same
byte, so a stream, the plain file the peers copy, and a later append all agree.
"""

from __future__ import annotations

import os
import random
import time

from .util import MiB

CHUNK = 4 * MiB
_KEY = b"stream-backend-b"  # 16 bytes: AES-128


def _chunk_maker():
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:  # pragma: no cover - cryptography comes with moto/duplicity
        return lambda c: random.Random(20261125 * 1_000_003 + c).randbytes(CHUNK)
    zeros = bytes(CHUNK)

    def make(c: int) -> bytes:
        counter = (c * (CHUNK // 16)).to_bytes(16, "big")
        return Cipher(algorithms.AES(_KEY), modes.CTR(counter)).encryptor().update(zeros)

    return make


_make_chunk = _chunk_maker()


def byte_stream(start: int):
    """Chunks of the file-view byte string from byte ``start`` on."""
    c, skip = divmod(start, CHUNK)
    while True:
        chunk = _make_chunk(c)
        yield chunk[skip:] if skip else chunk
        c, skip = c + 1, 0


def payloads(total: int, event_size: int, first: int = 0):
    """Events ``first, first+1, ...`` of ``event_size`` bytes adding up to ``total``
    (the last may be short); event ``i`` holds file-view bytes from ``i * event_size``."""
    src = byte_stream(first * event_size)
    buf, pos = b"", 0
    left = total
    while left > 0:
        n = min(event_size, left)
        while len(buf) - pos < n:
            buf = buf[pos:] + next(src)
            pos = 0
        yield buf[pos : pos + n]
        pos += n
        left -= n


def count_events(total: int, event_size: int) -> int:
    return -(-total // event_size)


def open_local_store(root: str):
    from stream_backend.stores.local import LocalStore

    return LocalStore(root=root)


def write_stream(
    root: str,
    scope: str,
    stream: str,
    total: int,
    event_size: int,
    segments: int = 1,
    first: int = 0,
    create: bool = True,
    log=None,
) -> dict:
    """Append ``total`` bytes of events to stream://scope/stream; returns count and time."""
    store = open_local_store(root)
    t0 = time.perf_counter()
    n = 0
    try:
        if create:
            store.create_stream(scope, stream, segments=segments, exist_ok=False)
        writer = store.writer(scope, stream)
        try:
            append = writer.append
            for n, p in enumerate(payloads(total, event_size, first), 1):
                append(p, None, 0)
        finally:
            writer.close()
    finally:
        store.close()
    took = time.perf_counter() - t0
    if log:
        log(f"  wrote stream://{scope}/{stream}: {n} events, {total / MiB:.0f} MiB in {took:.1f}s")
    return {"events": n, "bytes": total, "seconds": took}


def write_file(
    path: str, total: int, event_size: int, first: int = 0, append: bool = False
) -> None:
    """The same bytes as ``write_stream`` puts in the file view, as one plain file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "ab" if append else "wb") as f:
        src = byte_stream(first * event_size)
        left = total
        while left > 0:
            chunk = next(src)[:left]
            f.write(chunk)
            left -= len(chunk)
