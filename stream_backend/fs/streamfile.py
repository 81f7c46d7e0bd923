"""One segment's file view as an fsspec file: ranged reads through the offset index, or
appends cut into events of one size."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from fsspec.spec import AbstractBufferedFile

from .. import errors as E
from .errors import as_fs_error, fs_error, unsupported

if TYPE_CHECKING:
    from .streamfs import StreamFileSystem

#: ``read(n)`` of at least this many bytes bypasses fsspec's block cache (one copy less)
DIRECT_READ = 256 * 1024


class StreamFile(AbstractBufferedFile):
    """One segment's file view: ranged reads through the offset index, or appends.

    Writing cuts the bytes into events of exactly ``event_size`` bytes (the last one
    shorter), whatever the sizes of the ``write()`` calls, so the same bytes always make
    the same events. ``close()`` returns when they are acknowledged.
    """

    def __init__(
        self,
        fs: "StreamFileSystem",
        path: str,
        mode: str = "rb",
        block_size=None,
        cache_type="readahead",
        cache_options=None,
        *,
        scope: str,
        stream: str,
        segment: int,
        details: dict | None = None,
        event_size: int | None = None,
        routing_key: str | None = None,
        max_event_size: int | None = None,
        **kwargs,
    ):
        self.scope, self.stream, self.segment = scope, stream, segment
        self.routing_key = routing_key
        self._writer = None
        if mode == "rb":
            self._details = details
            super().__init__(
                fs,
                path,
                mode,
                block_size=block_size,
                cache_type=cache_type,
                cache_options=cache_options,
                size=details["size"] if details else None,
                **kwargs,
            )
            return
        max_size = max_event_size or fs.store.max_event_size
        size = int(event_size) if event_size else max_size
        if not 0 < size <= max_size:
            raise fs_error(
                E.UsageError,
                f"event_size {size} is outside 1..{max_size} " "(the store's max event size)",
            )
        self.event_size = size
        super().__init__(fs, path, mode, block_size=size, **kwargs)
        try:
            self._writer = fs.store.writer(scope, stream)
        except E.StreamBackendError as exc:
            self.closed = True
            raise as_fs_error(exc) from exc

    def read(self, length=-1):
        """Large reads (and read-all) go straight to the store: its result is returned
        as is, not copied through fsspec's block cache; small reads use the cache."""
        if self.mode != "rb" or self.closed or length is None:
            return super().read(length)
        length = int(length)
        if 0 <= length < DIRECT_READ:
            return super().read(length)
        end = self.size if length < 0 else min(self.loc + length, self.size)
        if end <= self.loc:
            return b""
        out = self._fetch_range(self.loc, end)
        self.loc += len(out)
        return out

    def _fetch_range(self, start, end):
        return self.pread(start, end - start)

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset``, as the segment is now (it may have grown since
        the open), without moving the position or touching the cache: like os.pread, safe
        from several threads at once, as a mount's reads are."""
        try:
            return self.fs.store.read_range(self.scope, self.stream, self.segment, offset, size)
        except E.StreamBackendError as exc:
            raise as_fs_error(exc) from exc

    def _upload_chunk(self, final=False):
        """Append every whole event in the buffer (and the short tail when final); keep
        the rest buffered. Returns False: the buffer was already replaced here."""
        buf = self.buffer.getbuffer()
        total = len(buf)
        whole = total if final else total - total % self.event_size
        try:
            for pos in range(0, whole, self.event_size):
                self._writer.append(
                    bytes(buf[pos:min(pos + self.event_size, whole)]),
                    routing_key=self.routing_key,
                    segment=self.segment,
                )
            rest = bytes(buf[whole:])
            buf.release()
            self.offset += whole
            self.buffer = io.BytesIO()
            self.buffer.write(rest)
            if final:
                self._writer.flush()
        except E.StreamBackendError as exc:
            raise as_fs_error(exc) from exc
        finally:
            buf.release()
        return False

    def commit(self) -> None:
        """Append every byte written so far (the tail as a shorter event) and return once
        they are durable; the file stays open for more. A mount does this on every close()
        of a descriptor; close() does it a last time."""
        if self.mode == "rb" or self.closed:
            return
        if self.offset is None:
            self.offset = 0
        self._upload_chunk(final=True)

    def close(self):
        if self.closed:
            return
        try:
            super().close()
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:
                try:
                    writer.close()
                except E.StreamBackendError as exc:
                    raise as_fs_error(exc) from exc

    def seek(self, loc, whence=0):
        if self.mode != "rb":
            raise fs_error(
                E.UnsupportedError, "seek while writing: streams are append-only", OSError
            )
        return super().seek(loc, whence)

    def truncate(self, size=None):
        raise unsupported(f"truncating {self.fs._url(self.path)}")
