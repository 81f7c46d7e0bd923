"""The embedded local stream store: streams as directories of append-only logs.

Layout (docs/store.md has the full story)::

    ROOT/SCOPE/STREAM/stream.json          format, segments, sealed, max_event_size, created, id
    ROOT/SCOPE/STREAM/segment-NNNNNN.log   framed records (records.py)
    ROOT/SCOPE/STREAM/segment-NNNNNN.idx   sparse offset index (offset_index.py)
    ROOT/SCOPE/STREAM/writer.lock          fcntl.lockf: one writer per stream

Why a directory of plain files: it works on any local disk and on NFS persistent volumes
with no server, and every byte can be verified (crc32c per record) and re-indexed from the
log alone. Durability is group commit: ``append`` buffers, ``flush`` writes and fsyncs once.
"""

from __future__ import annotations

from .store import LocalStore
from .writer import LocalWriter

__all__ = ["LocalStore", "LocalWriter"]
