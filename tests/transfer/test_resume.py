"""Pause and crash resume: SIGTERM -> exit 75 + resumable; SIGKILL at seeded random
moments -> the same command resumes, and the result equals an uninterrupted transfer."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from stream_backend.stores.local import LocalStore

from support.transfer import Proc, cli_env, done_line, fill_stream, listing, run_cli, snapshot_s3

KILLS = 20


@pytest.fixture
def small_store(store_root):
    s = LocalStore(root=str(store_root), max_event_size=16 * 1024)
    yield s
    s.close()


def _manifest_exists(bucket, prefix):
    resp = bucket.client().list_objects_v2(Bucket=bucket.name, Prefix=f"{prefix}/runs/", MaxKeys=1000)
    return any(o["Key"].endswith("manifest.json") for o in resp.get("Contents", []))


def _kill_loop(args, env, rnd, done_check, max_attempts=2 * KILLS):
    """SIGKILL ``args`` at seeded random moments until KILLS kills interrupted an
    unfinished transfer; return the number of attempts.

    Most moments are progress-based — when the transfer reaches the next of KILLS seeded
    increasing fractions of its work, plus a random few milliseconds — so they land
    inside real work whatever the machine's speed; a quarter are random delays after the
    start (start-up, planning, lease acquisition).
    """
    marks = sorted(rnd.uniform(0.02, 0.95) for _ in range(KILLS))
    interrupted = attempts = 0
    while interrupted < KILLS:
        attempts += 1
        assert attempts <= max_attempts, f"only {interrupted} kills interrupted the transfer in {attempts - 1} attempts"
        proc = Proc(args, env)
        if rnd.random() < 0.25:
            time.sleep(rnd.uniform(0, 0.4))
        else:
            proc.wait_fraction(marks[interrupted])
            time.sleep(rnd.uniform(0, 0.03))
        proc.p.send_signal(signal.SIGKILL)
        rc, _out, err = proc.finish()
        assert rc in (-signal.SIGKILL, 0), err[-2000:]  # 0: it finished just before the signal
        if rc != 0 and not done_check():
            interrupted += 1
        elif done_check():
            raise AssertionError(f"the transfer completed after {interrupted} kills; make it longer")
    return attempts


@pytest.mark.s3
@pytest.mark.slow
def test_export_kill_loop_identical_archive(small_store, store_root, s3_bucket):
    fill_stream(small_store, "demo", "src", segments=3, events=600, seed=21, max_size=8000)
    env = cli_env(store_root, s3_bucket.server, STREAM_BACKEND_CHECKPOINT_INTERVAL="0.1")
    common = ["--object-size", "4KiB", "--parallel", "3"]
    run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/ref", *common], env, check=0)
    args = ["export", "stream://demo/src", f"{s3_bucket.url}/resumed", *common]
    rnd = random.Random(1234)
    _kill_loop(args, env, rnd, lambda: _manifest_exists(s3_bucket, "resumed"))
    out = run_cli(args, env, check=0)
    assert done_line(out.stdout)["complete"]
    ref, got = snapshot_s3(s3_bucket, "ref"), snapshot_s3(s3_bucket, "resumed")
    assert got.keys() == ref.keys()
    assert got == ref
    # no multipart upload left behind
    assert not s3_bucket.client().list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads")


@pytest.mark.s3
@pytest.mark.slow
def test_import_kill_loop_no_gap_no_duplicate(local_store, store_root, s3_bucket):
    fill_stream(local_store, "demo", "src", segments=2, events=4000, seed=4, max_size=600)
    env = cli_env(store_root, s3_bucket.server)
    archive = f"{s3_bucket.url}/a"
    run_cli(["export", "stream://demo/src", archive, "--object-size", "4KiB"], env, check=0)
    args = ["import", archive, "stream://demo/copy"]
    rnd = random.Random(99)

    def complete():
        try:
            return LocalStore(root=str(store_root)).stream_info("demo", "copy").events == 4000
        except Exception:
            return False

    _kill_loop(args, env, rnd, complete)
    run_cli(args, env, check=0)
    fresh = LocalStore(root=str(store_root))
    assert listing(fresh, "demo", "copy") == listing(fresh, "demo", "src")


def test_sigterm_pauses_with_exit_75_and_resumes(small_store, store_root, tmp_path):
    fill_stream(small_store, "demo", "src", segments=2, events=1500, seed=9, max_size=6000)
    env = cli_env(store_root, STREAM_BACKEND_CHECKPOINT_INTERVAL="0.05")
    archive = str(tmp_path / "arch")
    args = ["export", "stream://demo/src", archive, "--object-size", "2KiB"]
    proc = Proc(args, env)
    assert proc.wait_fraction(0.1)  # some objects are durable
    proc.p.send_signal(signal.SIGTERM)
    rc, out, err = proc.finish()
    assert rc == 75, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "resume with: stream-backend export stream://demo/src" in last and archive in last
    st = json.loads(run_cli(["status", archive, "--json"], env, check=0).stdout)
    cps = st["in_progress"]["checkpoints"]
    assert cps and 0 < sum(c["done_events"] for c in cps) < 1500
    assert not st["in_progress"]["leases"]  # released on pause
    out = run_cli(args, env, check=0)
    assert done_line(out.stdout)["complete"]
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)
    # import pauses too: frozen at its first progress line (most objects still to go), so
    # the signal lands mid-import however fast the machine
    proc = Proc(["import", archive, "stream://demo/copy"], dict(env, STREAM_BACKEND_PROGRESS_INTERVAL="0.02"))
    assert proc.started.wait(timeout=30)
    proc.p.send_signal(signal.SIGSTOP)
    assert proc.fraction < 0.5, proc.lines[-3:]
    proc.p.send_signal(signal.SIGTERM)
    proc.p.send_signal(signal.SIGCONT)
    rc, _out, err = proc.finish()
    assert rc == 75, err[-2000:]
    assert "resume with: stream-backend import" in err.strip().splitlines()[-1]
    assert small_store.stream_info("demo", "copy").events < 1500  # paused part-way
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    run_cli(["verify", archive, "--against", "stream://demo/copy"], env, check=0)
    assert listing(small_store, "demo", "copy") == listing(small_store, "demo", "src")


def test_second_signal_abandons_at_once_and_still_resumes(small_store, store_root, tmp_path):
    fill_stream(small_store, "demo", "src", segments=2, events=1500, seed=19, max_size=6000)
    env = cli_env(store_root)
    ref, archive = str(tmp_path / "ref"), str(tmp_path / "arch")
    run_cli(["export", "stream://demo/src", ref, "--object-size", "2KiB"], env, check=0)
    args = ["export", "stream://demo/src", archive, "--object-size", "2KiB"]
    proc = Proc(args, env)
    assert proc.wait_fraction(0.1)
    proc.p.send_signal(signal.SIGINT)
    proc.p.send_signal(signal.SIGINT)
    rc, _out, err = proc.finish()
    assert rc == 75, err[-2000:]
    assert "resume with: stream-backend export" in err.strip().splitlines()[-1]
    run_cli(args, env, check=0)
    from support.transfer import snapshot_dir

    assert snapshot_dir(archive) == snapshot_dir(ref)


def test_run_end_stays_fixed_when_the_stream_grows_before_a_resume(small_store, tmp_path):
    """A run's end is fixed when it starts, for every segment: paused in segment 0 and
    resumed after the stream grew, run 1 still ends at the old tails (segment 1 too) and
    the appended events go to run 2."""
    from stream_backend.transfer.export import ArchiveState, ExportOptions, export_stream
    from stream_backend.transfer.progress import Progress
    from stream_backend.transfer.signals import PauseRequest
    from stream_backend.transfer.targets import open_target

    fill_stream(small_store, "demo", "grow", segments=2, events=200, seed=4)
    before = {s.segment: s.tail_seq for s in small_store.stream_info("demo", "grow").segments}
    target = open_target(f"file://{tmp_path}/a")
    opts = ExportOptions(object_size=8 * 1024, part_size=8 * 1024 * 1024)
    _export_paused_early(small_store, "grow", target, opts)
    with small_store.writer("demo", "grow") as w:  # the stream grows in every segment
        for i in range(20):
            w.append(b"late-%d" % i, segment=i % 2)
    done = export_stream(small_store, "demo", "grow", target, opts, PauseRequest(), Progress("export", "none"))
    assert done["run"] == 1 and done["complete"]
    run1 = ArchiveState(target).manifest(1)
    assert {s: run1.segment(s).to_seq for s in before} == before
    done = export_stream(small_store, "demo", "grow", target, opts, PauseRequest(), Progress("export", "none"))
    assert done["run"] == 2 and done["events"] == 20


def test_resume_with_other_options_keeps_the_runs_and_warns(small_store, tmp_path):
    """A run's object size and compression are fixed by its first attempt: a resume
    given others keeps the run's (the archive equals an uninterrupted one) and warns."""
    from stream_backend.transfer.export import ExportOptions, export_stream
    from stream_backend.transfer.progress import Progress
    from stream_backend.transfer.signals import PauseRequest
    from stream_backend.transfer.targets import open_target

    fill_stream(small_store, "demo", "opts", segments=2, events=200, seed=8)
    target = open_target(f"file://{tmp_path}/a")
    first = ExportOptions(object_size=8 * 1024, part_size=8 * 1024 * 1024)
    _export_paused_early(small_store, "opts", target, first)
    other = ExportOptions(object_size=32 * 1024, part_size=8 * 1024 * 1024, compression="zstd")
    done = export_stream(small_store, "demo", "opts", target, other, PauseRequest(), Progress("export", "none"))
    assert done["complete"] and "keeps them" in done["warning"] and "--object-size 8192" in done["warning"]
    straight = open_target(f"file://{tmp_path}/b")
    export_stream(small_store, "demo", "opts", straight, first, PauseRequest(), Progress("export", "none"))
    data = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*")  # noqa: E731
                         if p.is_file() and p.parts[len(root.parts)] in ("data", "runs")}
    assert data(tmp_path / "a") == data(tmp_path / "b")


def _export_paused_early(store, stream, target, opts):
    """Export demo/STREAM, paused (as by SIGTERM) as soon as its first bytes moved."""
    from stream_backend.errors import Paused
    from stream_backend.transfer.export import export_stream
    from stream_backend.transfer.progress import Progress
    from stream_backend.transfer.signals import PauseRequest

    pause = PauseRequest()

    class PauseOnFirstBytes(Progress):
        def add_done(self, events, nbytes, resumed=False):
            super().add_done(events, nbytes, resumed)
            if not resumed and nbytes:
                pause.request()

    with pytest.raises(Paused):
        export_stream(store, "demo", stream, target, opts, pause, PauseOnFirstBytes("export", "none"))
