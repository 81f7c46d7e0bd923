"""Data objects written part by part, and the pool that bounds the parts in flight."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor


class PartPool:
    """Uploads parts in parallel with at most ``parallel`` parts in memory at once.

    The producer blocks in ``submit`` while every slot is taken: that is what bounds a
    transfer's memory to part size x parts in flight, whatever the stream's length.
    """

    def __init__(self, parallel: int):
        self.parallel = max(1, parallel)
        self._slots = threading.BoundedSemaphore(self.parallel)
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="part")

    def submit(self, fn, *args) -> Future:
        self._slots.acquire()
        try:
            fut = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _f: self._slots.release())
        return fut

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class ObjectUpload:
    """One data object written part by part; ``finish`` makes it visible whole."""

    #: parts found already stored from an interrupted attempt and not sent again
    reused_parts = 0
    sent_bytes = 0

    def write_part(self, data: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> Future:
        """Returns a future done when the object is durable at its key."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Stop (pause/crash path): wait for parts in flight; leave them for reuse."""


def done(value=None) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f
