#!/usr/bin/env python3
"""Benchmark the embedded local store against plain files (one run, side by side).

For each size (default 1 GiB and 10 GiB; ``--sizes 256M`` for a quick check):

* write: appending the bytes as events + one group-commit flush (fsync), vs
  ``dd if=PLAIN of=COPY bs=4M conv=fsync`` of the same bytes;
* sequential read of the whole file view through ``read_range`` (``--chunk`` bytes a
  call), and through ``fsspec.open('stream://...')`` when stream_backend.fs.streamfs
  exists, vs ``cat PLAIN > /dev/null`` — page cache hot (each read once to warm, then
  timed), and cold (both files dropped from the page cache with posix_fadvise first);
* median / p99 latency of 4 KiB ``read_range`` calls at random offsets (hot cache);
* ``read_events`` throughput for small (100-byte) events (``--events``; target 300,000/s).

Run:  .venv/bin/python scripts/bench_store.py [--sizes 1G,10G] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchlib.util import drop_cache  # noqa: E402
from stream_backend.errors import UsageError  # noqa: E402
from stream_backend.stores.local import LocalStore  # noqa: E402
from stream_backend.units import human_size as human  # noqa: E402
from stream_backend.units import parse_size as _parse_size  # noqa: E402


def parse_size(text: str) -> int:
    try:
        return _parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cat(path: str) -> None:
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)


def read_all_range(store, scope, stream, length, chunk) -> None:
    off = 0
    while off < length:
        b = store.read_range(scope, stream, 0, off, chunk)
        if not b:
            raise RuntimeError(f"short read at {off}")
        off += len(b)


def read_all_fsspec(root, scope, stream, chunk) -> None:
    import fsspec

    with fsspec.open(f"stream://{scope}/{stream}", "rb", root=root, block_size=chunk) as f:
        while f.read(chunk):
            pass


def have_streamfs() -> bool:
    try:
        import stream_backend.fs.streamfs  # noqa: F401
    except Exception:
        return False
    return True


def line(label: str, ours: float, base: float, nbytes: int, base_label: str) -> None:
    r = base / ours if ours else float("inf")
    print(
        f"  {label:<34} {human(nbytes / ours)}/s  vs {base_label} {human(nbytes / base)}/s"
        f"   ratio {r:.2f}"
    )


def bench_size(root: str, size: int, args) -> dict:
    scope, stream = "bench", f"s{size}"
    store = LocalStore(root=root)
    store.create_stream(scope, stream, exist_ok=False)
    plain = os.path.join(root, f"plain-{size}.bin")
    copy = os.path.join(root, f"copy-{size}.bin")
    ev = args.event_size
    print(f"\n== {human(size)} in events of {human(ev)} ==")
    # the bytes: a random block repeated with a rolling start (incompressible enough)
    block = os.urandom(64 << 20)
    with open(plain, "wb") as f:
        left, i = size, 0
        while left:
            n = min(left, 16 << 20)
            s = (i * 7919) % (len(block) - n + 1)
            f.write(block[s : s + n])
            left -= n
            i += 1
        f.flush()
        os.fsync(f.fileno())
    del block

    # write: dd conv=fsync of the same bytes vs append + flush
    cat(plain)  # source hot for both
    t_dd = float("inf")
    for _ in range(2):  # best of two: the disk is shared
        t_dd = min(
            t_dd,
            timed(
                lambda: subprocess.run(
                    ["dd", f"if={plain}", f"of={copy}", "bs=4M", "conv=fsync", "status=none"],
                    check=True,
                )
            ),
        )
        os.unlink(copy)

    def write_stream():
        # like dd: read the plain file (hot in the page cache) and write it out
        with store.writer(scope, stream) as w, open(plain, "rb", buffering=0) as f:
            while True:
                b = f.read(ev)
                if not b:
                    break
                w.append(b)

    t_w = timed(write_stream)
    info = store.segment_info(scope, stream, 0)
    assert info.length == size, (info.length, size)
    print("write (durable on return):")
    line("append + flush (group commit)", t_w, t_dd, size, "dd conv=fsync")

    # sequential reads
    log = os.path.join(root, scope, stream, "segment-000000.log")
    chunk = args.chunk
    res = {}
    print(f"sequential read, {human(chunk)} per call:")
    for mode in ("hot", "cold"):
        if mode == "hot":
            cat(plain)
            read_all_range(store, scope, stream, size, chunk)
        # best of two runs each: the disk and the CPUs are shared
        t_cat = t_rr = t_fs = float("inf")
        for _ in range(2):
            if mode == "cold":
                drop_cache(plain)
            t_cat = min(t_cat, timed(lambda: cat(plain)))
            if mode == "cold":
                drop_cache(log)
            store.close()
            store = LocalStore(root=root)
            t_rr = min(t_rr, timed(lambda: read_all_range(store, scope, stream, size, chunk)))
            if have_streamfs():
                if mode == "cold":
                    drop_cache(log)
                t_fs = min(t_fs, timed(lambda: read_all_fsspec(root, scope, stream, chunk)))
        line(f"read_range ({mode} cache)", t_rr, t_cat, size, "cat")
        res[f"read_range_{mode}"] = t_cat / t_rr
        if have_streamfs():
            line(f"fsspec stream:// ({mode} cache)", t_fs, t_cat, size, "cat")
            res[f"fsspec_{mode}"] = t_cat / t_fs
    if not have_streamfs():
        print("  fsspec stream://                    (stream_backend.fs.streamfs not present)")

    # random 4 KiB reads, hot cache
    rng = random.Random(42)
    lat = []
    for _ in range(args.random_reads):
        off = rng.randrange(0, size - 4096)
        t = time.perf_counter()
        b = store.read_range(scope, stream, 0, off, 4096)
        lat.append(time.perf_counter() - t)
        assert len(b) == 4096
    lat.sort()
    med, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
    print(
        f"random 4 KiB read_range ({args.random_reads} reads, hot): median {med * 1e3:.3f} ms, "
        f"p99 {p99 * 1e3:.3f} ms   target median < 1 ms"
    )
    res["random_median_ms"] = med * 1e3
    idx = os.path.join(root, scope, stream, "segment-000000.idx")
    print(f"offset index: {human(os.path.getsize(idx))} for {human(os.path.getsize(log))} of log")
    store.close()
    if not args.keep:
        shutil.rmtree(os.path.join(root, scope, stream))
        os.unlink(plain)
    return res


def bench_events(root: str, n: int) -> None:
    store = LocalStore(root=root)
    store.create_stream("bench", "small", exist_ok=True)
    payload = os.urandom(100)
    t = time.perf_counter()
    with store.writer("bench", "small") as w:
        for i in range(n):
            w.append(payload)
    tw = time.perf_counter() - t
    store.close()
    store = LocalStore(root=root)
    t = time.perf_counter()
    count = sum(1 for _ in store.read_events("bench", "small", 0))
    tr = time.perf_counter() - t
    assert count == n
    print(f"\n== {n} events of 100 B ==")
    print(f"  append+flush  {n / tw:,.0f} events/s")
    print(f"  read_events   {n / tr:,.0f} events/s   target >= 300,000/s")
    store.close()
    shutil.rmtree(os.path.join(root, "bench", "small"))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes", default="1G,10G", help="comma-separated stream sizes (default 1G,10G)"
    )
    ap.add_argument(
        "--dir",
        default=None,
        help="where to put the store and plain files (default: a temp dir in /var/tmp)",
    )
    ap.add_argument(
        "--event-size",
        type=parse_size,
        default=parse_size("64K"),
        help="bytes per event (default 64K)",
    )
    ap.add_argument(
        "--chunk",
        type=parse_size,
        default=parse_size("4M"),
        help="bytes per read_range call (default 4M)",
    )
    ap.add_argument("--random-reads", type=int, default=2000)
    ap.add_argument(
        "--events", type=int, default=1_000_000, help="small-event read_events benchmark (0: skip)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the data afterwards")
    args = ap.parse_args()
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except argparse.ArgumentTypeError as exc:
        ap.error(f"--sizes: {exc}")
    base = args.dir or tempfile.mkdtemp(prefix="bench-store-", dir="/var/tmp")
    os.makedirs(base, exist_ok=True)
    root = os.path.join(base, "store")
    print(f"store root {root}; python {sys.version.split()[0]}; {os.cpu_count()} cpus")
    print("ratio = our throughput / the plain-file tool's (1.0 = as fast; read target >= 0.8)")
    try:
        for size in sizes:
            free = shutil.disk_usage(base).free
            need = 2 * size + (1 << 30)
            if free < need:
                print(
                    f"\n== {human(size)}: SKIPPED, needs {human(need)} free, "
                    f"{human(free)} available =="
                )
                continue
            bench_size(root, size, args)
        if args.events:
            bench_events(root, args.events)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
