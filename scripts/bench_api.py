#!/usr/bin/env python3
"""Requests per second of `serve`'s status endpoint under --clients concurrent clients,
against a static file server (Python's http.server) handing out the same document.

Starts `stream-backend serve` on a temporary store with one finished export request, saves
that request's document as a file, serves it with ``python -m http.server``, then for each
server, --seconds long, --clients threads each GET the document over one kept-alive
connection, one request after another. Prints requests/s, median and p99 latency, and the
ratio ours / static (both servers run one process on the same machine).

Run:  .venv/bin/python scripts/bench_api.py [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def load(port: int, path: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"GET {path}: {r.status}")
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    latencies.sort()
    return {"rps": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "STREAM_BACKEND_ROOT": f"{tmp}/store"}
        cli = str(BIN / "stream-backend")
        subprocess.run([cli, "create", "stream://demo/logs"], env=env, check=True)
        subprocess.run([cli, "write", "--event-size", "100", "stream://demo/logs", "-"], input=b"x" * 100_000,
                       env=env, check=True)
        port, static_port = _free_port(), _free_port()
        serve = subprocess.Popen([cli, "serve", "--listen", f"127.0.0.1:{port}", "--location",
                                  f"local=file://{tmp}/archives", "--state-dir", f"{tmp}/requests"], env=env)
        static = None
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base + "/healthz")
            body = json.dumps({"name": "logs", "spec": {"source": "stream://demo/logs", "archiveLocation": "local"}})
            urllib.request.urlopen(urllib.request.Request(base + "/v1/exports", data=body.encode(), headers={
                "Content-Type": "application/json"}), timeout=30)
            subprocess.run(["curl", "-sN", base + "/v1/exports/logs/events"], capture_output=True, check=True)
            doc = urllib.request.urlopen(base + "/v1/exports/logs", timeout=30).read()
            Path(tmp, "static").mkdir()
            Path(tmp, "static", "logs").write_bytes(doc)
            static = subprocess.Popen([sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1",
                                       "--directory", f"{tmp}/static"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            _wait(f"http://127.0.0.1:{static_port}/logs")
            ours = load(port, "/v1/exports/logs", args.clients, args.seconds)
            peer = load(static_port, "/logs", args.clients, args.seconds)
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            if static is not None:
                static.terminate()
    print(f"GET status, {args.clients} clients, {args.seconds:g} s, {len(doc)} B document")
    for name, r in (("stream-backend serve", ours), ("python -m http.server (static file)", peer)):
        print(f"  {name:38s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms")
    print(f"  ratio (ours / static): {ours['rps'] / peer['rps']:.2f}x")


if __name__ == "__main__":
    main()
