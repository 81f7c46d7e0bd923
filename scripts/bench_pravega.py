#!/usr/bin/env python3
"""Read throughput from Pravega: the client's own reader loop vs `stream-backend export`
to a file:// archive, in the same run on the same streams.

Usage: .venv/bin/python scripts/bench_pravega.py [--mib 64] [--event-size 4096]
           [--segments 1,2] [--controller tcp://127.0.0.1:9090] [--json out.json]

Without --controller (or PRAVEGA_CONTROLLER_URI) it starts Pravega standalone through
scripts/pravega-server on free loopback ports and stops it at the end. Prints one JSON
line per case and a table: events/s and MB/s (MB = 10^6 bytes of payload).

What is measured:
- ``client``: a reader group from the head, one reader, ``get_segment_slice_async`` until
  every event is read (the client's fastest path; no per-segment attribution).
- ``export``: ``stream-backend export pravega://S/T file://DIR`` as a user runs it (process
  start, worker start, per-segment reads, archive framing, fsync'ed objects).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "stream-backend")


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
               PRAVEGA_SEGMENTSTORE_REST_PORT=str(ssrest))
    subprocess.run(["bash", str(ROOT / "scripts" / "pravega-server"), "start"], env=env, check=True)
    return f"tcp://127.0.0.1:{c}", env


def fill(store, scope, stream, segments, mib, event_size) -> tuple[int, int]:
    store.create_stream(scope, stream, segments=segments)
    n = mib * 1024 * 1024 // event_size
    payload = os.urandom(event_size)
    with store.writer(scope, stream) as w:
        for i in range(n):
            w.append(payload, routing_key=f"k{i % 64}")
    return n, n * event_size


def client_loop(controller: str, scope: str, stream: str, events: int) -> float:
    """The client's reader loop, run in a child process like our worker (same GIL trap)."""
    code = f"""
import asyncio, time, uuid, pravega_client as pc
m = pc.StreamManager({controller!r})
rg_name = "bench" + uuid.uuid4().hex
rg = m.create_reader_group(rg_name, {scope!r}, {stream!r})
r = rg.create_reader("r1")
async def go():
    n = 0
    t = time.monotonic()
    while n < {events}:
        sl = await r.get_segment_slice_async()
        for e in sl:
            e.data()
            n += 1
        r.release_segment(sl)  # without it the reader never hands out that segment again
    return time.monotonic() - t
print(asyncio.run(go()))
r.reader_offline()
m.delete_reader_group(rg_name, {scope!r})
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        # seen with pravega 0.3.8 (not every run): a plain reader loop on a multi-segment stream -> SIGSEGV
        raise RuntimeError(f"client reader loop died (exit {out.returncode})")
    return float(out.stdout.strip().splitlines()[-1])


def export(controller: str, scope: str, stream: str, target: Path) -> float:
    env = dict(os.environ, PRAVEGA_CONTROLLER_URI=controller, STREAM_BACKEND_ROOT=str(target.parent / "root"))
    t = time.monotonic()
    subprocess.run([CLI, "export", f"pravega://{scope}/{stream}", f"file://{target}", "--progress", "none"]
                   if _has_progress_none() else [CLI, "export", f"pravega://{scope}/{stream}", f"file://{target}"],
                   env=env, check=True, capture_output=True, timeout=3600)
    return time.monotonic() - t


def _has_progress_none() -> bool:
    out = subprocess.run([CLI, "export", "--help"], capture_output=True, text=True)
    return "--progress" in out.stdout and "none" in out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--event-size", type=int, default=4096)
    ap.add_argument("--segments", default="1,2")
    ap.add_argument("--controller", default=os.environ.get("PRAVEGA_CONTROLLER_URI"))
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()

    from stream_backend.stores.pravega import PravegaStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-pravega-"))
    server_env = None
    controller = a.controller
    if not controller:
        controller, server_env = start_server(tmp / "server")
    results = []
    try:
        store = PravegaStore(controller=controller, timeout=600)
        scope = f"bench-{uuid.uuid4().hex[:8]}"
        for segs in [int(x) for x in a.segments.split(",")]:
            stream = f"s{segs}"
            events, nbytes = fill(store, scope, stream, segs, a.mib, a.event_size)
            for case, fn in (
                ("client", lambda: client_loop(controller, scope, stream, events)),
                ("export", lambda: export(controller, scope, stream, tmp / f"arch-{stream}")),
            ):
                try:
                    secs = fn()
                except (RuntimeError, subprocess.CalledProcessError) as e:
                    r = {"case": case, "segments": segs, "events": events, "bytes": nbytes, "error": str(e)}
                    print(json.dumps(r), flush=True)
                    results.append(r)
                    continue
                r = {"case": case, "segments": segs, "events": events, "bytes": nbytes, "seconds": round(secs, 3),
                     "events_per_s": round(events / secs), "MB_per_s": round(nbytes / secs / 1e6, 2)}
                print(json.dumps(r), flush=True)
                results.append(r)
        store.close()
    finally:
        if server_env is not None:
            subprocess.run(["bash", str(ROOT / "scripts" / "pravega-server"), "stop"], env=server_env, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'case':8} {'segs':>4} {'events':>9} {'seconds':>8} {'events/s':>10} {'MB/s':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['case']:8} {r['segments']:>4} {r['events']:>9}  {r['error']}")
            continue
        print(f"{r['case']:8} {r['segments']:>4} {r['events']:>9} {r['seconds']:>8} {r['events_per_s']:>10} {r['MB_per_s']:>8}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
