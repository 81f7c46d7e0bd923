"""The StreamStore protocol: what every store (embedded local, Pravega) offers.

The transfer engine, the fsspec filesystems, FUSE and the duplicity backend are written
against this protocol only, and ``tests/store/test_contract.py`` checks it against every
implementation. A store knows nothing about archives or S3.

Shape. A stream is a set of segments, each numbered (``SegmentInfo.segment``). The local
store's are 0..n-1 for good; a Pravega stream's segments form a graph over epochs (a scale
seals segments and creates successors), and the store lists every segment from the
stream's head on, sealed predecessors included, by Pravega's segment number. Order holds
within a segment, and for a routing key from a segment to its successors.

Positions. Every event has a *sequence number* (seq) inside its segment. The protocol
only promises that seqs are monotonic and deterministic (the same event always has the
same seq); the local store uses dense 0, 1, 2, ..., Pravega uses the event's byte offset
in its segment. ``SegmentInfo.tail_seq`` is the seq the next appended event will get
(local) or the segment's write offset (Pravega); reading ``[head_seq, tail_seq)`` yields
every event present when the info was taken.

File view. A segment seen as a file is its payloads concatenated. ``OffsetIndex`` maps a
file-view byte offset to ``(seq, offset inside that event)`` and back, in O(log n).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Protocol, runtime_checkable

DEFAULT_MAX_EVENT_SIZE = 8 * 1024 * 1024  # like Pravega


class Event(NamedTuple):
    """One appended payload as read back from a segment (a named tuple: readers make
    hundreds of thousands a second, and a frozen dataclass costs six times as much to
    build)."""

    segment: int
    seq: int
    payload: bytes
    routing_key: str | None = None
    #: file-view offset of the payload's first byte inside its segment
    offset: int = 0
    #: append time, seconds since the epoch (None where the store does not keep it)
    timestamp: float | None = None


@dataclass(frozen=True)
class SegmentInfo:
    segment: int
    #: first readable seq (0 unless the segment was truncated at its head)
    head_seq: int
    #: seq the next event will get; events in [head_seq, tail_seq) exist
    tail_seq: int
    #: number of events in [head_seq, tail_seq)
    events: int
    #: file-view length in bytes (sum of payload sizes)
    length: int
    #: time of the last append, seconds since the epoch; None if never appended
    last_append: float | None
    #: no event can follow (its stream was sealed, or Pravega scaled it into successors)
    sealed: bool = False
    #: Pravega's shape: the key range [low, high) the segment owns, the epoch that created
    #: it, and the segments it continues (predecessors) and that continue it (successors).
    #: A stream that never scaled has no predecessors or successors; the local store's
    #: segments have no key range (None).
    key_range: tuple[float, float] | None = None
    epoch: int = 0
    predecessors: tuple[int, ...] = ()
    successors: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        """The segment as `info --json` and the HTTP API show it."""
        return {
            "segment": self.segment, "head_seq": self.head_seq, "tail_seq": self.tail_seq, "events": self.events,
            "length": self.length, "last_append": self.last_append,
            **({"key_range": list(self.key_range), "epoch": self.epoch, "predecessors": list(self.predecessors),
                "successors": list(self.successors), "sealed": self.sealed} if self.key_range is not None else {}),
        }


@dataclass(frozen=True)
class StreamInfo:
    scope: str
    stream: str
    segments: list[SegmentInfo] = field(default_factory=list)
    sealed: bool = False
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    created: float | None = None
    #: changes when a stream is deleted and re-created under the same name (None where
    #: the store cannot tell): an archive of the old stream must not continue with the new
    identity: str | None = None
    #: the store's own configuration of the stream (Pravega: scaling and retention
    #: policies, tags), what a restore recreates; None where there is none
    config: dict | None = None

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    @property
    def numbers(self) -> list[int]:
        """The segments' numbers, ascending: 0..n-1 for a stream that never scaled; a
        Pravega stream that scaled or was truncated has others (its segment numbers)."""
        return [s.segment for s in self.segments]

    def segment(self, number: int) -> SegmentInfo | None:
        return next((s for s in self.segments if s.segment == number), None)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.segments)

    @property
    def length(self) -> int:
        return sum(s.length for s in self.segments)

    @property
    def last_append(self) -> float | None:
        times = [s.last_append for s in self.segments if s.last_append is not None]
        return max(times) if times else None

    def to_dict(self, protocol: str) -> dict:
        """The stream as `info --json` and the HTTP API show it (``protocol``: its URL's)."""
        return {
            "url": f"{protocol}://{self.scope}/{self.stream}", "scope": self.scope, "stream": self.stream,
            "segment_count": self.segment_count, "events": self.events, "length": self.length,
            "sealed": self.sealed, "max_event_size": self.max_event_size, "created": self.created,
            "last_append": self.last_append, "segments": [s.to_dict() for s in self.segments],
            **({"config": self.config} if self.config is not None else {}),
        }


class OffsetIndex(Protocol):
    """file-view offset <-> (seq, offset inside event) for one segment, O(log n)."""

    @property
    def length(self) -> int:
        """File-view length covered by the index (bytes)."""

    def locate(self, offset: int) -> tuple[int, int]:
        """Return ``(seq, offset_in_event)`` of the event holding file-view byte ``offset``.

        ``offset == length`` returns ``(tail_seq, 0)``; beyond that raises ValueError.
        Zero-length events never hold a byte, so they are skipped.
        """

    def offset_of(self, seq: int) -> int:
        """File-view offset of the first payload byte of event ``seq``."""


class StreamWriter(Protocol):
    """Appends events to one stream. One writer per stream at a time.

    An event is *acknowledged* when ``flush()`` (or ``close()``) has returned after it
    was appended: from then on it survives a crash of the writer process.
    """

    def append(
        self, payload: bytes, routing_key: str | None = None, segment: int | None = None
    ) -> None:
        """Queue one event. ``segment`` pins it to a segment (import uses it to keep
        per-segment order); otherwise the routing key chooses, and no key means the
        store's choice. Raises EventTooLargeError, SealedError."""

    def flush(self) -> None:
        """Block until every appended event is durable (acknowledged)."""

    def close(self) -> None:
        """Flush and release the stream's writer lock."""

    def __enter__(self) -> "StreamWriter": ...

    def __exit__(self, *exc) -> None: ...


@runtime_checkable
class StreamStore(Protocol):
    """Scopes and streams, writers, readers and the offset index.

    Names: scopes and streams match ``[A-Za-z0-9][A-Za-z0-9._-]{0,254}`` (Pravega's
    rule, minus what a file name cannot hold); anything else raises UsageError.
    Unknown names raise NotFoundError.
    """

    #: URL scheme of this store, "stream" or "pravega"
    protocol: str
    max_event_size: int
    #: seqs are 0, 1, 2, ... in each segment: the distance between two seqs counts the
    #: events between them (Pravega's seqs are byte offsets: they must be counted)
    dense_seqs: bool
    #: streams scale (``scale_stream``, ``set_scaling``): a shape to record and replay
    scalable: bool

    # scopes
    def create_scope(self, scope: str, exist_ok: bool = False) -> None: ...
    def list_scopes(self) -> list[str]: ...
    def delete_scope(self, scope: str) -> None:
        """Delete an empty scope; NotEmptyError if it holds streams."""

    # streams
    def create_stream(
        self, scope: str, stream: str, segments: int = 1, exist_ok: bool = False,
        max_event_size: int | None = None,
    ) -> None:
        """Create a stream with a fixed number of segments (creating the scope too);
        ``max_event_size``: its largest event (None: the store's default; a store whose
        limit is fixed refuses a larger one with EventTooLargeError)."""

    def list_streams(self, scope: str) -> list[str]: ...
    def delete_stream(self, scope: str, stream: str) -> None: ...
    def seal_stream(self, scope: str, stream: str) -> None:
        """No more appends; readers see the stream as complete."""

    def stream_info(self, scope: str, stream: str) -> StreamInfo: ...
    def check_whole(self, scope: str, stream: str) -> None:
        """Raise UnsupportedError if this store cannot read every event of the stream
        through the segments ``stream_info`` lists. An export calls it before anything
        else: a backup may be slow, never silently short."""

    def segment_info(self, scope: str, stream: str, segment: int) -> SegmentInfo: ...

    # data
    def writer(self, scope: str, stream: str) -> StreamWriter:
        """Open the stream's single writer; WriterBusyError if another one holds it."""

    def read_events(
        self,
        scope: str,
        stream: str,
        segment: int,
        from_seq: int = 0,
        to_seq: int | None = None,
        follow: bool = False,
    ) -> Iterator[Event]:
        """Events of one segment with ``from_seq <= seq < to_seq`` in order.

        ``to_seq=None`` means up to the tail at call time, unless ``follow``: then the
        iterator keeps yielding new events as they are appended until the stream is
        sealed or the caller stops. Any number of readers may run at once, also while a
        writer appends; they see a consistent prefix. A record that fails its checksum
        raises CorruptionError; it is never yielded.
        """

    def offset_index(self, scope: str, stream: str, segment: int) -> OffsetIndex: ...

    def read_range(
        self, scope: str, stream: str, segment: int, offset: int, length: int
    ) -> bytes:
        """Bytes ``[offset, offset+length)`` of the segment's file view (short at EOF)."""

    def close(self) -> None: ...
