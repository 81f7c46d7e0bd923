"""Small measured programs the harness runs as their own processes.

Each prints one JSON line. Times are taken inside the process, from the first open to
the last byte, so interpreter start-up (a library is used from a program that is
already running) does not count; the harness records the process's wall time as well.

    probes.py seqread fsspec|file URL_OR_PATH BLOCK
    probes.py randread fsspec|file URL_OR_PATH COUNT SEED [READ_SIZE]
    probes.py readloop ROOT SCOPE STREAM            (the local store's own reader loop)
    probes.py pravega-readloop CONTROLLER SCOPE STREAM EVENTS TIMEOUT
"""

from __future__ import annotations

import json
import os
import random
import sys
import time


def _open(kind: str, target: str):
    if kind == "fsspec":
        import fsspec

        return fsspec.open(target, "rb").open()
    return open(target, "rb", buffering=0)


def seqread(kind: str, target: str, block: str) -> dict:
    bs = int(block)
    t0 = time.perf_counter()
    n = 0
    f = _open(kind, target)
    try:
        read = f.read
        while True:
            b = read(bs)
            if not b:
                break
            n += len(b)
    finally:
        f.close()
    return {"bytes": n, "seconds": time.perf_counter() - t0}


def randread(kind: str, target: str, count: str, seed: str, size: str = "4096") -> dict:
    count, size = int(count), int(size)
    rng = random.Random(int(seed))
    lat = []
    t_open = time.perf_counter()
    if kind == "fsspec":
        f = _open(kind, target)
        length = f.size
        open_s = time.perf_counter() - t_open

        def read_at(off):
            f.seek(off)
            return f.read(size)

    else:
        fd = os.open(target, os.O_RDONLY)
        length = os.fstat(fd).st_size
        open_s = time.perf_counter() - t_open

        def read_at(off):
            return os.pread(fd, size, off)

    warm = min(10, count)
    for i in range(warm + count):
        off = rng.randrange(0, max(1, length - size))
        t = time.perf_counter_ns()
        b = read_at(off)
        dt = time.perf_counter_ns() - t
        if len(b) != min(size, length - off):
            raise SystemExit(f"short read at {off}: {len(b)} bytes")
        if i >= warm:
            lat.append(dt / 1e6)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    return {
        "reads": len(lat),
        "length": length,
        "open_s": open_s,
        "median_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1],
        "seconds": sum(lat) / 1e3,
    }


def readloop(root: str, scope: str, stream: str) -> dict:
    from stream_backend.stores.local import LocalStore

    t0 = time.perf_counter()
    store = LocalStore(root=root)
    n = nbytes = 0
    try:
        info = store.stream_info(scope, stream)
        for seg in info.segments:
            for ev in store.read_events(scope, stream, seg.segment):
                n += 1
                nbytes += len(ev.payload)
    finally:
        store.close()
    return {"events": n, "bytes": nbytes, "seconds": time.perf_counter() - t0}


def pravega_readloop(controller: str, scope: str, stream: str, events: str, timeout: str) -> dict:
    """The official Java client's reader loop (scripts/pravega/PravegaTool.java bench-read):
    a reader group over the stream, every event once, timed inside the JVM."""
    import subprocess
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-backend" / "pravega" / "classpath"
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as quiet:
        quiet.write('<configuration><root level="ERROR"/></configuration>')
        quiet.flush()
        p = subprocess.run(["java", f"-Dlogback.configurationFile={quiet.name}", "-cp", cache.read_text().strip(),
                            str(repo / "scripts" / "pravega" / "PravegaTool.java"), controller, "bench-read", scope,
                            stream], capture_output=True, text=True, timeout=float(timeout))
    if p.returncode != 0:
        raise SystemExit(f"the Java reader loop failed: {p.stderr[-500:]}")
    n, nbytes, secs = p.stdout.split()[-3:]
    if int(n) < int(events):
        raise SystemExit(f"read {n} of {events} events")
    return {"events": int(n), "bytes": int(nbytes), "seconds": float(secs)}


def main(argv):
    cmd, args = argv[0], argv[1:]
    fn = {
        "seqread": seqread,
        "randread": randread,
        "readloop": readloop,
        "pravega-readloop": pravega_readloop,
    }[cmd]
    print(json.dumps(fn(*args)))


if __name__ == "__main__":
    main(sys.argv[1:])
