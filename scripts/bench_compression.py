#!/usr/bin/env python3
"""Should archives be compressed by default? `export --compression none` vs `zstd`, same run.

For two kinds of payload — compressible JSON log lines (~1 KiB events) and incompressible
random bytes (64 KiB events) — it writes a stream into a fresh local store, then times

* ``stream-backend export --compression none`` and ``--compression zstd`` to ``file://``
  (the whole CLI, fsync'ed objects), and ``import`` of each archive into a new stream;
* the peer: ``zstd -3 -c`` (the CLI, same level as the archive format) on a plain file
  holding the same payload bytes, i.e. what compressing those bytes alone costs here.

It prints per kind: MiB/s of each export and import, the archive's size against the
payload, and the ratios zstd/none. ``none`` stays the default if zstd slows export
down on data that does not compress (random / already-compressed payloads are common in
backups) more than it saves on data that does; docs/transfer.md records the decision.

Run:  .venv/bin/python scripts/bench_compression.py [--mib 256] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "stream-backend")
MiB = 1024 * 1024

from stream_backend.stores.local import LocalStore  # noqa: E402


def log_lines(total: int, seed: int = 1):
    """JSON log events of ~1 KiB: what an application's audit stream looks like."""
    rnd = random.Random(seed)
    levels, services = ["INFO", "WARN", "DEBUG", "ERROR"], ["orders", "billing", "auth", "search", "cart"]
    made = 0
    while made < total:
        doc = {
            "ts": f"2026-11-30T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d}Z",
            "level": rnd.choice(levels), "service": rnd.choice(services), "trace": f"{rnd.getrandbits(64):016x}",
            "user": f"user-{rnd.randint(1, 50000)}", "latency_ms": round(rnd.expovariate(1 / 40), 3),
            "msg": " ".join(rnd.choice(["request", "served", "cache", "miss", "hit", "retry", "db", "query", "ok",
                                        "timeout", "upstream", "payment", "accepted", "items"]) for _ in range(120)),
        }
        b = json.dumps(doc).encode()
        made += len(b)
        yield b


def random_events(total: int, size: int = 64 * 1024, seed: int = 2):
    rnd = random.Random(seed)
    for _ in range(total // size):
        yield rnd.randbytes(size)


def timed(cmd, env) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} -> {p.returncode}\n{p.stderr[-2000:]}")
    return time.perf_counter() - t


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="payload MiB per kind (default 256)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--dir", default=None, help="work dir (default: a temp dir, removed)")
    a = ap.parse_args()
    work = Path(a.dir or tempfile.mkdtemp(prefix="sb-bench-zstd-"))
    env = dict(os.environ, STREAM_BACKEND_ROOT=str(work / "store"))
    zstd_cli = shutil.which("zstd")
    results = []
    try:
        store = LocalStore(root=str(work / "store"))
        for kind, gen in (("json-logs", log_lines), ("random", random_events)):
            store.create_stream("bench", kind)
            plain = work / f"{kind}.plain"
            with store.writer("bench", kind) as w, open(plain, "wb") as f:
                for payload in gen(a.mib * MiB):
                    w.append(payload)
                    f.write(payload)
            nbytes = plain.stat().st_size
            row = {"kind": kind, "payload_bytes": nbytes, "events": store.stream_info("bench", kind).events}
            for comp in ("none", "zstd"):
                exp, imp, size = [], [], 0
                for r in range(a.runs):
                    arch = work / f"a-{kind}-{comp}"
                    shutil.rmtree(arch, ignore_errors=True)
                    exp.append(timed([CLI, "export", f"stream://bench/{kind}", f"file://{arch}", "--compression", comp,
                                      "--progress", "none"], env))
                    size = du(arch / "data")
                    dest = f"{kind}-{comp}-{r}"
                    imp.append(timed([CLI, "import", f"file://{arch}", f"stream://bench/{dest}", "--progress", "none"],
                                     env))
                    store.delete_stream("bench", dest)
                    store.delete_stream("bench", dest + ".sb-import")
                row[comp] = {"export_s": statistics.median(exp), "import_s": statistics.median(imp),
                             "archive_bytes": size,
                             "export_mib_s": nbytes / MiB / statistics.median(exp),
                             "import_mib_s": nbytes / MiB / statistics.median(imp)}
            if zstd_cli:
                ts = [timed([zstd_cli, "-q", "-3", "-f", str(plain), "-o", str(work / "peer.zst")], env)
                      for _ in range(a.runs)]
                row["zstd_cli"] = {"compress_s": statistics.median(ts), "mib_s": nbytes / MiB / statistics.median(ts),
                                   "bytes": (work / "peer.zst").stat().st_size}
            row["ratio_export_zstd_vs_none"] = row["none"]["export_s"] / row["zstd"]["export_s"]
            row["ratio_import_zstd_vs_none"] = row["none"]["import_s"] / row["zstd"]["import_s"]
            row["size_zstd_vs_none"] = row["zstd"]["archive_bytes"] / row["none"]["archive_bytes"]
            results.append(row)
            print(json.dumps(row), flush=True)
        store.close()
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'payload':10} {'export none':>12} {'export zstd':>12} {'zstd/none':>9} {'import none':>12} "
          f"{'import zstd':>12} {'size zstd/none':>14} {'zstd -3 CLI':>12}")
    for r in results:
        peer = f"{r['zstd_cli']['mib_s']:9.1f} MiB/s" if "zstd_cli" in r else "n/a"
        print(f"{r['kind']:10} {r['none']['export_mib_s']:7.1f} MiB/s {r['zstd']['export_mib_s']:7.1f} MiB/s "
              f"{r['ratio_export_zstd_vs_none']:8.2f}x {r['none']['import_mib_s']:7.1f} MiB/s "
              f"{r['zstd']['import_mib_s']:7.1f} MiB/s {r['size_zstd_vs_none']:13.3f}x {peer}")
    if a.json:
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                            "cores": os.cpu_count(), "mib": a.mib, "runs": a.runs,
                                            "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
