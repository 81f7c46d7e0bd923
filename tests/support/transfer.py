"""Shared helpers for the transfer tests: seeded streams, CLI runs, archive snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

from support import CLI


def fill_stream(store, scope, stream, segments=3, events=300, seed=0, max_size=None, key_every=3):
    """Append seeded events of random sizes (0 B .. max_size) with mixed routing keys."""
    rnd = random.Random(seed)
    max_size = max_size or store.max_event_size
    store.create_stream(scope, stream, segments=segments, exist_ok=True)
    total = 0
    with store.writer(scope, stream) as w:
        for i in range(events):
            size = rnd.choice([0, 1, rnd.randint(2, min(200, max_size)), rnd.randint(min(200, max_size), max_size), max_size])
            payload = rnd.randbytes(size)
            key = None if i % key_every == 0 else ("" if i % 7 == 0 else f"key-{rnd.randint(0, 9)}")
            w.append(payload, key, segment=i % segments)
            total += size
        w.flush()
    return total


def append_events(store, scope, stream, events, size, seed=1):
    rnd = random.Random(seed)
    info = store.stream_info(scope, stream)
    total = 0
    with store.writer(scope, stream) as w:
        for i in range(events):
            w.append(rnd.randbytes(size), f"k{i % 5}", segment=i % info.segment_count)
            total += size
    return total


def listing(store, scope, stream):
    """(segment, seq, size, sha256, routing key) of every event: what must survive a round trip."""
    out = []
    info = store.stream_info(scope, stream)
    for seg in info.segments:
        for ev in store.read_events(scope, stream, seg.segment, from_seq=seg.head_seq, to_seq=seg.tail_seq):
            out.append((ev.segment, ev.seq, len(ev.payload), hashlib.sha256(ev.payload).hexdigest(), ev.routing_key))
    return out


def cli_env(root, s3=None, **extra):
    env = dict(os.environ)
    env["STREAM_BACKEND_ROOT"] = str(root)
    env["STREAM_BACKEND_PROGRESS_INTERVAL"] = "0.05"
    env["STREAM_BACKEND_LEASE_SETTLE"] = "0.05"
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(k, None)
    if s3 is not None:
        env.update(s3.env)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, env, timeout=120, check=None, cwd=None):
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check is not None and proc.returncode != check:
        raise AssertionError(f"{args} exited {proc.returncode}, wanted {check}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-3000:]}")
    return proc


def done_line(stdout: str) -> dict:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = [d for d in lines if d.get("event") == "done"]
    assert done, stdout
    return done[-1]


def snapshot_s3(bucket, prefix):
    """{key relative to prefix: sha256 of bytes} of every object under the prefix."""
    c = bucket.client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            body = c.get_object(Bucket=bucket.name, Key=o["Key"])["Body"].read()
            out[o["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return out


def snapshot_dir(path):
    out = {}
    base = Path(path)
    for p in sorted(base.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Proc:
    """A CLI subprocess whose stderr progress lines are collected as they come."""

    def __init__(self, args, env):
        self.p = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        self.fraction = 0.0  # done_bytes / total_bytes of the latest progress line
        self.moved = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line)
            if line.startswith("{") and '"done_bytes"' in line:
                d = json.loads(line)
                if d.get("total_bytes"):
                    with self.moved:
                        self.fraction = d["done_bytes"] / d["total_bytes"]
                        self.moved.notify_all()
                    if not self.started.is_set():
                        self.t_started = time.monotonic()
                        self.started.set()
        self.started.set()  # ended (a no-op run never reports totals)
        with self.moved:
            self.fraction = 2.0
            self.moved.notify_all()

    def wait_fraction(self, f, timeout=60):
        with self.moved:
            return self.moved.wait_for(lambda: self.fraction >= f, timeout=timeout)

    def work_time(self):
        """Seconds from the first progress line with totals to the end of the process."""
        return time.monotonic() - getattr(self, "t_started", time.monotonic())

    def finish(self, timeout=120):
        out = self.p.stdout.read()
        rc = self.p.wait(timeout=timeout)
        self.t.join(timeout=5)
        return rc, out, "".join(self.lines)


def archive_files(root: Path) -> dict[str, bytes]:
    """An archive's data objects and run documents by key: two archives equal byte for byte."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] in ("data", "runs")}


def pausing_progress(pause, after_events: int, op: str = "export"):
    """A quiet Progress that requests ``pause`` once more than ``after_events`` events of
    new work are done: a pause at a point inside the transfer, whatever the machine's speed."""
    from stream_backend.transfer.progress import Progress

    class PauseAfter(Progress):
        def add_done(self, events, nbytes, resumed=False):
            super().add_done(events, nbytes, resumed)
            if not resumed and self.done_events > after_events:
                pause.request()

    return PauseAfter(op, "none")


def kill_once(args, env, ready, what: str, timeout: float = 60) -> None:
    """Run the CLI with ``args`` and SIGKILL it as soon as ``ready()`` holds (e.g. a
    multipart upload is open); fails if the command ended first."""
    import signal

    proc = Proc(args, env)
    deadline = time.monotonic() + timeout
    while not ready() and proc.p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.p.poll() is None, f"the command finished before {what}"
    proc.p.send_signal(signal.SIGKILL)
    proc.finish()
