"""Test data: streams written through the store API and plain files with the same bytes.

Payloads are slices of one seeded random pool (incompressible, deterministic, cheap to
make: no per-event random generation), each 1 MiB event stamped with its index so no two
events are equal. A stream's file view and the plain file the peers copy hold exactly
the same bytes, so every tool moves the same data.
"""

from __future__ import annotations

import os
import random
import struct
import time

from .util import MiB

POOL_SIZE = 64 * MiB
_pools: dict[int, bytes] = {}


def _pool(size: int) -> bytes:
    if size not in _pools:
        _pools[size] = random.Random(20261125 + size).randbytes(size)
    return _pools[size]


def payloads(total: int, event_size: int, first: int = 0):
    """Yield events whose sizes add up to ``total`` (the last one may be short)."""
    pool = _pool(min(POOL_SIZE, max(total, event_size) + event_size))
    span = len(pool) - event_size
    stamp = event_size >= 64
    i, left = first, total
    step = 1_000_003 if stamp else 101
    while left > 0:
        n = min(event_size, left)
        off = (i * step) % span if span > 0 else 0
        if stamp:
            yield struct.pack("<Q", i) + pool[off:off + n - 8]
        else:
            yield pool[off:off + n]
        i += 1
        left -= n


def count_events(total: int, event_size: int) -> int:
    return -(-total // event_size)


def open_local_store(root: str):
    from stream_backend.stores.local import LocalStore

    return LocalStore(root=root)


def write_stream(root: str, scope: str, stream: str, total: int, event_size: int,
                 segments: int = 1, first: int = 0, create: bool = True, log=None) -> dict:
    """Append ``total`` bytes of events to stream://scope/stream; returns count and time."""
    store = open_local_store(root)
    t0 = time.perf_counter()
    try:
        if create:
            store.create_stream(scope, stream, segments=segments, exist_ok=False)
        n = 0
        writer = store.writer(scope, stream)
        try:
            seg = 0 if segments == 1 else None
            append = writer.append
            if seg is None:
                for n, p in enumerate(payloads(total, event_size, first), 1):
                    append(p)
            else:
                for n, p in enumerate(payloads(total, event_size, first), 1):
                    append(p, None, seg)
        finally:
            writer.close()
    finally:
        store.close()
    took = time.perf_counter() - t0
    if log:
        log(f"  wrote stream://{scope}/{stream}: {n} events, {total / MiB:.0f} MiB in {took:.1f}s")
    return {"events": n, "bytes": total, "seconds": took}


def write_file(path: str, total: int, event_size: int, first: int = 0, append: bool = False) -> None:
    """The same bytes as ``write_stream`` would put in the file view, as one plain file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "ab" if append else "wb", buffering=8 * MiB) as f:
        for p in payloads(total, event_size, first):
            f.write(p)
