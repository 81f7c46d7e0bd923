"""PravegaStore against a real Pravega standalone: the traps of a Pravega client
(an unreachable controller is retried for a minute, a blocked call must not hold the GIL
or ignore Ctrl-C) and what users rely on (one-line errors, exit 69, independent readers,
exact offsets)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_backend.errors import UnavailableError, UsageError
from stream_backend.stores.pravega import PravegaStore
from stream_backend.stores.pravega.wire import HEADER, PravegaOffsetIndex, parse_controller
from support import CLI, free_ports

ROOT = Path(__file__).resolve().parents[2]


def _name(p: str) -> str:
    return f"{p}-{uuid.uuid4().hex[:8]}"


class _Blackhole:
    """A TCP listener that completes handshakes (backlog) but never answers: the client
    then waits and retries forever, the trap a deadline must cover."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_unreachable_controller_is_unavailable_fast():
    store = PravegaStore(controller=f"tcp://127.0.0.1:{free_ports(1)[0]}", timeout=5)
    t = time.monotonic()
    with pytest.raises(UnavailableError) as ei:
        store.list_scopes()
    assert time.monotonic() - t < 5
    assert "\n" not in str(ei.value)
    store.close()


def test_silent_controller_times_out_within_the_timeout():
    with _Blackhole() as bh:
        store = PravegaStore(controller=f"tcp://127.0.0.1:{bh.port}", timeout=3)
        t = time.monotonic()
        with pytest.raises(UnavailableError, match="did not answer within 3s"):
            store.create_scope("x")
        took = time.monotonic() - t
        store.close()
    assert 2.5 < took < 8, took


def test_main_thread_stays_responsive_while_the_client_hangs():
    """A call blocked on the network releases the GIL: other threads run on."""
    with _Blackhole() as bh:
        store = PravegaStore(controller=f"tcp://127.0.0.1:{bh.port}", timeout=4)
        ticks = []
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                ticks.append(time.monotonic())
                time.sleep(0.05)

        t = threading.Thread(target=tick)
        t.start()
        with pytest.raises(UnavailableError):
            store.list_scopes()
        stop.set()
        t.join()
        store.close()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) > 40 and max(gaps) < 1.0


@pytest.mark.parametrize("bad", ["http://127.0.0.1:9090", "tcp://", "tcp://h:notaport", "tcp://h:1/path", "  "])
def test_bad_controller_url_is_usage_error(bad, monkeypatch):
    monkeypatch.delenv("PRAVEGA_CONTROLLER_URI", raising=False)
    with pytest.raises(UsageError):
        PravegaStore(controller=bad if bad.strip() else "::::")


def test_controller_url_forms():
    assert parse_controller("127.0.0.1:9090")[0] == "tcp://127.0.0.1:9090"
    assert parse_controller("tls://pravega.example:443") == ("tls://pravega.example:443", "pravega.example", 443, True)
    assert parse_controller("tcp://localhost")[2] == 9090


def test_cli_unavailable_exit_69_one_line_no_secret(tmp_path):
    env = dict(os.environ, pravega_client_auth_password="SeCrEt-do-not-print", pravega_client_auth_username="u")
    with _Blackhole() as bh:
        t = time.monotonic()
        r = subprocess.run(
            [CLI, "ls", "pravega://", "--controller", f"tcp://127.0.0.1:{bh.port}", "--timeout", "3"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )
        took = time.monotonic() - t
    assert r.returncode == 69, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "SeCrEt" not in r.stderr + r.stdout
    assert took < 15


#: run a command with SIGINT at its default, as a shell in a terminal starts it: an ignored
#: SIGINT is inherited across exec, and Python then never turns Ctrl-C into KeyboardInterrupt
_SIGINT_DEFAULT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                   "os.execv(sys.argv[1], sys.argv[1:])"]


def test_ctrl_c_interrupts_a_hanging_call():
    with _Blackhole() as bh:
        p = subprocess.Popen(
            [*_SIGINT_DEFAULT, CLI, "ls", "pravega://", "--controller", f"tcp://127.0.0.1:{bh.port}", "--timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread's stack
        )
        bh.sock.settimeout(60)
        probe, _ = bh.sock.accept()  # the store's quick reachability check, closed at once
        conn, _ = bh.sock.accept()  # the client's own connection: the call now waits for an answer
        probe.close()
        p.send_signal(signal.SIGINT)
        t = time.monotonic()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGABRT)  # where it hangs, for whoever reads the failure
            try:
                _out, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                _out, err = p.communicate()
            pytest.fail(f"Ctrl-C did not stop a call hanging on the Pravega client; its stacks:\n{err[-8000:]}")
        assert time.monotonic() - t < 2, "Ctrl-C waited for the call instead of cancelling it"
        assert p.returncode != 0
        assert "Traceback" not in p.stderr.read()
        conn.close()


def test_server_listens_on_loopback_only(pravega_server):
    if pravega_server.pid is None:
        pytest.fail("SB_TEST_PRAVEGA_CONTROLLER set: cannot inspect an external server", pytrace=False)
    conns = psutil.Process(pravega_server.pid).net_connections(kind="inet")
    listening = [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening
    assert all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for a in listening), listening


def test_round_trip_routing_keys_multi_segment(pravega_store):
    s, sc = pravega_store, _name("rk")
    s.create_stream(sc, "m", segments=3)
    keys = ["alpha", "beta", "gamma", "delta", "epsilon"]
    sent = {k: [] for k in keys}
    with s.writer(sc, "m") as w:
        for i in range(300):
            k = keys[i % 5]
            p = f"{k}:{i}".encode() * (1 + i % 7)
            sent[k].append(p)
            w.append(p, routing_key=k)
    got = {k: [] for k in keys}
    where = {}
    for seg in range(3):
        evs = list(s.read_events(sc, "m", seg))
        prev = -1
        foff = 0
        for e in evs:
            assert e.seq > prev and e.offset == foff
            prev, foff = e.seq, foff + len(e.payload)
            k = e.payload.split(b":")[0].decode()
            got[k].append(e.payload)
            where.setdefault(k, set()).add(seg)
        info = s.segment_info(sc, "m", seg)
        assert info.events == len(evs) and info.length == foff
        assert not evs or info.tail_seq == evs[-1].seq + HEADER + len(evs[-1].payload)
    assert got == sent
    assert all(len(v) == 1 for v in where.values())
    # offset index and read_range on a multi-segment stream
    for seg in range(3):
        data = b"".join(e.payload for e in s.read_events(sc, "m", seg))
        idx = s.offset_index(sc, "m", seg)
        assert idx.length == len(data)
        assert s.read_range(sc, "m", seg, 5, 50) == data[5:55]


def test_two_independent_readers(pravega_server):
    a = PravegaStore(controller=pravega_server.controller, timeout=60)
    b = PravegaStore(controller=pravega_server.controller, timeout=60)
    sc = _name("two")
    for segs in (1, 2):
        a.create_stream(sc, f"s{segs}", segments=segs)
        with a.writer(sc, f"s{segs}") as w:
            for i in range(200):
                w.append(b"%d" % i, routing_key=str(i % 9))
        results = {}

        def read(store, tag):
            results[tag] = sorted(
                int(e.payload) for seg in range(segs) for e in store.read_events(sc, f"s{segs}", seg)
            )

        ts = [threading.Thread(target=read, args=(st_, t)) for st_, t in ((a, "a"), (b, "b"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert results["a"] == results["b"] == list(range(200))
    # reader groups are temporary: nothing but our streams is listed, and the scope can go
    assert a.list_streams(sc) == ["s1", "s2"]
    for st_ in ("s1", "s2"):
        a.delete_stream(sc, st_)
    a.delete_scope(sc)
    a.close()
    b.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=60), st.data())
def test_offset_index_matches_naive(sizes, data):
    idx = PravegaOffsetIndex()
    seq, starts = 0, []
    for n in sizes:
        idx.add(seq, n)
        starts.append((seq, n))
        seq += HEADER + n
    total = sum(sizes)
    assert idx.length == total and idx.tail_seq == seq
    flat = []  # (seq, inner) of every file-view byte
    foff = 0
    for s_, n in starts:
        assert idx.offset_of(s_) == foff
        flat += [(s_, k) for k in range(n)]
        foff += n
    if flat:
        off = data.draw(st.integers(min_value=0, max_value=total - 1))
        assert idx.locate(off) == flat[off]
    assert idx.locate(total) == (seq, 0)
    with pytest.raises(ValueError):
        idx.locate(total + 1)


def test_writer_opened_in_a_thread_outlives_it(pravega_server):
    """A writer opened from a short-lived thread (a FUSE handler) keeps working after it."""
    store = PravegaStore(controller=pravega_server.controller, timeout=60)
    sc = _name("thr")
    box = {}

    def opener():
        store.create_stream(sc, "s")
        box["w"] = store.writer(sc, "s")
        box["w"].append(b"from the thread")
        box["w"].flush()

    t = threading.Thread(target=opener)
    t.start()
    t.join()  # the thread is gone, with whatever it held
    w = box["w"]
    w.append(b"after it ended")
    w.close()
    assert [e.payload for e in store.read_events(sc, "s", 0)] == [b"from the thread", b"after it ended"]
    store.close()
