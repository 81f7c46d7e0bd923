"""Streams seen as files: fsspec filesystems (``stream://``, ``pravega://``) and FUSE.

``stream://`` (streamfs.py) and ``pravega://`` (pravegafs.py) are registered through the
``fsspec.specs`` entry point, so ``fsspec.open("stream://scope/stream")`` works without
importing this package.
"""

from __future__ import annotations

__all__ = ["StreamFileSystem", "PravegaFileSystem", "StreamFile"]


def __getattr__(name):  # lazy: importing stream_backend.fs must not import fsspec eagerly
    if name == "StreamFile":
        from .streamfile import StreamFile

        return StreamFile
    if name == "PravegaFileSystem":
        from .pravegafs import PravegaFileSystem

        return PravegaFileSystem
    if name == "StreamFileSystem":
        from .streamfs import StreamFileSystem

        return StreamFileSystem
    raise AttributeError(name)
