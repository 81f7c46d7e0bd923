"""Multi-segment reads keep answering when the CPU is contended.

A Kubernetes pod shares its cores. Under load, the Python client's runtime thread could
still be inside ``loop.call_soon_threadsafe`` when a slice await returned; the next
client call then held the GIL while waiting on that thread, and the read hung until
``--timeout`` turned it into exit 69 (about one scan in twenty on 2 busy cores). Here
every segment of a sealed 3-segment stream is read many times next to two busy loops."""

from __future__ import annotations

import subprocess
import sys
import uuid

from stream_backend.stores.pravega import PravegaStore

ROUNDS = 20


def test_sealed_multi_segment_reads_under_cpu_load(pravega_server):
    s = PravegaStore(controller=pravega_server.controller, timeout=20)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        sc = f"load-{uuid.uuid4().hex[:8]}"
        s.create_stream(sc, "m", segments=3)
        keys = [f"k{i}" for i in range(9)]
        sent = []
        with s.writer(sc, "m") as w:
            for i in range(90):
                p = f"{keys[i % 9]}:{i}:".encode() * (1 + i % 4)
                sent.append(p)
                w.append(p, routing_key=keys[i % 9])
        s.seal_stream(sc, "m")
        for _ in range(ROUNDS):
            got = [e.payload for seg in range(3) for e in s.read_events(sc, "m", seg)]
            assert sorted(got) == sorted(sent)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        s.close()
