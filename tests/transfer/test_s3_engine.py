"""S3 specifics: fault injection, multipart resume via ListParts, leases, sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from stream_backend.stores.local import LocalStore

from support.transfer import Proc, cli_env, kill_once, done_line, fill_stream, listing, run_cli, snapshot_dir, snapshot_s3


@pytest.mark.s3
def test_faults_export_import_complete(local_store, store_root, s3_bucket, fault_proxy):
    fill_stream(local_store, "demo", "src", segments=2, events=300, seed=31, max_size=6000)
    proxy = fault_proxy(s3_bucket.server, seed=7, slowdown=0.05, internal_error=0.02, reset=0.02, max_consecutive=3)
    env = cli_env(store_root, proxy.server)
    archive = f"{s3_bucket.url}/faulty"
    run_cli(["export", "stream://demo/src", archive, "--object-size", "8KiB"], env, check=0)
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    injected = sum(v for k, v in proxy.stats.items() if k != "requests")
    assert injected >= 5, proxy.stats
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
    # the archive itself is sound, read without the proxy
    direct = cli_env(store_root, s3_bucket.server)
    run_cli(["verify", archive, "--against", "stream://demo/src"], direct, check=0)


def _open_parts(bucket, prefix):
    c = bucket.client()
    n = 0
    for up in c.list_multipart_uploads(Bucket=bucket.name, Prefix=prefix).get("Uploads", []):
        n += len(c.list_parts(Bucket=bucket.name, Key=up["Key"], UploadId=up["UploadId"]).get("Parts", []))
    return n


@pytest.mark.s3
@pytest.mark.slow
def test_multipart_resume_reuses_completed_parts(store_root, s3_bucket, fault_proxy):
    store = LocalStore(root=str(store_root))
    store.create_stream("demo", "big", segments=1)
    rnd = __import__("random").Random(5)
    with store.writer("demo", "big") as w:
        for i in range(46):
            w.append(rnd.randbytes(256 * 1024), f"k{i % 3}", segment=0)
    env = cli_env(store_root, s3_bucket.server)
    common = ["--object-size", "12MiB", "--part-size", "5MiB", "--parallel", "1"]
    run_cli(["export", "stream://demo/big", f"{s3_bucket.url}/ref", *common], env, check=0)
    args = ["export", "stream://demo/big", f"{s3_bucket.url}/mp", *common]
    # uploads through a proxy that holds each PUT 0.5 s: the kill lands while parts are
    # stored and the upload is open, however fast or busy the machine is
    slow = fault_proxy(s3_bucket.server, latency=1.0, latency_s=0.5, only_methods=("PUT",))
    kill_once(args, cli_env(store_root, slow.server), lambda: _open_parts(s3_bucket, "mp/") >= 1, "a part was stored")
    stored = _open_parts(s3_bucket, "mp/")
    assert stored >= 1
    out = run_cli(args, env, check=0)
    done = done_line(out.stdout)
    assert done["complete"] and done["reused_parts"] >= 1, done
    assert snapshot_s3(s3_bucket, "mp") == snapshot_s3(s3_bucket, "ref")
    assert not s3_bucket.client().list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads")
    run_cli(["verify", f"{s3_bucket.url}/mp", "--against", "stream://demo/big"], env, check=0)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_concurrent_export_one_proceeds_other_fails(local_store, store_root, tmp_path, where, request):
    fill_stream(local_store, "demo", "src", segments=2, events=1500, seed=12, max_size=6000)
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        env = cli_env(store_root, bucket.server)
        archive = f"{bucket.url}/c"
    else:
        env = cli_env(store_root)
        archive = str(tmp_path / "a")
    first = Proc(["export", "stream://demo/src", archive, "--object-size", "2KiB"], env)
    assert first.started.wait(timeout=30)  # totals are reported once the leases are held
    first.p.send_signal(signal.SIGSTOP)  # alive, lease unexpired: the second must not proceed
    try:
        second = run_cli(["export", "stream://demo/src", archive, "--object-size", "2KiB"], env)
    finally:
        first.p.send_signal(signal.SIGCONT)
    rc, out, err = first.finish()
    assert rc == 0, err[-2000:]
    assert second.returncode == 75, second.stderr[-2000:]
    assert "being exported by" in second.stderr and "Traceback" not in second.stderr
    run_cli(["verify", archive, "--against", "stream://demo/src"], env, check=0)


def test_stale_lease_of_dead_process_taken_over(local_store, store_root, tmp_path):
    import socket

    from stream_backend.transfer.checkpoint import _proc_start

    fill_stream(local_store, "demo", "src", segments=1, events=20, seed=1, max_size=500)
    env = cli_env(store_root)
    archive = tmp_path / "a"
    (archive / "leases").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lease = {"holder": f"{socket.gethostname()}:{dead.pid}:1", "host": socket.gethostname(), "pid": dead.pid,
             "start": "1", "expires": time.time() + 3600, "op": "export", "segment": 0}
    (archive / "leases" / "000000.json").write_text(json.dumps(lease))
    run_cli(["export", "stream://demo/src", str(archive)], env, check=0)
    # a live holder on another host is respected until its lease expires
    lease.update(holder="elsewhere:1:1", host="elsewhere", pid=1)
    (archive / "leases" / "000000.json").write_text(json.dumps(lease))
    proc = run_cli(["export", "stream://demo/src", str(archive)], env)
    assert proc.returncode == 75 and "elsewhere" in proc.stderr
    lease["expires"] = time.time() - 1
    (archive / "leases" / "000000.json").write_text(json.dumps(lease))
    run_cli(["export", "stream://demo/src", str(archive)], env, check=0)
    assert _proc_start(os.getpid())


def test_shards_write_one_run_manifest_by_the_last(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=4, events=200, seed=17, max_size=3000)
    env = cli_env(store_root)
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    run_cli(["export", "stream://demo/src", str(whole), "--object-size", "8KiB"], env, check=0)
    out = run_cli(["export", "stream://demo/src", str(sharded), "--object-size", "8KiB", "--shard", "0/2"], env, check=0)
    d = done_line(out.stdout)
    assert not d["complete"] and d["waiting_for"] == [1, 3]
    assert not (sharded / "runs" / "00000001" / "manifest.json").exists()
    before = snapshot_dir(sharded)
    run_cli(["export", "stream://demo/src", str(sharded), "--object-size", "8KiB", "--shard", "0/2"], env, check=0)
    assert snapshot_dir(sharded) == before  # re-running a shard is idempotent
    env1 = dict(env, JOB_COMPLETION_INDEX="1")
    out = run_cli(["export", "stream://demo/src", str(sharded), "--object-size", "8KiB", "--shards", "2"], env1, check=0)
    assert done_line(out.stdout)["complete"]
    assert snapshot_dir(sharded) == snapshot_dir(whole)
    run_cli(["export", "stream://demo/src", str(sharded), "--object-size", "8KiB", "--shard", "1/2"], env, check=0)
    assert snapshot_dir(sharded) == snapshot_dir(whole)
    run_cli(["import", str(sharded), "stream://demo/copy"], env, check=0)
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")


def _peak_rss(args, env):
    """The export's true peak RSS (the kernel's ru_maxrss, in bytes), not a sample: polling
    missed or caught peaks depending on the machine's load."""
    import sys

    from support.transfer import CLI

    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
             "sys.stderr.write(r.stderr.decode(errors='replace')[-2000:])\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n")
    p = subprocess.run([sys.executable, "-c", probe, CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    rc, peak = map(int, p.stdout.split())
    assert rc == 0, p.stderr
    return peak


@pytest.mark.s3
@pytest.mark.slow
def test_memory_bounded_by_parts_not_stream_length(store_root, s3_bucket):
    """Peak RSS of an export depends on part size x parts in flight, not on the stream's length."""
    import random

    store = LocalStore(root=str(store_root))
    rnd = random.Random(3)
    # x 512 KiB events: 0.5, 48 and 144 MiB; medium already has 3 objects, enough for the
    # parts in flight to reach their most, so a longer stream must not add to it
    sizes = {"tiny": 1, "medium": 96, "large": 288}
    for name, n in sizes.items():
        store.create_stream("demo", name, segments=1)
        with store.writer("demo", name) as w:
            for _ in range(n):
                w.append(rnd.randbytes(512 * 1024), None, segment=0)
    env = cli_env(store_root, s3_bucket.server)
    part = 5 * 2**20
    common = ["--object-size", "16MiB", "--part-size", "5MiB", "--parallel", "2", "--progress", "none"]
    peak = {name: _peak_rss(["export", f"stream://demo/{name}", f"{s3_bucket.url}/{name}", *common], env)
            for name in sizes}
    # three times the data, (about) the same memory
    assert peak["large"] - peak["medium"] < 2 * part, peak
    # and what data costs at all is a few parts: (parallel + 2) parts, each possibly copied
    # once, plus the interpreter's and the HTTP client's buffers (measured: 42-46 MiB here)
    assert peak["medium"] - peak["tiny"] < 2 * (2 + 2) * part + 16 * 2**20, peak
    run_cli(["verify", f"{s3_bucket.url}/large", "--against", "stream://demo/large"], env, check=0)


@pytest.mark.s3
@pytest.mark.parametrize("server", ["seaweedfs", "moto"])
def test_conditional_lease_writes(server, request, monkeypatch):
    from stream_backend.errors import WriterBusyError
    from stream_backend.transfer.checkpoint import LeaseSet
    from stream_backend.transfer.targets import PreconditionFailed, open_target

    bucket = request.getfixturevalue("s3_bucket" if server == "seaweedfs" else "moto_bucket")
    for k, v in bucket.server.env.items():
        monkeypatch.setenv(k, v)
    t = open_target(f"{bucket.url}/leasetest")
    t.check_access()
    assert t.write_if("x.json", b"1", absent=True)
    with pytest.raises(PreconditionFailed):
        t.write_if("x.json", b"2", absent=True)
    data, etag = t.read_versioned("x.json")
    assert data == b"1" and etag
    t.write_if("x.json", b"3", etag=etag)
    with pytest.raises(PreconditionFailed):
        t.write_if("x.json", b"4", etag=etag)  # stale ETag: someone else's write in between
    # a live lease held by another host blocks; releasing lets the next one in
    a = LeaseSet(t, [0, 1], ttl=30)
    a.settle = 0
    a.acquire()
    b = LeaseSet(t, [1], ttl=30)
    b.settle = 0
    b.me = dict(b.me, holder="otherhost:1:1", host="otherhost", pid=1)
    with pytest.raises(WriterBusyError):
        b.acquire()
    a.release()
    b.acquire()
    b.release()
    assert t.list("leases") == {}


@pytest.mark.s3
def test_truncated_downloads_of_small_documents_are_retried(local_store, store_root, s3_bucket, fault_proxy):
    """A dropped response body on a lease, checkpoint or manifest read is retried like a data
    part's, never the end of the export (it failed 2 exports in 5 with 'ClientPayloadError')."""
    fill_stream(local_store, "demo", "src", segments=3, events=200, seed=5, max_size=3000)
    proxy = fault_proxy(s3_bucket.server, seed=11, truncate=0.3, only_methods=("GET",), max_consecutive=3)
    env = cli_env(store_root, proxy.server)
    archive = f"{s3_bucket.url}/trunc"
    for _ in range(2):  # the second run reads the first run's manifest, parts and identity
        run_cli(["export", "stream://demo/src", archive, "--object-size", "8KiB"], env, check=0)
        fill_stream(local_store, "demo", "src", segments=3, events=30, seed=6, max_size=3000)
    run_cli(["status", archive], env, check=0)
    run_cli(["import", archive, "stream://demo/copy"], env, check=0)
    assert proxy.stats["truncate"] >= 5, proxy.stats
    direct = cli_env(store_root, s3_bucket.server)
    run_cli(["verify", archive, "--against", "stream://demo/copy"], direct, check=0)


@pytest.mark.s3
def test_progress_counts_the_retries(local_store, store_root, s3_bucket, fault_proxy):
    """Every fault the endpoint answers with (here 503 SlowDown on uploads) is counted in
    the progress lines and the summary, so a struggling endpoint shows before it fails."""
    fill_stream(local_store, "demo", "src", segments=1, events=300, seed=2, max_size=6000)
    proxy = fault_proxy(s3_bucket.server, seed=3, slowdown=0.3, only_methods=("PUT",), max_consecutive=2)
    env = cli_env(store_root, proxy.server)
    p = run_cli(["export", "stream://demo/src", f"{s3_bucket.url}/r", "--object-size", "8KiB", "--progress", "json"],
                env, check=0)
    injected = proxy.stats["slowdown"]
    assert injected >= 5, proxy.stats
    assert done_line(p.stdout)["this_attempt"]["retries"] == injected
    lines = [json.loads(x) for x in p.stderr.splitlines() if x.startswith('{"event":"progress"')]
    assert lines and lines[-1]["retries"] == injected
