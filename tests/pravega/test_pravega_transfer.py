"""Export from and import into Pravega through the real CLI, with SIGKILL at random
points of their progress: the resumed export equals an uninterrupted one file for file; the resumed
import holds the source events in order, no gap, no duplicate."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from stream_backend.stores.local import LocalStore
from stream_backend.stores.pravega import PravegaStore

from pravega.javatool import java_tool
from support import CLI
from support.transfer import Proc

KILLS = 5


def _env(pravega_server, root, **extra):
    env = dict(os.environ)
    env["PRAVEGA_CONTROLLER_URI"] = pravega_server.controller
    env["STREAM_BACKEND_ROOT"] = str(root)
    env["STREAM_BACKEND_PROGRESS_INTERVAL"] = "0.05"
    env["STREAM_BACKEND_LEASE_SETTLE"] = "0.05"
    env["STREAM_BACKEND_CHECKPOINT_INTERVAL"] = "0.1"
    env.update(extra)
    return env


def _run(args, env, check=0, timeout=300):
    p = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}")
    return p


def _fill(store, scope, stream, segments, events, seed, scale=1):
    rnd = random.Random(seed)
    store.create_stream(scope, stream, segments=segments, exist_ok=True)
    with store.writer(scope, stream) as w:
        for i in range(events):
            size = rnd.choice([0 if segments == 1 else 1, 1, rnd.randint(2, 300), rnd.randint(300, 3000)])
            w.append(rnd.randbytes(size * scale), f"key-{rnd.randint(0, 20)}")


def _payloads(store, scope, stream):
    info = store.stream_info(scope, stream)
    return [
        [hashlib.sha256(e.payload).hexdigest() for e in store.read_events(scope, stream, s.segment)]
        for s in info.segments
    ]


def _snapshot(root: Path):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "/runs/" in f"/{p.relative_to(root)}" or (p.is_file() and "/data/" in f"/{p.relative_to(root)}")
    }


def _kill_loop(args, env, rnd, done, partial=None):
    """Run ``args`` KILLS times, each SIGKILLed once its progress reaches a random 5-85%
    of the bytes (a run that gets there by finishing is left to exit 0); count kills that
    left the work unfinished (and, with ``partial``, a partly written result)."""
    interrupted = 0
    env = dict(env, STREAM_BACKEND_PROGRESS_INTERVAL="0.02")
    for _ in range(KILLS):
        proc = Proc(args, env)
        assert proc.wait_fraction(rnd.uniform(0.05, 0.85), timeout=120)
        if proc.p.poll() is None:
            proc.p.send_signal(signal.SIGKILL)
            proc.finish()
            if not done() and (partial is None or partial()):
                interrupted += 1
        else:
            rc, _out, err = proc.finish()
            assert rc == 0, err[-3000:]
    return interrupted


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["fixed", "scaled"])
def test_export_from_pravega_kill_loop_identical_archive(pravega_server, pravega_store, tmp_path, shape):
    sc = f"exp-{uuid.uuid4().hex[:8]}"
    _fill(pravega_store, sc, "src", segments=2, events=2000 if shape == "fixed" else 1000, seed=3)
    if shape == "scaled":  # the Java client splits it into 3, then the stream grows on
        java_tool(pravega_server, ["scale", sc, "src", 3])
        _fill(pravega_store, sc, "src", segments=2, events=1000, seed=4)
        assert len(pravega_store.stream_info(sc, "src").segments) == 5
    env = _env(pravega_server, tmp_path / "root")
    common = ["--object-size", "16KiB", "--parallel", "2"]
    _run(["export", f"pravega://{sc}/src", f"file://{tmp_path}/ref", *common], env)
    args = ["export", f"pravega://{sc}/src", f"file://{tmp_path}/resumed", *common]
    done = lambda: any((tmp_path / "resumed" / "runs").rglob("manifest.json")) if (tmp_path / "resumed" / "runs").exists() else False  # noqa: E731
    interrupted = _kill_loop(args, env, random.Random(7), done)
    _run(args, env)
    assert interrupted >= 1, "no kill landed before the export finished"
    ref, got = _snapshot(tmp_path / "ref"), _snapshot(tmp_path / "resumed")
    assert ref and got == ref
    _run(["verify", f"file://{tmp_path}/resumed", "--against", f"pravega://{sc}/src"], env)


def _signal_tree(pid: int, sig: int) -> list:
    """Send ``sig`` to a process and all its descendants, as a pod kill would."""
    import psutil

    try:
        me = psutil.Process(pid)
        tree = [me, *me.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for q in tree:
        try:
            q.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return tree


@pytest.mark.slow
def test_import_into_pravega_kill_loop_no_gap_no_duplicate(pravega_server, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    local = LocalStore(root=str(root))
    # 14 MiB: the import ships it in a dozen 1 MiB batches, so a partly written stream is a
    # state that lasts, not one a kill must hit within milliseconds
    _fill(local, "demo", "src", segments=2, events=4000, seed=5, scale=8)
    env = _env(pravega_server, root)
    archive = f"file://{tmp_path}/a"
    _run(["export", "stream://demo/src", archive, "--object-size", "256KiB"], env)
    sc = f"imp-{uuid.uuid4().hex[:8]}"
    p = PravegaStore(controller=pravega_server.controller, timeout=60)
    _run(["import", archive, f"pravega://{sc}/ref"], env)
    args = ["import", archive, f"pravega://{sc}/copy"]

    def done():
        try:
            return p.stream_info(sc, "copy").events == 4000
        except Exception:
            return False

    def partial():
        try:
            return 0 < p.stream_info(sc, "copy").events < 4000
        except Exception:
            return False

    # first a kill aimed at a partly written destination (the case resume must get right):
    # run the import (CLI and its client worker) in short steps, stopped between steps, and
    # SIGKILL the whole tree, as a pod kill would, as soon as the stopped import has landed
    # some but not all events -- no race with how fast the machine is
    proc = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    interrupted = 0
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.03)
        tree = _signal_tree(proc.pid, signal.SIGSTOP)
        if partial():
            for q in tree:
                q.send_signal(signal.SIGKILL)
            interrupted = 1
            break
        _signal_tree(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=60)
    interrupted += _kill_loop(args, env, random.Random(11), done, partial)
    _run(args, env)
    assert interrupted >= 1, "no kill left a partly imported stream"
    want = _payloads(local, "demo", "src")
    assert _payloads(p, sc, "ref") == want
    assert _payloads(p, sc, "copy") == want
    p.close()
    local.close()
