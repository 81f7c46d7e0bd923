"""The single writer of a Pravega stream."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from typing import TYPE_CHECKING

from ...errors import EventTooLargeError, NotFoundError, SealedError, UsageError, WriterBusyError

if TYPE_CHECKING:
    from .store import PravegaStore

_OPEN_WRITERS: set[tuple[str, str, str]] = set()
_OPEN_LOCK = threading.Lock()


class PravegaWriter:
    """The stream's single writer (per machine: an flock in the temp dir; Pravega itself
    has no writer lock). Appends by routing key go to the crate's event writer; appends to
    a named segment (``append(segment=k)``, what import does) go to a pipelined appender
    on that segment, which keeps many blocks in flight where the crate's writer keeps one.
    Both take batches; ``flush`` returns when Pravega acknowledged every event."""

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
        self._native = None
        self._appenders: dict[int, object] = {}  # segment number -> its pipelined appender
        try:
            digest = hashlib.sha256("\0".join(self.key).encode()).hexdigest()[:32]
            lockdir = os.path.join(tempfile.gettempdir(), "stream-backend-pravega-writers")
            os.makedirs(lockdir, exist_ok=True)
            self._lockf = open(os.path.join(lockdir, digest + ".lock"), "a+")
            try:
                fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WriterBusyError(f"another writer holds pravega stream {scope}/{stream}") from None
            self.refresh()
            self._native = store._client().writer(scope, stream)
        except BaseException:
            self._release()
            raise
        self.batch: list[tuple[bytes, str | None]] = []
        self.batch_bytes = 0
        self.direct: dict[int, list[bytes]] = {}  # segment number -> payloads not yet sent
        self.direct_bytes = 0
        self._keyed = False  # events sent through the event writer since its last flush
        self._direct_sent = False  # events sent to appenders since their last flush
        self.appended = 0
        self.closed = False

    def refresh(self) -> None:
        """Learn the stream's open segments again (after a scale): ``append(segment=k)``
        addresses them by key range."""
        current = self.store._call("current_segments", self.scope, self.stream)
        if not current:
            raise SealedError(f"pravega stream {self.scope}/{self.stream} is sealed")
        self.ranges = {sid & 0xFFFFFFFF: (lo, hi) for sid, lo, hi in current}
        self.ids = {sid & 0xFFFFFFFF: sid for sid, _lo, _hi in current}
        for n in [n for n in self._appenders if n not in self.ids]:
            self._appenders.pop(n).close()  # sealed by the scale (flushed before it)

    def _release(self) -> None:
        for a in self._appenders.values():
            a.close()
        if self._native is not None:
            self._native.close()
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
        if segment is not None:
            if segment not in self.ranges:
                raise NotFoundError(
                    f"segment {segment} is not an open segment of {self.scope}/{self.stream} "
                    f"(open: {', '.join(map(str, sorted(self.ranges)))})"
                )
            if self.batch or self._keyed:  # keyed events first: they may share the segment
                self._flush_keyed()
            self.direct.setdefault(segment, []).append(payload)
            self.direct_bytes += len(payload)
            self.appended += 1
            if self.direct_bytes >= self.BATCH_BYTES or len(self.direct[segment]) >= self.BATCH_EVENTS:
                self._ship_direct()
            return
        if self.direct or self._direct_sent:  # segment appends first, likewise
            self._flush_direct()
        self.batch.append((payload, routing_key))
        self.batch_bytes += len(payload)
        self.appended += 1
        if self.batch_bytes >= self.BATCH_BYTES or len(self.batch) >= self.BATCH_EVENTS:
            self._ship()

    def _ship(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        self._keyed = True
        self.store._call_on(self._native, "write", batch, sealed_check=(self.scope, self.stream))

    def _ship_direct(self) -> None:
        direct, self.direct, self.direct_bytes = self.direct, {}, 0
        self._direct_sent = self._direct_sent or bool(direct)
        for n, payloads in direct.items():
            a = self._appenders.get(n)
            if a is None:
                a = self._appenders[n] = self.store._call("appender", self.scope, self.stream, self.ids[n],
                                                          sealed_check=(self.scope, self.stream))
            self.store._call_on(a, "write", payloads, sealed_check=(self.scope, self.stream))

    def _flush_keyed(self) -> None:
        self._ship()
        self.store._call_on(self._native, "flush", sealed_check=(self.scope, self.stream))
        self._keyed = False

    def _flush_direct(self) -> None:
        self._ship_direct()
        for a in self._appenders.values():
            self.store._call_on(a, "flush", sealed_check=(self.scope, self.stream))
        self._direct_sent = False

    def flush(self) -> None:
        self._flush_direct()
        self._flush_keyed()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
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
