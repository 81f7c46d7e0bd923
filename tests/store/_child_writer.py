"""A writer process for crash tests: appends deterministic events and reports acks.

Usage: python _child_writer.py ROOT SCOPE STREAM SEED [PAUSE_SECONDS]
Prints ``ready TAIL`` once the writer is open, then ``ack N`` after each flush() returns
(every event with seq < N of segment 0 is acknowledged). Runs until killed.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time


def payload(seq: int) -> bytes:
    """The event with dense seq ``seq``: deterministic, so any reader can check it."""
    size = (seq * 7919) % 9000 if seq % 5 else (seq * 31) % 200
    block = hashlib.sha256(b"%d" % seq).digest()
    return (block * (size // 32 + 1))[:size]


def main() -> None:
    root, scope, stream, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    from stream_backend.stores.local import LocalStore

    rng = random.Random(seed)
    store = LocalStore(root=root)
    w = store.writer(scope, stream)
    seq = store.segment_info(scope, stream, 0).tail_seq
    out = sys.stdout
    out.write(f"ready {seq}\n")
    out.flush()
    while True:
        for _ in range(rng.randint(1, 40)):
            w.append(payload(seq), routing_key=f"k{seq % 3}", segment=0)
            seq += 1
        w.flush()
        out.write(f"ack {seq}\n")
        out.flush()
        if pause:
            time.sleep(pause)


if __name__ == "__main__":
    main()
