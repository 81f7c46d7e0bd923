"""Stores: where streams live. ``open_store`` picks one by URL protocol (``registry``)."""

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
from .registry import open_store

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
