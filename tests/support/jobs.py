"""Exports and imports run as Kubernetes Jobs in tests: the source stream, the reference
(uninterrupted) export, the generated manifests, and reading what the pods printed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from stream_backend.cli import main


def cli_executable() -> str:
    exe = Path(sys.executable).parent / "stream-backend"
    assert exe.exists(), f"{exe} missing: pip install -e '.[all,test]'"
    return str(exe)


SEGMENTS = 5
EVENTS_PER_SEGMENT = 120
EXPORT_OPTS = ["--object-size", "256KiB", "--part-size", "64KiB", "--parallel", "2"]


def archive_files(root: Path) -> dict[str, bytes]:
    """Every key of a file:// archive with its bytes. Temporary files a SIGKILLed writer
    left behind (in ``.tmp/``, or ``*.tmp-*`` beside a data object; never listed by the
    archive reader) are not keys."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".tmp-" not in p.name and p.relative_to(root).parts[0] != ".tmp":
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def env_for(store_root) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["STREAM_BACKEND_ROOT"] = str(store_root)
    return env


def uninterrupted_export(store_root, target: Path) -> dict:
    proc = subprocess.run(
        [cli_executable(), "export", "stream://k8s/events", f"file://{target}", "--progress", "none", *EXPORT_OPTS],
        env=env_for(store_root), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def job_manifest(op: str, stream_url: str, archive: Path, shards: int | None, parallelism: int | None) -> dict:
    args = ["k8s", "job", op]
    args += [stream_url, f"file://{archive}"] if op == "export" else [f"file://{archive}", stream_url]
    args += ["--pvc", "streams", "--archive-pvc", "backups", "--archive-mount", str(archive.parent)]
    if shards:
        args += ["--indexed", str(shards), "--parallelism", str(parallelism)]
    if op == "export":
        args += EXPORT_OPTS
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def fill_source_store(store_root: Path) -> Path:
    """A local store with one stream of a few segments: events of mixed sizes (empty ones,
    ones larger than an object, so spillover is exercised) and routing keys."""
    from stream_backend.stores.local import LocalStore

    store = LocalStore(root=str(store_root))
    store.create_stream("k8s", "events", segments=SEGMENTS)
    rng = random.Random(20261125)
    with store.writer("k8s", "events") as w:
        for seg in range(SEGMENTS):
            for i in range(EVENTS_PER_SEGMENT):
                size = rng.choice([0, 17, 1000, 30000, 90000, 300000])
                w.append(rng.randbytes(size), routing_key=f"key-{i % 5}", segment=seg)
    store.close()
    return store_root


def progress_lines(stderr: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def restored_as_source(source_root, restored_root, keep=lambda event: True) -> bool:
    """Does every segment of k8s/restored (in the store at ``restored_root``) hold exactly
    the events of k8s/events that ``keep``, in order, with their routing keys?"""
    from stream_backend.stores.local import LocalStore

    src, dst = LocalStore(root=str(source_root)), LocalStore(root=str(restored_root))
    try:
        assert dst.stream_info("k8s", "restored").segment_count == SEGMENTS
        for seg in range(SEGMENTS):
            want = [(e.payload, e.routing_key) for e in src.read_events("k8s", "events", seg) if keep(e)]
            got = [(e.payload, e.routing_key) for e in dst.read_events("k8s", "restored", seg)]
            assert got == want, f"segment {seg}: {len(got)} events restored, {len(want)} expected"
    finally:
        src.close()
        dst.close()
    return True
