"""PravegaStore: the StreamStore protocol on a Pravega cluster (protocol "pravega"), over
``sb_pravega``, our binding of the pravega-client Rust crate (``native/``).

Shape. A Pravega stream's segments form a graph over epochs: a scale (auto-scaling or
through the controller) seals segments and creates successors over their key ranges. The
store lists every segment from the stream's head stream cut on, sealed predecessors
included, by Pravega's segment number (the low 32 bits of the segment id, unique within a
stream; 0..n-1 for a stream that never scaled), each with its key range, creating epoch,
predecessors and successors. A segment is read alone, from any offset, straight from the
segment store: nothing scans the stream to find one segment's events.

Positions. seq = the event's byte offset in its segment (the start of its 8-byte header,
``int32 type = 0, int32 length``); ``tail_seq`` = the segment's write offset when the
info was taken; ``head_seq`` = its first readable byte (the head stream cut, or a
truncation through the segment, whichever is later).

The offset index (file view <-> seq) is built from the event headers (the native client
walks them, jumping over large payloads) and kept in memory, extended as a segment grows.
docs/pravega.md says what is exact for which stream shape (all of them).
"""

from __future__ import annotations

from .store import PravegaStore
from .writer import PravegaWriter

__all__ = ["PravegaStore", "PravegaWriter"]
