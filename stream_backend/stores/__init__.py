"""Stores: where streams live. ``open_store`` picks one by URL protocol."""

from __future__ import annotations

from .base import (
    DEFAULT_MAX_EVENT_SIZE,
    Event,
    OffsetIndex,
    SegmentInfo,
    StreamInfo,
    StreamStore,
    StreamWriter,
)

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "Event",
    "OffsetIndex",
    "SegmentInfo",
    "StreamInfo",
    "StreamStore",
    "StreamWriter",
    "open_store",
]


def open_store(protocol: str = "stream", **options) -> StreamStore:
    """Open a store. ``stream``: options ``root``, ``max_event_size``.
    ``pravega``: options ``controller``, ``timeout``."""
    if protocol == "stream":
        from .local import LocalStore

        return LocalStore(**options)
    if protocol == "pravega":
        from .pravega import PravegaStore

        return PravegaStore(**options)
    from ..errors import UsageError

    raise UsageError(f"unknown store protocol {protocol!r} (expected stream or pravega)")
