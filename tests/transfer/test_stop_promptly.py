"""SIGTERM is honoured in bounded time whatever the endpoint does, so a pod exits 75 (a
pause, which a Job does not count as a failure) before the kubelet's SIGKILL: during
set-up against an endpoint that accepts connections and never answers, at once; during
the transfer, after at most the pause grace (parts in flight that cannot finish are
abandoned). The same command then resumes to the archive an uninterrupted export makes."""

from __future__ import annotations

import signal
import socket
import threading
import time

from support.transfer import Proc, cli_env, fill_stream, run_cli, snapshot_s3


def _silent_server():
    """Accepts TCP connections, reads, never answers (a frozen endpoint)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)

    threading.Thread(target=loop, daemon=True).start()
    return srv, conns


def test_sigterm_during_setup_against_a_frozen_endpoint(local_store):
    fill_stream(local_store, "st", "s", segments=1, events=10, max_size=100)
    srv, conns = _silent_server()
    try:
        env = cli_env(local_store.root, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
        port = srv.getsockname()[1]
        p = Proc(["export", "stream://st/s", "s3://bucket/p", "--endpoint-url", f"http://127.0.0.1:{port}"], env)
        deadline = time.monotonic() + 30
        while not conns and time.monotonic() < deadline:  # the CLI is waiting on the endpoint
            time.sleep(0.05)
        assert conns, "the export never connected"
        t0 = time.monotonic()
        p.p.send_signal(signal.SIGTERM)
        rc, _out, err = p.finish(timeout=30)
        assert rc == 75, err
        assert time.monotonic() - t0 < 5
        assert "before the transfer started" in err and "resume with:" in err
    finally:
        srv.close()
        for c in conns:
            c.close()


def test_sigterm_with_the_endpoint_frozen_mid_transfer(local_store, s3_bucket, fault_proxy):
    fill_stream(local_store, "st", "big", segments=2, events=1500, max_size=20000, seed=4)
    proxy = fault_proxy(s3_bucket.server, seed=1)
    env = cli_env(local_store.root, proxy.server, STREAM_BACKEND_PAUSE_GRACE="3")
    archive = f"{s3_bucket.url}/frozen"
    args = ["export", "stream://st/big", archive, "--object-size", "64KiB", "--part-size", "64KiB",
            "--progress", "json"]
    p = Proc(args, env)
    assert p.wait_fraction(0.2, timeout=60)
    proxy.latency_s, proxy.rates["latency"] = 600.0, 1.0  # every new request now hangs
    t0 = time.monotonic()
    p.p.send_signal(signal.SIGTERM)
    rc, _out, err = p.finish(timeout=60)
    assert rc == 75, err
    assert time.monotonic() - t0 < 3 + 5  # the grace, plus the process's way out
    assert "resume with:" in err

    proxy.rates["latency"] = 0.0
    run_cli(args, env, check=0, timeout=180)
    direct = cli_env(local_store.root, s3_bucket.server)
    run_cli(["verify", archive, "--against", "stream://st/big"], direct, check=0)
    run_cli(["export", "stream://st/big", f"{s3_bucket.url}/straight", "--object-size", "64KiB",
             "--part-size", "64KiB"], direct, check=0)
    resumed = {k: v for k, v in snapshot_s3(s3_bucket, "frozen").items() if k.startswith(("data/", "runs/"))}
    straight = {k: v for k, v in snapshot_s3(s3_bucket, "straight").items() if k.startswith(("data/", "runs/"))}
    assert resumed == straight
