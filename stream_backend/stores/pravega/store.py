"""PravegaStore: the StreamStore protocol on a Pravega cluster (the package docstring)."""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
import uuid
from bisect import bisect_left
from typing import Iterator

from ... import settings
from ...errors import (
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
)
from ..base import DEFAULT_MAX_EVENT_SIZE, Event, SegmentInfo, StreamInfo
from . import groups
from .wire import HEADER, PravegaOffsetIndex, Segment, parse_controller, parse_events
from .writer import PravegaWriter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
OUR_TAG = "stream-backend"
LAST_APPEND_TAG = "sb.last-append."
ID_TAG = "sb.id."  # a stream's identity: differs when a stream is deleted and re-created
CHUNK = 4 << 20  # raw bytes per read call: several 1 MiB events per round trip
FOLLOW_POLL = 0.2  # seconds between looks at a followed segment's tail


_SCALING_KINDS = ("fixed", "events", "kbytes")


class PravegaStore:
    """StreamStore on Pravega. ``controller``: tcp://host:port or tls://host:port (default
    env PRAVEGA_CONTROLLER_URI, else tcp://127.0.0.1:9090). ``timeout``: seconds any one
    client call may take before UnavailableError. ``auth``: None = on when any
    ``pravega_client_auth_*`` variable is set. ``tls_verify``: verify the controller's
    certificate (tls:// only; CA from ``pravega_client_tls_cert_path``)."""

    protocol = "pravega"
    max_event_size = DEFAULT_MAX_EVENT_SIZE
    dense_seqs = False
    scalable = True

    def __init__(
        self,
        controller: str | None = None,
        timeout: float = settings.DEFAULT_TIMEOUT,
        auth: bool | None = None,
        tls_verify: bool = True,
        **_ignored,
    ) -> None:
        controller = controller or settings.controller()
        self.uri, self._host, self._port, self._tls = parse_controller(controller)
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            raise UsageError(f"bad timeout {timeout!r}") from None
        if not self.timeout > 0:
            raise UsageError(f"timeout must be > 0 (got {timeout!r})")
        self._auth = auth if auth is not None else settings.pravega_auth()
        self._tls_verify = tls_verify
        self._native = None
        self._native_pid = None
        self._nlock = threading.Lock()
        self._indexes: dict[tuple[str, str, int], PravegaOffsetIndex] = {}
        self._ilock = threading.RLock()
        self._ids: dict[tuple[str, str], dict[int, int]] = {}  # segment number -> id

    # --- plumbing ---------------------------------------------------------------------
    def _client(self):
        """This process's native client (its runtime's threads do not survive fork)."""
        with self._nlock:
            if self._native is None or self._native_pid != os.getpid():
                try:
                    import sb_pravega
                except ImportError:
                    raise UnavailableError(
                        "the Pravega client extension sb_pravega is not installed: run 'bash scripts/native-build' "
                        "(or install stream-backend's image), see docs/pravega.md"
                    ) from None
                try:  # fast, clear failure for the common case: nothing listening / no route
                    socket.create_connection((self._host, self._port), timeout=max(0.1, min(self.timeout, 10))).close()
                except OSError as e:
                    raise UnavailableError(f"cannot reach Pravega controller {self.uri}: {e.strerror or e}") from None
                self._native = sb_pravega.Client(self.uri, auth=self._auth, tls_verify=self._tls_verify)
                self._native_pid = os.getpid()
            return self._native

    def _call(self, op: str, *args, **kw):
        return self._call_on(self._client(), op, *args, **kw)

    def _call_on(self, target, op: str, *args, sealed_check=None, timeout: float | None = None, **kw):
        import sb_pravega

        wait = timeout or self.timeout
        try:
            return getattr(target, op)(*args, timeout=wait, **kw)
        except TimeoutError:
            if sealed_check is not None and self._is_sealed(*sealed_check):
                raise SealedError(f"pravega stream {'/'.join(sealed_check)} is sealed") from None
            raise UnavailableError(f"Pravega controller {self.uri} did not answer within {wait:g}s ({op})") from None
        except sb_pravega.NotFound as e:
            raise NotFoundError(f"pravega: {_first_line(e)}") from None
        except sb_pravega.Truncated as e:
            raise NotFoundError(f"pravega: {_first_line(e)}") from None
        except sb_pravega.PravegaError as e:
            if sealed_check is not None and self._is_sealed(*sealed_check):
                raise SealedError(f"pravega stream {'/'.join(sealed_check)} is sealed") from None
            text = _first_line(e)
            if text.startswith("corrupt: "):
                raise CorruptionError(f"pravega: {text[len('corrupt: '):]}") from None
            if "connect" in text.lower():
                raise UnavailableError(f"pravega {self.uri}: {text}") from None
            raise StreamBackendError(f"pravega: {text}") from None

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
        if stream.startswith("_") or not self._call("stream_exists", scope, stream):
            raise NotFoundError(f"no stream {scope}/{stream} in pravega {self.uri}")

    def _forget(self, scope: str, stream: str) -> None:
        with self._ilock:
            for k in [k for k in self._indexes if k[:2] == (scope, stream)]:
                del self._indexes[k]
            self._ids.pop((scope, stream), None)

    # --- scopes -------------------------------------------------------------------------
    def create_scope(self, scope: str, exist_ok: bool = False) -> None:
        self._check("scope", scope)
        if not self._call("create_scope", scope) and not exist_ok:
            raise AlreadyExistsError(f"scope {scope!r} already exists")

    def list_scopes(self) -> list[str]:
        return sorted(s for s in self._call("list_scopes") if not s.startswith("_"))

    def delete_scope(self, scope: str) -> None:
        self._require_scope(scope)
        if self.list_streams(scope):
            raise NotEmptyError(f"scope {scope!r} still holds streams (rm --recursive deletes them too)")
        try:
            self._call("delete_scope", scope)
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
        retention: tuple[str, int] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """``scaling``: None = fixed ``segments`` (what the protocol promises); or
        ("events", events/s, factor) / ("kbytes", KiB/s, factor) for Pravega auto-scaling,
        starting at ``segments``. ``retention``: None, ("time", milliseconds) or ("size",
        bytes). ``tags``: Pravega stream tags, besides our own.
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
        if scaling is not None and (len(scaling) != 3 or scaling[0] not in _SCALING_KINDS[1:]):
            raise UsageError(f"bad scaling {scaling!r} (expected ('events'|'kbytes', rate, factor))")
        if retention is not None and (len(retention) != 2 or retention[0] not in ("none", "time", "size")):
            raise UsageError(f"bad retention {retention!r} (expected ('time', ms) or ('size', bytes))")
        self.create_scope(scope, exist_ok=True)
        kind, rate, factor = scaling or ("fixed", 0, 0)
        mine = [t for t in (tags or []) if t != OUR_TAG and not t.startswith((ID_TAG, LAST_APPEND_TAG))]
        all_tags = [OUR_TAG, ID_TAG + uuid.uuid4().hex] + mine
        self._forget(scope, stream)
        created = self._call("create_stream", scope, stream, (kind, int(rate), int(factor), segments),
                             tuple(retention or ("none", 0)), all_tags)
        if not created and not exist_ok:
            raise AlreadyExistsError(f"stream {scope}/{stream} already exists")

    def list_streams(self, scope: str) -> list[str]:
        self._require_scope(scope)
        return sorted(s for s in self._call("list_streams", scope) if not s.startswith("_"))

    def delete_stream(self, scope: str, stream: str) -> None:
        self._require_stream(scope, stream)
        if not self._is_sealed(scope, stream):
            self._call("seal_stream", scope, stream)
        self._call("delete_stream", scope, stream)
        self._forget(scope, stream)

    def seal_stream(self, scope: str, stream: str) -> None:
        self._require_stream(scope, stream)
        if not self._is_sealed(scope, stream):
            self._call("seal_stream", scope, stream)

    def scale_stream(self, scope: str, stream: str, sealed: list[int], ranges: list[tuple[float, float]]) -> list[int]:
        """Seal the open segments numbered ``sealed`` and create segments over ``ranges``
        (which must cover their key space exactly); -> the new segments' numbers."""
        self._require_stream(scope, stream)
        current = {sid & 0xFFFFFFFF: sid for sid, _lo, _hi in self._call("current_segments", scope, stream)}
        missing = [n for n in sealed if n not in current]
        if missing:
            raise NotFoundError(f"segments {missing} are not open segments of {scope}/{stream}")
        before = set(current.values())
        self._call("scale_stream", scope, stream, [current[n] for n in sealed], [tuple(r) for r in ranges])
        self._ids.pop((scope, stream), None)
        after = self._call("current_segments", scope, stream)
        return sorted(sid & 0xFFFFFFFF for sid, _lo, _hi in after if sid not in before)

    def set_scaling(self, scope: str, stream: str, scaling: tuple[str, int, int], min_segments: int) -> None:
        """Switch the stream to auto-scaling ``scaling`` = ("events"|"kbytes", rate, factor)."""
        kind, rate, factor = scaling
        if kind not in _SCALING_KINDS[1:]:
            raise UsageError(f"bad scaling {scaling!r} (expected ('events'|'kbytes', rate, factor))")
        _k, _r, _f, _m, rkind, rparam, tags = self._call("stream_config", scope, stream)
        self._call("update_stream", scope, stream, (kind, int(rate), int(factor), int(min_segments)),
                   (rkind, rparam), tags)

    def truncate_stream(self, scope: str, stream: str, cut: dict[int, int]) -> None:
        """Truncate at the stream cut ``cut`` (segment number -> offset)."""
        ids = self._segment_ids(scope, stream)
        try:
            self._call("truncate_stream", scope, stream, {ids[n]: off for n, off in cut.items()})
        except KeyError as e:
            raise NotFoundError(f"no segment {e.args[0]} in {scope}/{stream}") from None
        self._forget(scope, stream)

    # --- the segment graph -------------------------------------------------------------------
    def _is_sealed(self, scope: str, stream: str) -> bool:
        try:
            return not self._call("current_segments", scope, stream)
        except StreamBackendError:
            return False

    def _graph(self, scope: str, stream: str) -> tuple[list[Segment], bool]:
        """Every segment from the head stream cut on (a walk over successors), each with
        its offsets as read now; and whether the stream is sealed."""
        sealed = not self._call("current_segments", scope, stream)
        head = self._call("head_segments", scope, stream)
        ranges: dict[int, tuple[float, float]] = {}
        for epoch in sorted({sid >> 32 for sid in head}):
            for sid, lo, hi in self._call("epoch_segments", scope, stream, epoch):
                ranges[sid] = (lo, hi)
        preds: dict[int, set[int]] = {}
        succs: dict[int, tuple[int, ...]] = {}
        order = sorted(head)
        seen = set(order)
        i = 0
        while i < len(order):
            sid = order[i]
            i += 1
            nxt = self._call("successors", scope, stream, sid)
            succs[sid] = tuple(n[0] for n in nxt)
            for nid, lo, hi, ps in nxt:
                ranges[nid] = (lo, hi)
                preds.setdefault(nid, set()).update(ps)
                if nid not in seen:
                    seen.add(nid)
                    order.append(nid)
        out = []
        for sid in sorted(seen, key=lambda s: (s & 0xFFFFFFFF, s)):
            start, end, seg_sealed = self._call("segment_info", scope, stream, sid)
            lo, hi = ranges.get(sid, (0.0, 1.0))
            # the segment store's start offset already includes a truncation by the controller
            out.append(Segment(id=sid, low=lo, high=hi, start=start, end=end,
                                sealed=seg_sealed or bool(succs.get(sid)),
                                predecessors=tuple(sorted(preds.get(sid, ()))), successors=succs.get(sid, ())))
        numbers = [s.number for s in out]
        if len(set(numbers)) != len(numbers):
            dup = sorted({n for n in numbers if numbers.count(n) > 1})
            raise UnsupportedError(
                f"pravega://{scope}/{stream} has several segments numbered {dup} (rolling transactions duplicate "
                "segments): stream-backend cannot number its segments, so it refuses rather than read part of it"
            )
        with self._ilock:
            self._ids[(scope, stream)] = {s.number: s.id for s in out}
        return out, sealed

    def _segment_ids(self, scope: str, stream: str) -> dict[int, int]:
        self._require_stream(scope, stream)
        got = self._ids.get((scope, stream))
        if got is None:
            self._graph(scope, stream)
            got = self._ids[(scope, stream)]
        return got

    def _seg_id(self, scope: str, stream: str, segment: int) -> int:
        ids = self._segment_ids(scope, stream)
        if not isinstance(segment, int) or segment not in ids:
            self._graph(scope, stream)  # a segment born since the numbers were read
            ids = self._ids[(scope, stream)]
        if not isinstance(segment, int) or segment not in ids:
            raise NotFoundError(
                f"no segment {segment} in {scope}/{stream} (segments: {', '.join(map(str, sorted(ids)))})"
            )
        return ids[segment]

    def _config(self, scope: str, stream: str) -> tuple[dict | None, list[str]]:
        try:
            kind, rate, factor, minimum, rkind, rparam, tags = self._call("stream_config", scope, stream)
        except StreamBackendError:
            return None, []
        config = {
            "scaling": {"type": kind, "target_rate": rate, "scale_factor": factor, "min_segments": minimum},
            "retention": {"type": rkind, "value": rparam},
            "tags": [t for t in tags if t != OUR_TAG and not t.startswith((ID_TAG, LAST_APPEND_TAG))],
        }
        return config, list(tags)

    def _note_append(self, scope: str, stream: str) -> None:
        """Record the time of the last append in a stream tag (Pravega keeps none we can
        read). Only on streams stream-backend created (other tools' tags are theirs) that
        never scaled: the controller answers a configuration update by scaling the stream
        back to its policy's segment count, which must never happen behind a user's back."""
        try:
            current = self._call("current_segments", scope, stream)
            kind, rate, factor, minimum, rkind, rparam, tags = self._call("stream_config", scope, stream)
            if OUR_TAG not in tags or any(sid >> 32 for sid, _lo, _hi in current) or len(current) != minimum:
                return
            new = [t for t in tags if not t.startswith(LAST_APPEND_TAG)] + [f"{LAST_APPEND_TAG}{time.time():.3f}"]
            self._call("update_stream", scope, stream, (kind, rate, factor, minimum), (rkind, rparam), new)
        except StreamBackendError:
            pass  # sealed meanwhile: the time is a convenience, not a guarantee

    @staticmethod
    def _last_append(tags: list[str]) -> float | None:
        for t in tags:
            if t.startswith(LAST_APPEND_TAG):
                try:
                    return float(t[len(LAST_APPEND_TAG) :])
                except ValueError:
                    return None
        return None

    # --- offset index -----------------------------------------------------------------------
    def _index(self, scope: str, stream: str, seg_id: int, head: int, tail: int) -> PravegaOffsetIndex:
        """The segment's offset index, extended from the event headers up to ``tail``."""
        key = (scope, stream, seg_id)
        with self._ilock:
            idx = self._indexes.get(key)
            if idx is None or idx.head != head:  # the file view starts at the segment's head
                idx = PravegaOffsetIndex(head)
            pos = idx.scanned_to
            while pos < tail:
                nxt, seqs, lens = self._call("scan_segment", scope, stream, seg_id, pos, tail,
                                             max_size=DEFAULT_MAX_EVENT_SIZE)
                if nxt == pos:
                    break
                for seq, size in zip(seqs, lens):
                    idx.add(seq, size)
                pos = nxt
            self._indexes[key] = idx
            return idx

    def _seg_info(self, number: int, seg: Segment, idx: PravegaOffsetIndex, last: float | None) -> SegmentInfo:
        return SegmentInfo(
            segment=number,
            head_seq=seg.start,
            tail_seq=seg.end,
            events=idx.events_from(seg.start),
            length=idx.length - idx.offset_of(seg.start),
            last_append=last if idx.events else None,
            sealed=seg.sealed,
            key_range=(seg.low, seg.high),
            epoch=seg.epoch,
            predecessors=tuple(p & 0xFFFFFFFF for p in seg.predecessors),
            successors=tuple(s & 0xFFFFFFFF for s in seg.successors),
        )

    # --- segments ---------------------------------------------------------------------------
    def stream_info(self, scope: str, stream: str) -> StreamInfo:
        self._require_stream(scope, stream)
        graph, sealed = self._graph(scope, stream)
        config, tags = self._config(scope, stream)
        last = self._last_append(tags)
        segs = [self._seg_info(s.number, s, self._index(scope, stream, s.id, s.start, s.end), last) for s in graph]
        ident = next((t[len(ID_TAG) :] for t in tags if t.startswith(ID_TAG)), None)
        return StreamInfo(scope=scope, stream=stream, segments=segs, sealed=sealed,
                          max_event_size=self.max_event_size, identity=ident, config=config)

    def segment_info(self, scope: str, stream: str, segment: int) -> SegmentInfo:
        self._seg_id(scope, stream, segment)
        graph, _sealed = self._graph(scope, stream)
        seg = next(s for s in graph if s.number == segment)
        _config, tags = self._config(scope, stream)
        idx = self._index(scope, stream, seg.id, seg.start, seg.end)
        return self._seg_info(segment, seg, idx, self._last_append(tags))

    def check_whole(self, scope: str, stream: str) -> None:
        """Every segment is read whole, whatever the stream's shape; only a graph whose
        segments cannot be numbered apart is refused (``_graph`` raises)."""
        self._require_stream(scope, stream)
        self._graph(scope, stream)

    # --- reader groups (through the Java client: groups.py) --------------------------
    def reader_group_position(self, scope: str, stream: str, group: str) -> dict[int, int]:
        """Segment number -> offset where reader group ``scope/group`` next reads the stream."""
        self._require_stream(scope, stream)
        cut = groups.group_position(self.uri, scope, group, stream, timeout=max(self.timeout, 60))
        return {sid & 0xFFFFFFFF: off for sid, off in cut.items()}

    def create_reader_group(self, scope: str, stream: str, group: str, positions: dict[int, int]) -> None:
        """Create reader group ``scope/group`` reading the stream from ``positions`` (segment
        number -> offset); AlreadyExistsError if the group exists."""
        info = self.stream_info(scope, stream)
        cut = {(info.segment(n).epoch << 32) | n: off for n, off in positions.items()}
        groups.create_group(self.uri, scope, group, stream, cut, timeout=max(self.timeout, 60))

    # --- data ---------------------------------------------------------------------------
    def writer(self, scope: str, stream: str) -> PravegaWriter:
        self._require_stream(scope, stream)
        return PravegaWriter(self, scope, stream)

    def _bounds(self, scope: str, stream: str, seg_id: int) -> tuple[int, int, bool]:
        """(first readable offset, write offset, sealed) of a segment, read now."""
        return tuple(self._call("segment_info", scope, stream, seg_id))

    def offset_index(self, scope: str, stream: str, segment: int) -> PravegaOffsetIndex:
        sid = self._seg_id(scope, stream, segment)
        start, end, _sealed = self._bounds(scope, stream, sid)
        return self._index(scope, stream, sid, start, end)

    def _raw_events(self, scope, stream, seg_id, pos: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) of the segment's events in [pos, stop), read in CHUNK pieces; an
        event larger than a piece is completed by reading only its rest."""
        while pos < stop:
            raw = self._call("read_segment", scope, stream, seg_id, pos, min(CHUNK, stop - pos), end=stop)
            if not raw:
                return
            gen = parse_events(raw, pos)
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
                rest = self._call("read_segment", scope, stream, seg_id, pos + len(raw),
                                  HEADER + size - len(raw), end=stop)
                whole = raw + rest
                if len(whole) < HEADER + size:
                    return
                yield pos, whole[HEADER:]
                nxt = pos + HEADER + size
            pos = nxt

    def read_events(
        self,
        scope: str,
        stream: str,
        segment: int,
        from_seq: int = 0,
        to_seq: int | None = None,
        follow: bool = False,
    ) -> Iterator[Event]:
        sid = self._seg_id(scope, stream, segment)
        return self._read(scope, stream, segment, sid, from_seq, to_seq, follow)

    def _read(self, scope, stream, segment, sid, from_seq, to_seq, follow):
        start, end, sealed = self._bounds(scope, stream, sid)
        idx = self._index(scope, stream, sid, start, end)
        pos = max(from_seq, start)
        if pos > idx.scanned_to:
            return
        if pos < idx.scanned_to:
            i = bisect_left(idx.seqs, pos)  # from_seq between events: start at the next one
            pos = idx.seqs[i] if i < len(idx.seqs) else idx.scanned_to
        foff = idx.offset_of(pos)
        while True:
            stop = end if to_seq is None else min(to_seq, end)
            for seq, payload in self._raw_events(scope, stream, sid, pos, stop):
                yield Event(segment=segment, seq=seq, payload=payload, offset=foff)
                foff += len(payload)
                pos = seq + HEADER + len(payload)
            if not follow or sealed or (to_seq is not None and pos >= to_seq):
                return
            while True:  # follow: wait for more data, or the seal
                _start, end, sealed = self._bounds(scope, stream, sid)
                if end > pos or sealed:
                    break
                time.sleep(FOLLOW_POLL)

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
        self._native = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _first_line(e: BaseException) -> str:
    """A native error's text, without the gRPC metadata the crate appends."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text.split(", details: ")[0]
