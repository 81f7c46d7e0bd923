"""PravegaStore: the StreamStore protocol on a Pravega cluster (protocol "pravega").

Every client call runs in a worker process (``pravega_worker.py``): the ``pravega``
client never releases the GIL and retries an unreachable controller forever, so only a
process we can wait on with a deadline and kill keeps ``timeout`` and Ctrl-C working.
A call that does not answer within ``timeout`` kills the worker and raises
UnavailableError (exit 69); the next call starts a fresh worker.

Positions. seq = the event's byte offset in its segment (``EventData.offset()``: the
start of its 8-byte header); ``tail_seq`` = the segment's write offset (tail stream cut).

Reading. Single-segment streams are read as raw segment bytes (the client's ByteStream)
and the 8-byte event headers are parsed here: exact, seekable, zero-length events
included. Multi-segment streams are read through a reader group; the worker tells which
segment each slice came from by the reader group's positions (see ``_MultiScan``).
docs/pravega.md says precisely what is exact for which stream shape.

The offset index (file view <-> seq) is built by scanning a segment once and kept in
memory in this store object, extended incrementally as the segment grows (single
segment) or rebuilt when the tail moved (multi-segment).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import queue
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from bisect import bisect_left, bisect_right
from typing import Iterator
from urllib.parse import urlsplit

from ..errors import (
    AlreadyExistsError,
    CorruptionError,
    EventTooLargeError,
    NotEmptyError,
    NotFoundError,
    SealedError,
    StreamBackendError,
    UnavailableError,
    UnsupportedError,
    UsageError,
    WriterBusyError,
)
from .base import DEFAULT_MAX_EVENT_SIZE, Event, SegmentInfo, StreamInfo

HEADER = 8
_HEAD = struct.Struct(">ii")
_LEN = struct.Struct(">I")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
OUR_TAG = "stream-backend"
LAST_APPEND_TAG = "sb.last-append."
SCALING_TAG = "sb.scaling."
ID_TAG = "sb.id."  # a stream's identity: differs when a stream is deleted and re-created
CHUNK = 4 << 20  # raw bytes per read call: several 1 MiB events per round trip
DEFAULT_CONTROLLER = "tcp://127.0.0.1:9090"


# --- routing keys ---------------------------------------------------------------------
def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & 0xFFFFFFFFFFFFFFFF


def _fmix(k: int) -> int:
    M = 0xFFFFFFFFFFFFFFFF
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M
    k ^= k >> 33
    return k


def murmur3_x64_128_upper(data: bytes, seed: int) -> int:
    """First 64 bits of MurmurHash3_x64_128 (what the client routes by)."""
    M = 0xFFFFFFFFFFFFFFFF
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed & M
    n = len(data)
    nblocks = n // 16
    for i in range(nblocks):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        k1 = (_rotl((k1 * c1) & M, 31) * c2) & M
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & M
        h1 = (h1 * 5 + 0x52DCE729) & M
        k2 = (_rotl((k2 * c2) & M, 33) * c1) & M
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & M
        h2 = (h2 * 5 + 0x38495AB5) & M
    tail = data[nblocks * 16 :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * c2) & M, 33) * c1) & M
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * c1) & M, 31) * c2) & M
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & M
    h2 = (h2 + h1) & M
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & M
    return h1


def routing_key_position(key: str) -> float:
    """Where the client puts ``key`` in the key space [0, 1): UTF-16LE units in a buffer
    as long as the key's UTF-8 byte length (zero-padded, as the Rust client does),
    MurmurHash3 with the Java EventRouter seed, upper 64 bits as a fraction."""
    units = key.encode("utf-16-le")
    buf = units.ljust(2 * len(key.encode("utf-8")), b"\0")[: 2 * len(key.encode("utf-8"))]
    upper = murmur3_x64_128_upper(buf, 1741865571)
    shifted = (upper >> 12) & 0x000FFFFFFFFFFFFF
    return struct.unpack("<d", struct.pack("<Q", 0x3FF0000000000000 + shifted))[0] - 1.0


_PIN_CACHE: dict[tuple[int, int], str] = {}


def pin_key(segment: int, segments: int) -> str:
    """A routing key that lands in segment number ``segment`` of a fixed stream of
    ``segments`` segments (key range [segment/segments, (segment+1)/segments))."""
    got = _PIN_CACHE.get((segment, segments))
    if got is None:
        lo, hi = segment / segments, (segment + 1) / segments
        for i in range(1_000_000):
            k = f"sb-pin-{segment}-{i}"
            # stay clear of the range ends: float rounding in the key map is not ours
            p = routing_key_position(k)
            if lo + 1e-9 < p < hi - 1e-9:
                got = k
                break
        else:  # pragma: no cover - 1e6 tries cover any sane segment count
            raise UsageError(f"cannot find a routing key for segment {segment} of {segments}")
        _PIN_CACHE[(segment, segments)] = got
    return got


# --- offset index -----------------------------------------------------------------------
class PravegaOffsetIndex:
    """Dense index of one segment: seq (byte offset of the event) and file-view offset of
    every event, plus payload lengths. O(log n) both ways."""

    def __init__(self, head: int = 0) -> None:
        self.seqs = array("q")
        self.foffs = array("q")
        self.lens = array("q")
        self.scanned_to = head  # raw offset up to which events are indexed
        self.final = False  # scanned to the end of a sealed stream: nothing can follow
        self._length = 0
        # non-empty events only, for locate()
        self._ne_foffs = array("q")
        self._ne_idx = array("q")

    def add(self, seq: int, size: int) -> None:
        if size:
            self._ne_foffs.append(self._length)
            self._ne_idx.append(len(self.seqs))
        self.seqs.append(seq)
        self.foffs.append(self._length)
        self.lens.append(size)
        self._length += size
        self.scanned_to = seq + HEADER + size

    @property
    def length(self) -> int:
        return self._length

    @property
    def tail_seq(self) -> int:
        return self.scanned_to

    @property
    def events(self) -> int:
        return len(self.seqs)

    def locate(self, offset: int) -> tuple[int, int]:
        if offset < 0 or offset > self._length:
            raise ValueError(f"offset {offset} outside [0, {self._length}]")
        if offset == self._length:
            return self.scanned_to, 0
        j = bisect_right(self._ne_foffs, offset) - 1
        i = self._ne_idx[j]
        return self.seqs[i], offset - self.foffs[i]

    def offset_of(self, seq: int) -> int:
        if seq >= self.scanned_to:
            if seq == self.scanned_to:
                return self._length
            raise ValueError(f"seq {seq} beyond the indexed tail {self.scanned_to}")
        i = bisect_left(self.seqs, seq)
        if i < len(self.seqs) and self.seqs[i] == seq:
            return self.foffs[i]
        # between events: the next event's offset
        return self.foffs[i] if i < len(self.seqs) else self._length


def _parse(raw: bytes, base: int):
    """Yield (seq, payload) of complete events in ``raw`` (which starts at segment offset
    ``base``) and finally return the offset of the first incomplete byte."""
    pos, n = 0, len(raw)
    mv = memoryview(raw)
    while pos + HEADER <= n:
        typ, size = _HEAD.unpack_from(raw, pos)
        if typ != 0 or size < 0 or size > DEFAULT_MAX_EVENT_SIZE:
            raise CorruptionError(
                f"segment data at offset {base + pos} is not a Pravega event header (type {typ}, length {size})"
            )
        if pos + HEADER + size > n:
            break
        yield base + pos, bytes(mv[pos + HEADER : pos + HEADER + size])
        pos += HEADER + size
    return base + pos


def _cuts_scaled(head: dict, tail: dict | None) -> bool:
    """Do a stream's head and tail cuts show a scale? Segment ids are epoch << 32 |
    number; a stream that never scaled has only epoch-0 segments, the same at both ends."""
    if any(s >> 32 for s in head) or (tail is not None and any(s >> 32 for s in tail)):
        return True
    return tail is not None and set(head) != set(tail)


def _scaled_error(scope: str, stream: str, seg_id: int | None = None) -> UnsupportedError:
    met = "" if seg_id is None else f" (a read met segment {seg_id >> 32}.{seg_id & 0xFFFFFFFF}, epoch.number)"
    return UnsupportedError(
        f"pravega://{scope}/{stream} has scaled since it was created{met}: this Pravega client reads only the "
        "segments of one epoch and would leave events out, so it refuses; export fixed streams that never "
        "scaled (docs/pravega.md)"
    )


# --- the worker process ---------------------------------------------------------------
def parse_controller(uri: str) -> tuple[str, str, int, bool]:
    """-> (client URI, host, port, tls). Accepts tcp://h:p, tls://h:p, h:p (tcp)."""
    raw = (uri or "").strip()
    if not raw:
        raise UsageError("empty Pravega controller URI")
    if "://" not in raw:
        raw = "tcp://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port or 9090
    except ValueError:
        raise UsageError(f"bad Pravega controller URI {uri!r} (expected tcp://host:port or tls://host:port)") from None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"bad Pravega controller URI {uri!r} (expected tcp://host:port or tls://host:port)")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}", host, port, parts.scheme == "tls"


_SPAWN_Q: "queue.Queue" = None  # type: ignore[assignment]
_SPAWN_LOCK = threading.Lock()


def _spawn(args, **kw) -> subprocess.Popen:
    """Popen from one long-lived thread. The worker asks the kernel to kill it when its
    parent dies (PR_SET_PDEATHSIG), and "parent" means the *thread* that forked it: a
    worker started from a short-lived thread (a FUSE handler, a follow reader) would be
    killed when that thread ends."""
    global _SPAWN_Q
    with _SPAWN_LOCK:
        if _SPAWN_Q is None:
            _SPAWN_Q = queue.Queue()

            def loop():
                while True:
                    a, k, box, done = _SPAWN_Q.get()
                    try:
                        box.append(subprocess.Popen(a, **k))
                    except BaseException as e:  # noqa: BLE001 - handed to the caller
                        box.append(e)
                    done.set()

            threading.Thread(target=loop, name="pravega-worker-spawner", daemon=True).start()
    box: list = []
    done = threading.Event()
    _SPAWN_Q.put((args, kw, box, done))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


class _Worker:
    """One child process running ``pravega_worker``; calls with a deadline."""

    def __init__(self, uri: str, host: str, port: int, tls: bool, timeout: float, auth: bool | None, tls_verify: bool):
        self.uri, self.host, self.port, self.tls = uri, host, port, tls
        self.timeout = timeout
        self.auth = auth if auth is not None else any(k.startswith("pravega_client_auth_") for k in os.environ)
        self.tls_verify = tls_verify
        self.proc: subprocess.Popen | None = None
        self.lock = threading.RLock()

    def _start(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:  # fast, clear failure for the common case: nothing listening / no route
            socket.create_connection((self.host, self.port), timeout=max(0.1, min(self.timeout, 10))).close()
        except OSError as e:
            raise UnavailableError(
                f"cannot reach Pravega controller {self.uri}: {e.strerror or e}"
            ) from None
        debug = os.environ.get("STREAM_BACKEND_PRAVEGA_DEBUG")
        self.proc = _spawn(
            [sys.executable, "-m", "stream_backend.stores.pravega_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env=dict(os.environ, RUST_BACKTRACE="0"),
            start_new_session=True,  # Ctrl-C goes to us; we stop the worker
        )
        try:  # 1 MiB pipe instead of 64 KiB: a read reply crosses in a few wake-ups
            fcntl.fcntl(self.proc.stdout.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            pass
        self._send(dict(controller=self.uri, auth=self.auth, tls=self.tls, tls_verify=self.tls_verify))
        self._reply(deadline, "connect")
        self._send(("ping", {}))
        self._reply(deadline, "ping")

    def kill(self) -> None:
        p, self.proc = self.proc, None
        if p is not None:
            try:
                p.kill()
            except OSError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    def _send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_LEN.pack(len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            raise UnavailableError(f"Pravega client worker for {self.uri} died") from None

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        fd = self.proc.stdout.fileno()
        out = bytearray(n)
        view = memoryview(out)
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise UnavailableError(
                    f"Pravega controller {self.uri} did not answer within {self.timeout:g}s ({what})"
                )
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            k = os.readv(fd, [view[got:]])
            if not k:
                self.kill()
                raise UnavailableError(f"Pravega client worker for {self.uri} exited ({what})")
            got += k
        return out

    def _reply(self, deadline: float, what: str):
        (n,) = _LEN.unpack(self._read_exact(4, deadline, what))
        msg = pickle.loads(self._read_exact(n, deadline, what))
        if msg[0] == "ok":
            return msg[1]
        _, kind, text = msg
        raise _WorkerError(kind, text)

    def call(self, op: str, timeout: float | None = None, **kwargs):
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.kill()
                self._start()
            deadline = time.monotonic() + (timeout or self.timeout)
            try:
                self._send((op, kwargs))
                return self._reply(deadline, op)
            except _WorkerError:
                raise
            except BaseException:
                # timeout, Ctrl-C, broken pipe: the worker's state is unknown; drop it
                self.kill()
                raise


class _WorkerError(Exception):
    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


# --- writer -------------------------------------------------------------------------------
_OPEN_WRITERS: set[tuple[str, str, str]] = set()
_OPEN_LOCK = threading.Lock()


class PravegaWriter:
    """The stream's single writer (per machine: an flock in the temp dir; Pravega itself
    has no writer lock). Appends are shipped to the worker in batches; ``flush`` returns
    when Pravega acknowledged every event."""

    BATCH_BYTES = 1 << 20
    BATCH_EVENTS = 1000

    def __init__(self, store: "PravegaStore", scope: str, stream: str):
        self.store, self.scope, self.stream = store, scope, stream
        self.key = (store.uri, scope, stream)
        with _OPEN_LOCK:
            if self.key in _OPEN_WRITERS:
                raise WriterBusyError(f"another writer holds pravega stream {scope}/{stream}")
            _OPEN_WRITERS.add(self.key)
        self._lockf = None
        try:
            digest = hashlib.sha256("\0".join(self.key).encode()).hexdigest()[:32]
            lockdir = os.path.join(tempfile.gettempdir(), "stream-backend-pravega-writers")
            os.makedirs(lockdir, exist_ok=True)
            self._lockf = open(os.path.join(lockdir, digest + ".lock"), "a+")
            try:
                fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WriterBusyError(f"another writer holds pravega stream {scope}/{stream}") from None
            self.segments = store._segment_ids(scope, stream)  # raises SealedError
            # segment= pins by key range, valid while the segments are the initial even split
            self.pinnable = self.segments == list(range(len(self.segments)))
            self.wid = store._call("writer_open", scope=scope, stream=stream)
        except BaseException:
            self._release()
            raise
        self.batch: list[tuple[bytes, str | None]] = []
        self.batch_bytes = 0
        self.appended = 0
        self.closed = False

    def _release(self) -> None:
        if self._lockf is not None:
            try:
                fcntl.flock(self._lockf, fcntl.LOCK_UN)
                self._lockf.close()
            except OSError:
                pass
            self._lockf = None
        with _OPEN_LOCK:
            _OPEN_WRITERS.discard(self.key)

    def append(self, payload: bytes, routing_key: str | None = None, segment: int | None = None) -> None:
        if self.closed:
            raise UsageError("writer is closed")
        payload = bytes(payload)
        if len(payload) > self.store.max_event_size:
            raise EventTooLargeError(
                f"event of {len(payload)} bytes exceeds Pravega's max event size {self.store.max_event_size}"
            )
        if not payload and len(self.segments) > 1:
            # readable only through a reader group there, and the client's reader stops
            # for good at an empty event (docs/pravega.md)
            raise UnsupportedError(
                f"zero-length events cannot be read back from multi-segment Pravega streams "
                f"({self.scope}/{self.stream} has {len(self.segments)} segments)"
            )
        if segment is not None:
            if not 0 <= segment < len(self.segments):
                raise NotFoundError(f"segment {segment} not in {self.scope}/{self.stream}")
            if not self.pinnable:
                raise UnsupportedError(
                    f"{self.scope}/{self.stream} was scaled: its key ranges are no longer an even split, "
                    "so events cannot be pinned to a segment (import into a fixed stream)"
                )
            # a fixed stream's segment i owns key range [i/n, (i+1)/n): pick a key in it
            routing_key = pin_key(segment, len(self.segments))
        self.batch.append((payload, routing_key))
        self.batch_bytes += len(payload)
        self.appended += 1
        if self.batch_bytes >= self.BATCH_BYTES or len(self.batch) >= self.BATCH_EVENTS:
            self._ship()

    def _ship(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        self.store._call("writer_write", wid=self.wid, events=batch, _sealed_check=(self.scope, self.stream))

    def flush(self) -> None:
        self._ship()
        self.store._call("writer_flush", wid=self.wid, _sealed_check=(self.scope, self.stream))

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
            self.store._call("writer_close", wid=self.wid)
            if self.appended:
                self.store._note_append(self.scope, self.stream)
        finally:
            self.closed = True
            self._release()

    def __enter__(self) -> "PravegaWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            try:
                self.close()
            except Exception:
                pass
        else:
            self.close()


# --- the store ------------------------------------------------------------------------------
class PravegaStore:
    """StreamStore on Pravega. ``controller``: tcp://host:port or tls://host:port (default
    env PRAVEGA_CONTROLLER_URI, else tcp://127.0.0.1:9090). ``timeout``: seconds any one
    client call may take before UnavailableError. ``auth``: None = on when any
    ``pravega_client_auth_*`` variable is set. ``tls_verify``: verify the controller's
    certificate (tls:// only; CA from ``pravega_client_tls_cert_path``)."""

    protocol = "pravega"
    max_event_size = DEFAULT_MAX_EVENT_SIZE

    def __init__(
        self,
        controller: str | None = None,
        timeout: float = 30.0,
        auth: bool | None = None,
        tls_verify: bool = True,
        **_ignored,
    ) -> None:
        controller = controller or os.environ.get("PRAVEGA_CONTROLLER_URI") or DEFAULT_CONTROLLER
        self.uri, host, port, tls = parse_controller(controller)
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            raise UsageError(f"bad timeout {timeout!r}") from None
        if not self.timeout > 0:
            raise UsageError(f"timeout must be > 0 (got {timeout!r})")
        self._w = _Worker(self.uri, host, port, tls, self.timeout, auth, tls_verify)
        self._indexes: dict[tuple[str, str, int], PravegaOffsetIndex] = {}
        self._ilock = threading.RLock()
        self._sealed_shapes: dict[tuple[str, str], set[int]] = {}  # every segment a sealed stream had

    # --- plumbing ---------------------------------------------------------------------
    def _call(self, op: str, _sealed_check=None, timeout: float | None = None, **kw):
        try:
            return self._w.call(op, timeout=timeout, **kw)
        except _WorkerError as e:
            if _sealed_check is not None and self._is_sealed(*_sealed_check):
                raise SealedError(f"pravega stream {'/'.join(_sealed_check)} is sealed") from None
            raise self._translate(e) from None

    @staticmethod
    def _translate(e: _WorkerError) -> StreamBackendError:
        text = str(e)
        if e.kind == "notfound":
            return NotFoundError(f"pravega: {text}")
        if e.kind == "exists":
            return AlreadyExistsError(f"pravega: {text}")
        if e.kind == "usage":
            return UsageError(f"pravega: {text}")
        if e.kind == "sealed":
            return SealedError(f"pravega: {text}")
        if e.kind == "corrupt":
            return CorruptionError(f"pravega: {text}")
        return StreamBackendError(f"pravega: {text}")

    @staticmethod
    def _check(kind: str, name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"bad {kind} name {name!r} (letters, digits, '.', '_', '-'; at most 255)")

    def _require_scope(self, scope: str) -> None:
        self._check("scope", scope)
        if scope not in self._call("list_scopes"):
            raise NotFoundError(f"no scope {scope!r} in pravega {self.uri}")

    def _require_stream(self, scope: str, stream: str) -> None:
        self._check("stream", stream)
        self._require_scope(scope)
        if stream not in self._call("list_streams", scope=scope):
            raise NotFoundError(f"no stream {scope}/{stream} in pravega {self.uri}")

    def _forget(self, scope: str, stream: str) -> None:
        with self._ilock:
            for k in [k for k in self._indexes if k[:2] == (scope, stream)]:
                del self._indexes[k]

    # --- scopes -------------------------------------------------------------------------
    def create_scope(self, scope: str, exist_ok: bool = False) -> None:
        self._check("scope", scope)
        if scope in self._call("list_scopes"):
            if exist_ok:
                return
            raise AlreadyExistsError(f"scope {scope!r} already exists")
        self._call("create_scope", scope=scope)

    def list_scopes(self) -> list[str]:
        return sorted(self._call("list_scopes"))

    def delete_scope(self, scope: str) -> None:
        self._require_scope(scope)
        if self.list_streams(scope):
            raise NotEmptyError(f"scope {scope!r} still holds streams (rm --recursive deletes them too)")
        try:
            self._call("delete_scope", scope=scope)
        except StreamBackendError as e:
            if "not empty" in str(e).lower():
                raise NotEmptyError(f"scope {scope!r} still holds streams (or reader groups)") from None
            raise

    # --- streams ------------------------------------------------------------------------
    def create_stream(
        self,
        scope: str,
        stream: str,
        segments: int = 1,
        exist_ok: bool = False,
        scaling: tuple[str, int, int] | None = None,
        max_event_size: int | None = None,
    ) -> None:
        """``scaling``: None = fixed ``segments`` (what the protocol promises); or
        ("events", events/s, factor) / ("kbytes", KiB/s, factor) for Pravega auto-scaling,
        starting at ``segments`` (see docs/pravega.md for what auto-scaling costs).
        ``max_event_size``: Pravega's limit is the server's (8 MiB); a larger one is refused."""
        if max_event_size is not None and max_event_size > self.max_event_size:
            raise EventTooLargeError(
                f"pravega stream {scope}/{stream} cannot take events of {max_event_size} bytes: "
                f"Pravega's largest event is {self.max_event_size} bytes"
            )
        self._check("scope", scope)
        self._check("stream", stream)
        if not isinstance(segments, int) or segments < 1:
            raise UsageError(f"segments must be a positive integer (got {segments!r})")
        if scaling is not None and (len(scaling) != 3 or scaling[0] not in ("events", "kbytes")):
            raise UsageError(f"bad scaling {scaling!r} (expected ('events'|'kbytes', rate, factor))")
        self.create_scope(scope, exist_ok=True)
        if stream in self._call("list_streams", scope=scope):
            if exist_ok:
                return
            raise AlreadyExistsError(f"stream {scope}/{stream} already exists")
        kind, rate, factor = scaling or ("fixed", 0, 0)
        tags = [OUR_TAG, f"{SCALING_TAG}{kind}.{rate}.{factor}.{segments}", ID_TAG + uuid.uuid4().hex]
        self._forget(scope, stream)
        self._call("create_stream", scope=scope, stream=stream, segments=segments, scaling=scaling, tags=tags)

    def list_streams(self, scope: str) -> list[str]:
        self._require_scope(scope)
        return sorted(s for s in self._call("list_streams", scope=scope) if not s.startswith("_"))

    def delete_stream(self, scope: str, stream: str) -> None:
        self._require_stream(scope, stream)
        try:
            self._call("seal_stream", scope=scope, stream=stream)
        except StreamBackendError:
            pass  # already sealed
        self._call("delete_stream", scope=scope, stream=stream)
        self._forget(scope, stream)

    def seal_stream(self, scope: str, stream: str) -> None:
        self._require_stream(scope, stream)
        if not self._is_sealed(scope, stream):
            self._call("seal_stream", scope=scope, stream=stream)

    # --- segments -------------------------------------------------------------------------
    def _cuts(self, scope: str, stream: str) -> tuple[dict, dict | None]:
        """(head cut, tail cut); tail None when the stream is sealed (Pravega has no
        current segments then: that is how a seal is recognised, for any writer's seal)."""
        try:
            head, tail = self._call("cuts", scope=scope, stream=stream)
            return head, tail
        except StreamBackendError as e:
            if "StreamSealed" in str(e) or "Zero current segments" in str(e):
                head = self._call("cuts_head", scope=scope, stream=stream)
                return head, None
            raise

    def _is_sealed(self, scope: str, stream: str) -> bool:
        try:
            return self._cuts(scope, stream)[1] is None
        except StreamBackendError:
            return False

    def _segment_ids(self, scope: str, stream: str, for_write: bool = True) -> list[int]:
        self._require_stream(scope, stream)
        head, tail = self._cuts(scope, stream)
        if tail is None:
            if for_write:
                raise SealedError(f"pravega stream {scope}/{stream} is sealed")
            return sorted(head)
        return sorted(tail)

    def _tags(self, scope: str, stream: str) -> list[str]:
        try:
            return self._call("get_tags", scope=scope, stream=stream)
        except StreamBackendError:
            return []

    def _note_append(self, scope: str, stream: str) -> None:
        """Record the time of the last append in a stream tag (Pravega keeps none we can
        read). Only on streams stream-backend created: updating a stream's policy needs
        its scaling policy, which only our own tag records."""
        tags = self._tags(scope, stream)
        if OUR_TAG not in tags:
            return
        scaling = next((t for t in tags if t.startswith(SCALING_TAG)), None)
        if scaling is None:
            return
        kind, rate, factor, n = scaling[len(SCALING_TAG) :].split(".")
        new = [t for t in tags if not t.startswith(LAST_APPEND_TAG)] + [f"{LAST_APPEND_TAG}{time.time():.3f}"]
        try:
            self._call(
                "set_tags",
                scope=scope,
                stream=stream,
                segments=int(n),
                scaling=None if kind == "fixed" else (kind, int(rate), int(factor)),
                tags=new,
            )
        except StreamBackendError:
            pass  # sealed meanwhile: the time is a convenience, not a guarantee

    def _last_append(self, tags: list[str]) -> float | None:
        for t in tags:
            if t.startswith(LAST_APPEND_TAG):
                try:
                    return float(t[len(LAST_APPEND_TAG) :])
                except ValueError:
                    return None
        return None

    def _index(self, scope: str, stream: str, seg_id: int, nsegs: int, head: int, tail: int | None) -> PravegaOffsetIndex:
        """The segment's offset index, scanned up to ``tail`` (None: to the end)."""
        key = (scope, stream, seg_id)
        with self._ilock:
            idx = self._indexes.get(key)
            if idx is None or idx.scanned_to < head:
                idx = PravegaOffsetIndex(head)
            if (tail is not None and idx.scanned_to >= tail) or (tail is None and idx.final):
                return idx
            if nsegs == 1:
                self._scan_raw(scope, stream, idx, tail)
                self._indexes[key] = idx
                return idx
        # multi-segment: one reader-group scan fills every segment's index
        ids, fresh = self._scan_multi(scope, stream)
        with self._ilock:
            self._indexes.update({(scope, stream, s): i for s, i in fresh.items()})
            return fresh.get(seg_id) or PravegaOffsetIndex(head)

    def _scan_raw(self, scope, stream, idx: PravegaOffsetIndex, tail: int | None) -> None:
        """Index a single-segment stream from its event headers; the worker walks them
        and only (seq, length) pairs cross the pipe, never payloads."""
        if tail is None:
            _, tail = self._call("raw_bounds", scope=scope, stream=stream)
        pos = idx.scanned_to
        while pos < tail:
            nxt, seqs, lens = self._call("raw_scan", scope=scope, stream=stream, offset=pos, end=tail,
                                         max_size=DEFAULT_MAX_EVENT_SIZE)
            if nxt == pos:
                break
            for seq, size in zip(array("q", seqs), array("q", lens)):
                idx.add(seq, size)
            pos = nxt

    def _raw_events(self, scope, stream, pos: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) of the single-segment stream's events in [pos, stop), read in
        CHUNK pieces; an event larger than a piece is completed by reading only its rest."""
        while pos < stop:
            raw = self._call("raw_read", scope=scope, stream=stream, offset=pos, length=min(CHUNK, stop - pos))
            if not raw:
                return
            gen = _parse(raw, pos)
            while True:
                try:
                    yield next(gen)
                except StopIteration as end:
                    nxt = end.value
                    break
            if nxt == pos:  # an event larger than the piece
                if len(raw) < HEADER:
                    return
                (size,) = struct.unpack_from(">i", raw, 4)
                rest = self._call("raw_read", scope=scope, stream=stream, offset=pos + len(raw),
                                  length=HEADER + size - len(raw))
                whole = raw + rest
                if len(whole) < HEADER + size:
                    return
                yield pos, whole[HEADER:]
                nxt = pos + HEADER + size
            pos = nxt

    def _scan_multi(self, scope: str, stream: str):
        head, tail = self._cuts(scope, stream)
        if _cuts_scaled(head, tail):
            raise _scaled_error(scope, stream)
        ids = sorted(tail if tail is not None else head)
        fresh = {s: PravegaOffsetIndex(head.get(s, 0)) for s in ids}
        for seg_id, events in self._mscan(scope, stream, tail):
            ix = fresh.get(seg_id)
            if ix is None:
                raise _scaled_error(scope, stream, seg_id)
            for off, payload in events:
                ix.add(off, len(payload))
        if tail is None:  # sealed: a complete scan stays complete (no rescan per call)
            for ix in fresh.values():
                ix.final = True
        return ids, fresh

    def _mscan(self, scope, stream, stop: dict | None) -> Iterator[tuple[int, list]]:
        sid = self._call("mscan_open", scope=scope, stream=stream, stop=stop)
        try:
            while True:
                got = self._call("mscan_next", sid=sid)
                if got is None:
                    return
                yield got
        finally:
            try:
                self._call("mscan_close", sid=sid)
            except StreamBackendError:
                pass

    def _segment(self, scope: str, stream: str, segment: int):
        """-> (segment id, number of segments, head cut, tail cut or None if sealed)."""
        self._require_stream(scope, stream)
        head, tail = self._cuts(scope, stream)
        ids = sorted(tail if tail is not None else head)
        if not isinstance(segment, int) or not 0 <= segment < len(ids):
            raise NotFoundError(f"no segment {segment} in {scope}/{stream} ({len(ids)} segments)")
        return ids[segment], len(ids), head, tail

    def _tail_of(self, scope, stream, seg_id, nsegs, tail: dict | None) -> int | None:
        if tail is not None:
            return tail[seg_id]
        if nsegs == 1:
            return self._call("raw_bounds", scope=scope, stream=stream)[1]
        return None  # sealed multi-segment: scan to the end

    def segment_info(self, scope: str, stream: str, segment: int) -> SegmentInfo:
        seg_id, n, head, tail = self._segment(scope, stream, segment)
        t = self._tail_of(scope, stream, seg_id, n, tail)
        idx = self._index(scope, stream, seg_id, n, head.get(seg_id, 0), t)
        last = self._last_append(self._tags(scope, stream)) if idx.events else None
        h = head.get(seg_id, 0)
        return SegmentInfo(
            segment=segment,
            head_seq=h,
            tail_seq=t if t is not None else idx.tail_seq,
            events=sum(1 for s in idx.seqs if s >= h) if h else idx.events,
            length=idx.length - (idx.offset_of(h) if h else 0),
            last_append=last,
        )

    def stream_info(self, scope: str, stream: str) -> StreamInfo:
        self._require_stream(scope, stream)
        head, tail = self._cuts(scope, stream)
        ids = sorted(tail if tail is not None else head)
        tags = self._tags(scope, stream)
        last = self._last_append(tags)
        segs = []
        for i, seg_id in enumerate(ids):
            t = self._tail_of(scope, stream, seg_id, len(ids), tail)
            idx = self._index(scope, stream, seg_id, len(ids), head.get(seg_id, 0), t)
            segs.append(
                SegmentInfo(
                    segment=i,
                    head_seq=head.get(seg_id, 0),
                    tail_seq=t if t is not None else idx.tail_seq,
                    events=idx.events,
                    length=idx.length,
                    last_append=last if idx.events else None,
                )
            )
        ident = next((t[len(ID_TAG):] for t in tags if t.startswith(ID_TAG)), None)
        return StreamInfo(scope=scope, stream=stream, segments=segs, sealed=tail is None,
                          max_event_size=self.max_event_size, identity=ident)

    def check_whole(self, scope: str, stream: str) -> None:
        """This client reads a stream as the segments of one epoch; a stream that scaled
        has events in segments it cannot number (sealed predecessors, successors), which
        an export would silently leave out. Open stream: its head and tail cuts must name
        the same first-epoch segments. Sealed stream: one reader-group scan (kept: a
        sealed stream cannot change) must meet no segment beyond its head's."""
        self._require_stream(scope, stream)
        head, tail = self._cuts(scope, stream)
        where = f"pravega://{scope}/{stream}"
        scaled = _cuts_scaled(head, tail)
        if not scaled and tail is None:
            key = (scope, stream)
            if key not in self._sealed_shapes:
                seen = set(head)
                try:
                    for sid, _events in self._mscan(scope, stream, None):
                        seen.add(sid)
                except StreamBackendError as e:
                    raise UnsupportedError(
                        f"cannot tell whether sealed stream {where} ever scaled (a reader-group scan failed: {e}); "
                        "refusing to export what may be part of it"
                    ) from None
                self._sealed_shapes[key] = seen
            scaled = self._sealed_shapes[key] != set(head)
        if scaled:
            raise _scaled_error(scope, stream)

    # --- data ---------------------------------------------------------------------------
    def writer(self, scope: str, stream: str) -> PravegaWriter:
        self._require_stream(scope, stream)
        return PravegaWriter(self, scope, stream)

    def offset_index(self, scope: str, stream: str, segment: int) -> PravegaOffsetIndex:
        seg_id, n, head, tail = self._segment(scope, stream, segment)
        t = self._tail_of(scope, stream, seg_id, n, tail)
        return self._index(scope, stream, seg_id, n, head.get(seg_id, 0), t)

    def read_events(
        self,
        scope: str,
        stream: str,
        segment: int,
        from_seq: int = 0,
        to_seq: int | None = None,
        follow: bool = False,
    ) -> Iterator[Event]:
        seg_id, n, head, tail = self._segment(scope, stream, segment)
        if n == 1:
            return self._read_single(scope, stream, segment, seg_id, head.get(seg_id, 0), tail, from_seq, to_seq, follow)
        return self._read_multi(scope, stream, segment, seg_id, head, tail, from_seq, to_seq, follow)

    def _read_single(self, scope, stream, segment, seg_id, head, tail, from_seq, to_seq, follow):
        end = self._tail_of(scope, stream, seg_id, 1, tail)
        idx = self._index(scope, stream, seg_id, 1, head, end)
        pos = max(from_seq, head)
        if pos > idx.scanned_to:
            return
        foff = idx.offset_of(pos)
        if pos < idx.scanned_to:
            i = bisect_left(idx.seqs, pos)  # from_seq between events: start at the next one
            pos = idx.seqs[i] if i < len(idx.seqs) else idx.scanned_to
        sealed = tail is None
        while True:
            stop = end if to_seq is None else min(to_seq, end)
            for seq, payload in self._raw_events(scope, stream, pos, stop):
                yield Event(segment=segment, seq=seq, payload=payload, offset=foff)
                foff += len(payload)
                pos = seq + HEADER + len(payload)
            if not follow or sealed or (to_seq is not None and pos >= to_seq):
                return
            # follow: wait for more data or the seal
            while True:
                _, new_end = self._call("raw_bounds", scope=scope, stream=stream)
                if new_end > pos:
                    end = new_end
                    break
                if self._is_sealed(scope, stream):
                    _, end = self._call("raw_bounds", scope=scope, stream=stream)
                    sealed = True
                    break
                time.sleep(0.2)

    def read_segments(self, scope: str, stream: str, ranges: dict[int, tuple[int, int]]) -> Iterator[Event] | None:
        """Events of several segments from ONE reader-group scan, in scan order (each
        segment's own events in order): ``ranges`` maps segment -> [from_seq, to_seq).
        For a multi-segment stream this replaces one full scan per segment (the client
        cannot read one segment alone); None for a single-segment stream, whose
        per-segment reads are already direct."""
        self._require_stream(scope, stream)
        head, tail = self._cuts(scope, stream)
        ids = sorted(tail if tail is not None else head)
        if len(ids) < 2:
            return None
        want = {}
        for k, (lo, hi) in ranges.items():
            if not isinstance(k, int) or not 0 <= k < len(ids):
                raise NotFoundError(f"no segment {k} in {scope}/{stream} ({len(ids)} segments)")
            want[ids[k]] = (k, lo, hi)
        return self._scan_segments(scope, stream, tail, want, set(ids))

    def _scan_segments(self, scope, stream, stop, want, known: set[int]) -> Iterator[Event]:
        """One scan up to the cut ``stop``; ``want`` maps segment id -> (segment number,
        from_seq, to_seq or None); ``known``: every segment id the stream is read as (a
        slice from any other means it scaled). Offsets count every event from the head."""
        foff = dict.fromkeys(want, 0)
        for sid, events in self._mscan(scope, stream, stop):
            if sid not in want:
                if sid not in known:
                    raise _scaled_error(scope, stream, sid)
                continue
            k, lo, hi = want[sid]
            for off, payload in events:
                if off >= lo and (hi is None or off < hi):
                    yield Event(segment=k, seq=off, payload=payload, offset=foff[sid])
                foff[sid] += len(payload)

    def _read_multi(self, scope, stream, segment, seg_id, head, tail, from_seq, to_seq, follow):
        """Every round scans all segments from their heads (the binding cannot start a
        reader at one segment's offset) and keeps this segment's events; a follow round
        skips what an earlier round yielded."""
        done_to = head.get(seg_id, 0)  # events below this seq were handled
        stop = tail
        known = set(tail if tail is not None else head)
        while True:
            for ev in self._scan_segments(scope, stream, stop, {seg_id: (segment, done_to, None)}, known):
                done_to = ev.seq + HEADER + len(ev.payload)
                if ev.seq >= from_seq and (to_seq is None or ev.seq < to_seq):
                    yield ev
            if not follow or stop is None or (to_seq is not None and done_to >= to_seq):
                return
            while True:
                time.sleep(0.3)
                _, new = self._cuts(scope, stream)
                if new is None or new.get(seg_id, 0) > done_to:
                    break
            stop = new

    def read_range(self, scope: str, stream: str, segment: int, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise UsageError("offset and length must be >= 0")
        idx = self.offset_index(scope, stream, segment)
        if offset >= idx.length or length == 0:
            return b""
        seq, inner = idx.locate(offset)
        out = bytearray()
        for e in self.read_events(scope, stream, segment, from_seq=seq):
            out += e.payload[inner:] if not out and inner else e.payload
            if len(out) >= length:
                break
        return bytes(out[:length])

    def close(self) -> None:
        self._w.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

