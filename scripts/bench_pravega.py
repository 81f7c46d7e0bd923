#!/usr/bin/env python3
"""Pravega throughput: stream-backend against the official Java client's own loops, in the
same run on the same streams.

Usage: .venv/bin/python scripts/bench_pravega.py [--mib 256] [--event-sizes 4096,1048576]
           [--segments 1,4] [--repeat 1] [--controller tcp://127.0.0.1:9090] [--json out.json]

Without --controller (or PRAVEGA_CONTROLLER_URI) it starts Pravega standalone through
scripts/pravega-server on free loopback ports and stops it at the end. For every event
size and segment count:

- ``writer loop``: the Java client's EventStreamWriter writing the stream (keys k0..k63),
  timed inside the JVM from the first write to the flush (JVM start not counted);
- ``reader loop``: the Java client's reader group reading the sealed stream to its end,
  timed inside the JVM (JVM start and the final idle wait not counted);
- ``export``: ``stream-backend export pravega://S/T file://DIR`` as a user runs it, the
  whole process (start-up, reads, archive framing, fsync'ed objects);
- ``import``: ``stream-backend import`` of that archive into a new Pravega stream, the
  whole process.

Ratios: export / reader loop and import / writer loop (MB/s of payload; >1 is faster than
the client), of the medians over ``--repeat`` rounds (each round runs all four cases on
fresh streams, so both sides see the same load). Each stream is deleted after its row (the standalone keeps data in its heap).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "stream-backend")
TOOL = ROOT / "scripts" / "pravega" / "PravegaTool.java"
QUIET = '<configuration><root level="ERROR"/></configuration>'


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_server(home: Path) -> tuple[str, dict]:
    c, ss, zk, rest, admin, ssrest = free_ports(6)
    env = dict(os.environ, PRAVEGA_HOME=str(home), PRAVEGA_CONTROLLER_PORT=str(c), PRAVEGA_SEGMENTSTORE_PORT=str(ss),
               PRAVEGA_ZK_PORT=str(zk), PRAVEGA_REST_PORT=str(rest), PRAVEGA_ADMIN_PORT=str(admin),
               PRAVEGA_SEGMENTSTORE_REST_PORT=str(ssrest), PRAVEGA_HEAP=os.environ.get("PRAVEGA_HEAP", "6g"),
               # a cache that holds a row's streams: a full one throttles writes for 25 s
               PRAVEGA_CACHE=os.environ.get("PRAVEGA_CACHE", str(2 << 30)))
    subprocess.run(["bash", str(ROOT / "scripts" / "pravega-server"), "start"], env=env, check=True)
    return f"tcp://127.0.0.1:{c}", env


def classpath(server_env: dict | None) -> str:
    home = Path((server_env or {}).get("PRAVEGA_HOME") or
                Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-backend" / "pravega")
    for cand in (home / "classpath",
                 Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-backend" / "pravega" / "classpath"):
        if cand.exists():
            return cand.read_text().strip()
    raise SystemExit("no Pravega classpath: run bash scripts/pravega-server fetch")


def java(cp: str, controller: str, *words) -> tuple[list[str], float]:
    """Run one PravegaTool command; -> (its last output line's words, whole-process seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as quiet:
        quiet.write(QUIET)
        quiet.flush()
        t = time.monotonic()
        p = subprocess.run(["java", f"-Dlogback.configurationFile={quiet.name}", "-cp", cp, str(TOOL), controller,
                            *map(str, words)], capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - t
    if p.returncode != 0:
        raise RuntimeError(f"PravegaTool {words[0]} failed: {p.stderr[-1500:]}")
    return p.stdout.strip().splitlines()[-1].split(), wall


def cli(env: dict, *args) -> float:
    t = time.monotonic()
    p = subprocess.run([CLI, *args, "--progress", "none"], env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"stream-backend {args[0]} failed: {p.stderr[-1500:]}")
    return time.monotonic() - t


def row(case, size, segs, events, nbytes, secs, **extra) -> dict:
    return {"case": case, "event_size": size, "segments": segs, "events": events, "bytes": nbytes,
            "seconds": round(secs, 3), "MB_per_s": round(nbytes / secs / 1e6, 1), **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--event-sizes", default="4096,1048576")
    ap.add_argument("--segments", default="1,4")
    ap.add_argument("--controller", default=os.environ.get("PRAVEGA_CONTROLLER_URI"))
    ap.add_argument("--repeat", type=int, default=1, help="rounds per row; the table shows medians")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()

    from stream_backend.stores.pravega import PravegaStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-pravega-"))
    server_env = None
    controller = a.controller
    if not controller:
        controller, server_env = start_server(tmp / "server")
    cp = classpath(server_env)
    env = dict(os.environ, PRAVEGA_CONTROLLER_URI=controller, STREAM_BACKEND_ROOT=str(tmp / "root"),
               STREAM_BACKEND_TIMEOUT="600")
    results = []
    store = PravegaStore(controller=controller, timeout=600)
    scope = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        rows = [(int(x), int(y)) for x in a.event_sizes.split(",") for y in a.segments.split(",")]
        for size, segs in [r for r in rows for _ in range(a.repeat)]:
            n = a.mib * 1024 * 1024 // size
            tag = f"{size}-{segs}-{uuid.uuid4().hex[:6]}"
            src, dst, arch = f"src-{tag}", f"dst-{tag}", tmp / f"arch-{tag}"
            (ev, nb, secs), wall = java(cp, controller, "bench-write", scope, src, segs, n, size)
            results.append(row("writer loop", size, segs, int(ev), int(nb), float(secs), process_s=round(wall, 2)))
            store.seal_stream(scope, src)
            (ev, nb, secs), wall = java(cp, controller, "bench-read", scope, src)
            assert int(ev) == n, f"reader loop read {ev} of {n} events"
            results.append(row("reader loop", size, segs, int(ev), int(nb), float(secs), process_s=round(wall, 2)))
            secs = cli(env, "export", f"pravega://{scope}/{src}", f"file://{arch}")
            results.append(row("export", size, segs, n, n * size, secs))
            secs = cli(env, "import", f"file://{arch}", f"pravega://{scope}/{dst}")
            got = store.stream_info(scope, dst)
            assert got.events == n, f"import wrote {got.events} of {n} events"
            results.append(row("import", size, segs, n, n * size, secs))
            for r in results[-4:]:
                print(json.dumps(r), flush=True)
            for s in store.list_streams(scope):  # the import's marker stream too
                store.delete_stream(scope, s)
            shutil.rmtree(arch, ignore_errors=True)
        store.delete_scope(scope)
    finally:
        store.close()
        if server_env is not None:
            subprocess.run(["bash", str(ROOT / "scripts" / "pravega-server"), "stop"], env=server_env, check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(case, size, segs):
        return statistics.median(r["MB_per_s"] for r in results
                                 if (r["case"], r["event_size"], r["segments"]) == (case, size, segs))

    print(f"\n{'event size':>10} {'segs':>4} {'reader loop':>11} {'export':>8} {'ratio':>6} "
          f"{'writer loop':>11} {'import':>8} {'ratio':>6}   (MB/s of payload, median of {a.repeat})")
    for size in sorted({r["event_size"] for r in results}):
        for segs in sorted({r["segments"] for r in results}):
            rl, ex, wl, im = (rate(c, size, segs) for c in ("reader loop", "export", "writer loop", "import"))
            print(f"{size:>10} {segs:>4} {rl:>11} {ex:>8} {ex / rl:>6.2f} {wl:>11} {im:>8} {im / wl:>6.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
