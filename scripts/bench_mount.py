#!/usr/bin/env python3
"""Benchmark the FUSE mount against the same bytes as a plain file, in the same run.

    .venv/bin/python scripts/bench_mount.py                 # 1 GiB (the reference run)
    .venv/bin/python scripts/bench_mount.py --size 64MiB    # a quick run

Measures (wall clock, best of --repeat):
  cat       `cat MOUNT/STREAM > /dev/null`  vs  `cat FILE > /dev/null`
  dup-full  duplicity full of the mounted scope  vs  of a plain directory holding the file
  dup-incr  duplicity incremental after appending 1% to the stream / the file
and prints one JSON line per measurement plus a table with ratios (mount / plain;
1.0 = as fast as a plain file). Page caches are dropped before each read when the
kernel allows it (root, not in a restricted container); otherwise both sides read warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).with_name("stream-backend"))


def parse_size(text: str) -> int:
    units = {
        "": 1,
        "K": 1 << 10,
        "KIB": 1 << 10,
        "M": 1 << 20,
        "MIB": 1 << 20,
        "G": 1 << 30,
        "GIB": 1 << 30,
    }
    t = text.strip().upper()
    num = t.rstrip("KMGIB")
    return int(float(num) * units[t.removeprefix(num)])


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(cmd, repeat, env=None, before=None) -> float:
    best = float("inf")
    for _ in range(repeat):
        if before:
            before()
        drop_caches()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        best = min(best, time.perf_counter() - t0)
    return best


def wait_mount(mp: Path, proc, up: bool, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mp) == up:
            return
        if up and proc.poll() is not None:
            raise SystemExit(f"mount failed: {proc.stderr.read()}")
        time.sleep(0.05)
    raise SystemExit(f"mount at {mp} did not {'come up' if up else 'go away'}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--size", default="1GiB", help="stream size (default 1GiB; e.g. 64MiB for a quick run)"
    )
    ap.add_argument("--event-size", default="1MiB", help="payload size of the stream's events")
    ap.add_argument("--repeat", type=int, default=3, help="cat repetitions (best is reported)")
    ap.add_argument("--no-duplicity", action="store_true", help="only the cat comparison")
    ap.add_argument(
        "--workdir", default=None, help="where to put the store and files (default: a temp dir)"
    )
    ap.add_argument(
        "--json", default=None,
        help="write the rows here; `scripts/bench --report` renders them in docs/benchmarks.md "
        "when merged into the results JSON under \"mount\"",
    )
    args = ap.parse_args()
    size, event = parse_size(args.size), parse_size(args.event_size)

    from stream_backend.stores.local import LocalStore

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-mount-"))
    store_root, plain, mp, targets = work / "store", work / "plain", work / "mnt", work / "targets"
    for d in (store_root, plain, mp, targets):
        d.mkdir(parents=True, exist_ok=True)
    results = []

    def report(name, mount_s, plain_s, **extra):
        row = {
            "bench": name,
            "mount_s": round(mount_s, 4),
            "plain_s": round(plain_s, 4),
            "ratio": round(mount_s / plain_s, 3) if plain_s else None,
            **extra,
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    store = LocalStore(root=str(store_root))
    store.create_stream("bench", "data", exist_ok=True)
    block = os.urandom(event)
    with store.writer("bench", "data") as w, open(plain / "data", "wb") as f:
        left = size
        i = 0
        while left:
            n = min(event, left)
            # vary the bytes so that duplicity's rsync blocks do not all match
            chunk = (i.to_bytes(8, "little") + block[8:])[:n]
            w.append(chunk)
            f.write(chunk)
            left -= n
            i += 1
    store.close()

    proc = subprocess.Popen(
        [
            CLI,
            "mount",
            "stream://bench",
            str(mp),
            "--root",
            str(store_root),
            "--attr-timeout",
            "0.2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_mount(mp, proc, up=True)
        assert os.path.getsize(mp / "data") == size
        m = timed(["cat", str(mp / "data")], args.repeat)
        p = timed(["cat", str(plain / "data")], args.repeat)
        report(
            "cat",
            m,
            p,
            bytes=size,
            mount_MBps=round(size / m / 1e6, 1),
            plain_MBps=round(size / p / 1e6, 1),
            caches_dropped=drop_caches(),
        )

        if not args.no_duplicity:
            env = dict(os.environ)
            env.pop("PASSPHRASE", None)

            def dup(*a):
                return [CLI, "duplicity", *a, "--no-encryption", "--no-compression"]

            m = timed(
                dup("full", str(mp), f"file://{targets}/m", "--archive-dir", str(work / "am")),
                1,
                env,
            )
            p = timed(
                dup("full", str(plain), f"file://{targets}/p", "--archive-dir", str(work / "ap")),
                1,
                env,
            )
            report("duplicity-full", m, p, bytes=size)

            time.sleep(1.1)  # duplicity compares whole-second mtimes
            extra = os.urandom(max(1, size // 100))
            store = LocalStore(root=str(store_root))
            with store.writer("bench", "data") as w:
                for off in range(0, len(extra), event):
                    w.append(bytes(memoryview(extra)[off:][:event]))
            store.close()
            with open(plain / "data", "ab") as f:
                f.write(extra)
            time.sleep(0.5)
            m = timed(
                dup("incr", str(mp), f"file://{targets}/m", "--archive-dir", str(work / "am")),
                1,
                env,
            )
            p = timed(
                dup("incr", str(plain), f"file://{targets}/p", "--archive-dir", str(work / "ap")),
                1,
                env,
            )
            report("duplicity-incr", m, p, appended=len(extra))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'benchmark':<16}{'mount s':>10}{'plain s':>10}{'ratio':>8}")
    for r in results:
        print(f"{r['bench']:<16}{r['mount_s']:>10.3f}{r['plain_s']:>10.3f}{r['ratio']:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "scripts/bench_mount.py " + " ".join(sys.argv[1:]),
            "size": size, "event_size": event, "rows": results,
        }, indent=1))


if __name__ == "__main__":
    main()
