"""The process that talks to Pravega through the ``pravega`` client (module pravega_client).

WHY a separate process: the client's calls never release the GIL and, when the controller
cannot be reached, retry forever. Run in our own process they would freeze timeouts,
progress bars and Ctrl-C. Here they run in a child that the parent (``pravega.py``) can
wait on with a deadline and kill; the parent turns that into ``UnavailableError``.

Protocol on stdin/stdout: frames of ``<u32 big-endian length><pickle>``. Request
``(op, kwargs)``; reply ``("ok", result)`` or ``("err", kind, message)`` where kind is
one of ``notfound exists usage sealed panic error``. The worker exits on EOF of stdin and
when the parent dies (PR_SET_PDEATHSIG). Its stderr is the parent's choice (the Rust
client prints panics there; the parent sends it to /dev/null unless debugging).

Credentials: the client reads ``pravega_client_auth_*`` and ``pravega_client_tls_cert_path``
from the environment this process inherits; nothing here prints or returns them.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import pickle
import signal
import struct
import sys
import threading
import time
import uuid
from array import array

_LEN = struct.Struct(">I")
DRY_AFTER = 2.0  # sealed stream: a wait this long without a slice means the end
STUCK_AFTER = 10.0  # seconds without a slice while the tail cut is not reached
HEADER = 8  # Pravega event framing in a segment: int32 type (0) + int32 length, big-endian
_HEAD = struct.Struct(">ii")
CHUNK = 1 << 20  # raw bytes per byte-stream read while walking headers
BIG_EVENT = 64 * 1024  # after an event this large, read only the next header


def _read_frame(f) -> object | None:
    head = f.read(4)
    if len(head) < 4:
        return None
    (n,) = _LEN.unpack(head)
    data = f.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


def _write_frame(f, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_LEN.pack(len(data)))
    f.write(data)
    f.flush()


class Fail(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Worker:
    def __init__(self, controller: str, auth: bool, tls: bool, tls_verify: bool):
        import pravega_client

        self.pc = pravega_client
        self.sm = pravega_client.StreamManager(
            controller, auth_enabled=auth, tls_enabled=tls, disable_cert_verification=not tls_verify
        )
        self.writers: dict[int, object] = {}
        self.byte_streams: dict[tuple[str, str], object] = {}
        self.scans: dict[int, _MultiScan] = {}
        self.ids = itertools.count(1)
        self.scratch = bytearray(1 << 20)
        self.loop = asyncio.new_event_loop()

    # --- namespace ---------------------------------------------------------------
    def op_ping(self):
        self.sm.list_scope()
        return True

    def op_list_scopes(self):
        return [s for s in self.sm.list_scope() if not s.startswith("_")]

    def op_create_scope(self, scope):
        return bool(self.sm.create_scope(scope))

    def op_delete_scope(self, scope):
        return bool(self.sm.delete_scope(scope))

    def op_list_streams(self, scope):
        return self.sm.list_stream(scope)

    def op_create_stream(self, scope, stream, segments, scaling, tags):
        policy = self._scaling(segments, scaling)
        return bool(
            self.sm.create_stream_with_policy(
                scope, stream, scaling_policy=policy, retention_policy=self.pc.StreamRetentionPolicy.none(), tags=tags
            )
        )

    def _scaling(self, segments, scaling):
        SP = self.pc.StreamScalingPolicy
        if scaling is None:
            return SP.fixed_scaling_policy(segments)
        kind, rate, factor = scaling
        if kind == "events":
            return SP.auto_scaling_policy_by_event_rate(rate, factor, segments)
        return SP.auto_scaling_policy_by_data_rate(rate, factor, segments)

    def op_get_tags(self, scope, stream):
        return list(self.sm.get_stream_tags(scope, stream) or [])

    def op_set_tags(self, scope, stream, segments, scaling, tags):
        return bool(
            self.sm.update_stream_with_policy(
                scope,
                stream,
                scaling_policy=self._scaling(segments, scaling),
                retention_policy=self.pc.StreamRetentionPolicy.none(),
                tags=tags,
            )
        )

    def op_seal_stream(self, scope, stream):
        return bool(self.sm.seal_stream(scope, stream))

    def op_delete_stream(self, scope, stream):
        self.byte_streams.pop((scope, stream), None)
        return bool(self.sm.delete_stream(scope, stream))

    def op_cuts(self, scope, stream):
        """Head and tail stream cuts {segment id: offset}: from two throw-away reader
        groups (the binding has no other way to see segments); both are deleted."""
        out = []
        for from_tail in (False, True):
            name = "sbcut" + uuid.uuid4().hex
            rg = self.sm.create_reader_group(name, scope, stream, from_tail)
            try:
                out.append(dict(rg.get_streamcut().get_segment_offset_map()))
            finally:
                self.sm.delete_reader_group(name, scope)
        return out

    def op_cuts_head(self, scope, stream):
        name = "sbcut" + uuid.uuid4().hex
        rg = self.sm.create_reader_group(name, scope, stream, False)
        try:
            return dict(rg.get_streamcut().get_segment_offset_map())
        finally:
            self.sm.delete_reader_group(name, scope)

    # --- single-segment raw reads -------------------------------------------------
    def _bs(self, scope, stream):
        bs = self.byte_streams.get((scope, stream))
        if bs is None:
            bs = self.sm.create_byte_stream(scope, stream)
            self.byte_streams[(scope, stream)] = bs
        return bs

    def op_raw_bounds(self, scope, stream):
        bs = self._bs(scope, stream)
        return bs.current_head_offset(), bs.current_tail_offset()

    def op_raw_read(self, scope, stream, offset, length):
        """Raw segment bytes [offset, offset+length): event headers included. The caller
        bounds the range by the tail (reading past it would wait for data)."""
        return self._read_at(self._bs(scope, stream), offset, length)

    def op_raw_scan(self, scope, stream, offset, end, max_size, limit=1 << 20):
        """Walk the event headers in [offset, end) without shipping payloads: returns
        (next offset, seqs, lengths) with seqs/lengths as int64 arrays' bytes. Small
        events are walked inside 1 MiB reads; after a large one (>= 64 KiB) only the next
        8-byte header is read, so the payload is skipped, never transferred. At most
        ``limit`` events per call, so a reply stays small and the caller's deadline holds."""
        bs = self._bs(scope, stream)
        seqs, lens = array("q"), array("q")
        buf, base = b"", offset  # buf holds the segment's bytes from offset ``base``
        pos, last = offset, 0
        while pos + HEADER <= end and len(seqs) < limit:
            if not (base <= pos and pos + HEADER <= base + len(buf)):
                want = HEADER if last >= BIG_EVENT else min(CHUNK, end - pos)
                buf, base = self._read_at(bs, pos, want), pos
                if len(buf) < HEADER:
                    break
            typ, size = _HEAD.unpack_from(buf, pos - base)
            if typ != 0 or not 0 <= size <= max_size:
                raise Fail("corrupt", f"segment data at offset {pos} of {scope}/{stream} is not a Pravega "
                                      f"event header (type {typ}, length {size})")
            if pos + HEADER + size > end:
                break  # the last event is still being written
            seqs.append(pos)
            lens.append(size)
            pos += HEADER + size
            last = size
        return pos, seqs.tobytes(), lens.tobytes()

    def _read_at(self, bs, offset, length) -> bytearray:
        # readinto takes only a bytearray (no memoryview) and returns at most ~512 KiB:
        # reuse one scratch buffer instead of allocating (and zeroing) length bytes per call
        bs.seek(offset, 0)
        out = bytearray()
        scratch = self.scratch
        while len(out) < length:
            want = length - len(out)
            buf = scratch if want >= len(scratch) else bytearray(want)
            n = bs.readinto(buf)
            if not n:
                break
            out += memoryview(buf)[:n]
        return out

    # --- multi-segment reads through a reader group --------------------------------
    def op_mscan_open(self, scope, stream, stop):
        sid = next(self.ids)
        self.scans[sid] = _MultiScan(self, scope, stream, stop)
        return sid

    def op_mscan_next(self, sid):
        if sid not in self.scans:
            raise Fail("error", "read lost: the Pravega client worker was restarted (after a timeout?)")
        return self.scans[sid].next()

    def op_mscan_close(self, sid):
        scan = self.scans.pop(sid, None)
        if scan:
            scan.close()
        return True

    # --- writers ------------------------------------------------------------------
    def op_writer_open(self, scope, stream):
        wid = next(self.ids)
        self.writers[wid] = self.sm.create_writer(scope, stream, max_inflight_events=1000)
        return wid

    def _writer(self, wid):
        w = self.writers.get(wid)
        if w is None:
            raise Fail("error", "writer lost: the Pravega client worker was restarted (after a timeout?); open a new writer")
        return w

    def op_writer_write(self, wid, events):
        w = self._writer(wid)
        for payload, key in events:
            w.write_event_bytes(payload, key)
        return len(events)

    def op_writer_flush(self, wid):
        self._writer(wid).flush()
        return True

    def op_writer_close(self, wid):
        w = self.writers.pop(wid, None)
        if w is not None:
            w.flush()
        return True


class _MultiScan:
    """Reads every segment of a stream and says which segment each slice came from.

    The binding's slices do not name their segment. After a slice is consumed we release
    it and take the reader offline, which writes the reader's positions into the reader
    group's state; the one segment whose position moved is the slice's segment. Then a
    fresh reader (new name: a name still marked online would panic) continues. ``stop``
    is the tail cut taken by the caller: the scan ends when every segment reaches it, so
    it never waits on the client's ~1 s empty slices except while data is in flight.
    """

    def __init__(self, w: Worker, scope, stream, stop):
        self.w, self.scope, self.stream = w, scope, stream
        # stop None (a sealed stream: no tail cut) means "until the reader runs dry"
        self.stop = dict(stop) if stop is not None else None
        self.dry = 0
        self.name = "sbscan" + uuid.uuid4().hex
        self.rg = w.sm.create_reader_group(self.name, scope, stream)
        self.pos = dict(self.rg.get_streamcut().get_segment_offset_map())
        self.n = 0
        self.sliced = False  # has any slice (even an empty one) come yet?
        self.kept = None  # the reader that returned an empty slice of a sealed stream

    def _cut(self) -> dict:
        try:
            return dict(self.rg.get_streamcut().get_segment_offset_map())
        except BaseException as e:  # noqa: BLE001 - PanicException
            # a sealed stream read to its end: every segment completed, no cut left
            if "Expected a StreamCut" not in str(e):
                raise
            return {}

    def done(self) -> bool:
        if self.stop is None:
            return self.dry >= 2
        return all(self.pos.get(s, 0) >= t for s, t in self.stop.items())

    def next(self):
        """One slice: ``(segment id, [(offset, payload), ...])``; None when done."""
        empty = 0
        while not self.done():
            self.n += 1
            reader, self.kept = self.kept, None
            if reader is None:
                reader = self.rg.create_reader(f"r{self.n}")
            try:
                try:
                    # a fresh reader group can take seconds to hand out its first segments:
                    # a short wait before any slice came would end a sealed scan with nothing
                    wait = STUCK_AFTER if self.stop is not None or not self.sliced else DRY_AFTER
                    sl = self.w.loop.run_until_complete(asyncio.wait_for(_acquire(reader), wait))
                    _let_client_threads_leave_python()
                except asyncio.TimeoutError:
                    if self.stop is None:  # sealed: read to the end (the cut says for sure)?
                        reader = None
                        self.dry = 2 if not self._cut() else self.dry + 1
                        if self.dry >= 2 and self._cut():
                            raise Fail(
                                "error",
                                f"the Pravega client stopped making progress reading sealed stream "
                                f"{self.scope}/{self.stream} (segments left: {sorted(self._cut())})",
                            )
                        continue
                    # The client parks on data it cannot parse (a zero-length event: it
                    # takes the empty header for a partial read) and would wait forever.
                    # Its reader lock is held by that wait, so no clean offline: the
                    # reader group is deleted by close().
                    reader = None
                    behind = {s: (self.pos.get(s), t) for s, t in self.stop.items() if self.pos.get(s, 0) < t}
                    raise Fail(
                        "error",
                        f"the Pravega client stopped making progress reading {self.scope}/{self.stream} "
                        f"(segment: (position, tail) {behind}); a zero-length event in a multi-segment "
                        "stream cannot be read by the Python client",
                    ) from None
                events = [(e.offset(), bytes(e.data())) for e in sl]
                if not events and self.stop is None:
                    # a sealed segment read to its end. Taking this reader offline now can
                    # block forever in the client, and dropping it would strand the other
                    # segments it owns: it reads on (the next slice names nothing to
                    # attribute until it carries events)
                    reader.release_segment(sl)
                    self.kept, reader = reader, None
                else:
                    reader.release_segment(sl)
            finally:
                if reader is not None:
                    reader.reader_offline()
            self.sliced = True
            cur = self._cut()
            # moved, or gone from the cut because the slice completed a sealed segment
            moved = [s for s, off in cur.items() if off != self.pos.get(s)] + [s for s in self.pos if s not in cur]
            prev, self.pos = self.pos, cur
            if os.environ.get("STREAM_BACKEND_PRAVEGA_DEBUG"):
                print("slice", self.n, len(events), prev, cur, moved, file=sys.stderr, flush=True)
            if events:
                self.dry = 0
                if len(moved) > 1:  # disambiguate: the slice starts where its segment stood
                    moved = [s for s in moved if prev.get(s) == events[0][0]]
                if len(moved) != 1:
                    raise Fail("error", f"cannot tell which segment a slice came from (candidates: {moved})")
                if not cur and self.stop is None:
                    self.dry = 2  # nothing left to read
                return moved[0], events
            if not cur and self.stop is None:
                self.dry = 2
                continue
            empty += 1
            if self.stop is None:
                # an empty slice that completed a sealed segment is progress, not the end
                self.dry = 0 if moved else self.dry + 1
                continue
            if empty > 30:
                raise Fail("error", "reader made no progress towards the tail stream cut")
        return None

    def close(self):
        try:
            self.w.sm.delete_reader_group(self.name, self.scope)
        except Exception:
            pass


def _let_client_threads_leave_python(limit: float = 5.0) -> None:
    """Wait until no client thread is running Python code before the next client call.

    The client resolves a slice future from one of its runtime threads, which runs
    ``loop.call_soon_threadsafe`` in Python. Our await can return while that thread is
    still inside it (the GIL switched mid-call). The next client call blocks on the runtime
    *holding the GIL*, the runtime thread waits for the GIL to finish its call: deadlock
    (seen as ``get_streamcut`` never returning under CPU load). Sleeping drops the GIL;
    once no other thread has a Python frame, the runtime is free again.
    """
    me = threading.get_ident()
    deadline = time.monotonic() + limit
    while any(tid != me for tid in sys._current_frames()) and time.monotonic() < deadline:
        time.sleep(0.0005)


async def _acquire(reader):
    # the binding builds its future on the *running* loop, so call it inside a coroutine
    return await reader.get_segment_slice_async()


def _classify(e: BaseException) -> tuple[str, str]:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    low = msg.lower()
    if "panic" in type(e).__name__.lower():
        return "panic", msg[:300]
    if "invalid stream/scope" in low or "illegal" in low:
        return "usage", msg[:300]
    if "not exist" in low or "notfound" in low or "not found" in low or "does not exist" in low:
        return "notfound", msg[:300]
    if "already exist" in low:
        return "exists", msg[:300]
    if "sealed" in low:
        return "sealed", msg[:300]
    if "invalid" in low or "illegal" in low:
        return "usage", msg[:300]
    return "error", msg[:300]


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main() -> int:
    _die_with_parent()
    if os.environ.get("STREAM_BACKEND_PRAVEGA_DEBUG"):
        import faulthandler

        faulthandler.dump_traceback_later(20, repeat=True)  # where a stuck call sits
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C hits it
    # Frames go to a private copy of fd 1; fd 1 itself becomes stderr. The Rust client
    # logs (tracing, ANSI-coloured) straight to fd 1 -- e.g. a warning when a reader
    # finishes a sealed segment -- and those bytes, read as a frame length, left the
    # parent waiting for a frame that never came (UnavailableError after --timeout).
    sys.stdout.flush()
    wfile = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    rfile = sys.stdin.buffer
    sys.stdout = sys.stderr  # nothing may write into the frame stream by accident
    init = _read_frame(rfile)
    if init is None:
        return 0
    try:
        worker = Worker(**init)
        _write_frame(wfile, ("ok", True))
    except BaseException as e:  # noqa: BLE001 - pyo3 PanicException derives from BaseException
        _write_frame(wfile, ("err",) + _classify(e))
        return 1
    while True:
        req = _read_frame(rfile)
        if req is None:
            return 0
        op, kwargs = req
        if os.environ.get("STREAM_BACKEND_PRAVEGA_DEBUG"):
            print("op", op, {k: v for k, v in kwargs.items() if k != "events"}, file=sys.stderr, flush=True)
        try:
            result = getattr(worker, "op_" + op)(**kwargs)
            reply = ("ok", result)
        except Fail as e:
            reply = ("err", e.kind, str(e))
        except BaseException as e:  # noqa: BLE001
            reply = ("err",) + _classify(e)
        _write_frame(wfile, reply)


if __name__ == "__main__":
    sys.exit(main())
