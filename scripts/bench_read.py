#!/usr/bin/env python3
"""Sequential read throughput of one stream's file view vs ``cat`` of an equal plain file.

Builds (once, kept in --dir) a stream of --size bytes in --event-size events plus a plain
file with the same bytes, then times, --repeat times each, interleaved so that load from
other processes hits every variant alike:

* ``cat PLAIN > /dev/null``
* ``store.read_range`` in --chunk calls
* ``fsspec.open('stream://...','rb')`` with 1 MiB ``read()`` calls
* ``shutil.copyfileobj(f, /dev/null)`` of the same fsspec file
* random 4 KiB ``read_range`` latency (hot)

``--cold`` drops both files from the page cache before each timed run. Prints the median
and the spread (min..max) of each, and each ratio (cat time / ours; >= 0.8 is the target).

Run:  .venv/bin/python scripts/bench_read.py --dir /var/tmp/bench-read [--cold]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchlib.util import drop_cache  # noqa: E402
from stream_backend.stores.local import LocalStore  # noqa: E402

MiB = 1 << 20


def build(root: str, plain: str, size: int, ev: int) -> None:
    store = LocalStore(root=root)
    block = os.urandom(64 * MiB)
    with open(plain, "wb") as f:
        left, i = size, 0
        while left:
            n = min(left, 16 * MiB)
            s = (i * 7919) % (len(block) - n + 1)
            f.write(block[s : s + n])
            left -= n
            i += 1
        os.fsync(f.fileno())
    store.create_stream("bench", "read")
    with store.writer("bench", "read") as w, open(plain, "rb", buffering=0) as f:
        while b := f.read(ev):
            w.append(b)
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp/bench-read")
    ap.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    ap.add_argument("--event-size", type=int, default=64, help="KiB (default 64)")
    ap.add_argument("--chunk", type=int, default=1, help="MiB per read_range/read call (default 1)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--only", default="", help="comma list of variants to run")
    ap.add_argument("--verify", action="store_true", help="check fsspec bytes equal the plain file")
    args = ap.parse_args()
    size, chunk = args.size * MiB, args.chunk * MiB
    root = os.path.join(args.dir, "store")
    plain = os.path.join(args.dir, "plain.bin")
    log = os.path.join(root, "bench", "read", "segment-000000.log")
    os.makedirs(args.dir, exist_ok=True)
    if not os.path.exists(log) or os.path.getsize(plain) != size:
        shutil.rmtree(root, ignore_errors=True)
        build(root, plain, size, args.event_size * 1024)

    import fsspec

    def cat():
        subprocess.run(["cat", plain], stdout=subprocess.DEVNULL, check=True)

    def rr():
        store = LocalStore(root=root)
        off = 0
        while off < size:
            b = store.read_range("bench", "read", 0, off, chunk)
            if not b:
                raise RuntimeError(f"short read at {off}")
            off += len(b)
        store.close()

    def fs_read():
        n = 0
        with fsspec.open("stream://bench/read", "rb", root=root) as f:
            while b := f.read(chunk):
                n += len(b)
        assert n == size, n

    def fs_copy():
        with fsspec.open("stream://bench/read", "rb", root=root) as f, open(os.devnull, "wb") as out:
            shutil.copyfileobj(f, out)

    variants = {"cat": cat, "read_range": rr, "fsspec.read": fs_read, "copyfileobj": fs_copy}
    if args.only:
        variants = {k: v for k, v in variants.items() if k == "cat" or k in args.only.split(",")}
    if args.verify:
        with fsspec.open("stream://bench/read", "rb", root=root) as f, open(plain, "rb") as p:
            while True:
                a, b = f.read(chunk), p.read(chunk)
                assert a == b, "fsspec bytes differ from the plain file"
                if not a:
                    break
        print("verify: fsspec bytes == plain file")
    times: dict[str, list[float]] = {k: [] for k in variants}
    if not args.cold:
        cat(); rr()  # warm both
    for _ in range(args.repeat):
        for name, fn in variants.items():
            if args.cold:
                drop_cache(plain)
                drop_cache(log)
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["cat"])
    mode = "cold" if args.cold else "hot"
    print(f"{args.size} MiB, {args.event_size} KiB events, {args.chunk} MiB calls, {mode}, "
          f"{args.repeat} runs, load {os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<12} median {size / med / MiB:7.0f} MiB/s  ({min(ts):.3f}..{max(ts):.3f} s)"
              f"  ratio vs cat {base / med:.2f}")
    if not args.cold:
        store = LocalStore(root=root)
        rng = random.Random(42)
        lat = []
        for _ in range(2000):
            off = rng.randrange(0, size - 4096)
            t = time.perf_counter()
            b = store.read_range("bench", "read", 0, off, 4096)
            lat.append(time.perf_counter() - t)
            assert len(b) == 4096
        lat.sort()
        print(f"  random 4 KiB read_range median {statistics.median(lat) * 1e3:.3f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
