"""Reading an archive back: the chain of complete runs and each segment's events.

Shared by import, verify and status. Objects are read in ranged pieces (one part size
at a time, each retried by s3fs), so memory stays bounded whatever the object size,
and every record is checked (crc32c) before its event is handed out.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

from ..archive import RunManifest, iter_events, iter_records
from ..archive import layout
from ..archive.listing import ArchiveListing
from ..archive.format import ArchivedEvent, ObjectInfo, crc32c
from ..archive.manifest import checksum_of, parse_identity, read_chain
from ..errors import CorruptionError, NotFoundError
from .targets import ArchiveTarget


class RangeFile:
    """A read-only file over one archive object, fetched ``piece`` bytes at a time.

    The next ``ahead`` pieces are fetched in the background while the current one is
    decoded (one ranged GET after another was latency-bound); memory stays bounded by
    ``piece`` x (``ahead`` + 1) whatever the object size."""

    def __init__(self, target: ArchiveTarget, key: str, size: int, piece: int = 8 * 1024 * 1024, start: int = 0,
                 ahead: int = 3):
        self.target, self.key, self.size = target, key, size
        self.piece = max(64 * 1024, piece)
        self.ahead = max(0, ahead)
        self.next_fetch = start
        self.queue: deque[Future] = deque()
        self.buf = b""
        self.bpos = 0

    def _fetch(self, start: int, end: int) -> bytes:
        return self.target.read_range(self.key, start, end)

    def _fill(self, want: int) -> None:
        while len(self.queue) < want and self.next_fetch < self.size:
            end = min(self.size, self.next_fetch + self.piece)
            if self.ahead:
                self.queue.append(_prefetcher().submit(self._fetch, self.next_fetch, end))
            else:
                f: Future = Future()
                f.set_result(self._fetch(self.next_fetch, end))
                self.queue.append(f)
            self.next_fetch = end

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size + 1
        out = []
        while n > 0:
            if self.bpos >= len(self.buf):
                self._fill(1)
                if not self.queue:
                    break
                self.buf, self.bpos = self.queue.popleft().result(), 0
                self._fill(self.ahead)
                if not self.buf:
                    self.queue.clear()
                    break
            take = min(n, len(self.buf) - self.bpos)
            if self.bpos == 0 and take == len(self.buf):
                out.append(self.buf)
            else:
                out.append(self.buf[self.bpos:self.bpos + take])
            self.bpos += take
            n -= take
        return out[0] if len(out) == 1 else b"".join(out)

    def readable(self) -> bool:
        return True


_PREFETCH: ThreadPoolExecutor | None = None
_PREFETCH_LOCK = threading.Lock()


def _prefetcher() -> ThreadPoolExecutor:
    """One shared pool for read-ahead (a fetch never waits on another, so no deadlock)."""
    global _PREFETCH
    with _PREFETCH_LOCK:
        if _PREFETCH is None:
            _PREFETCH = ThreadPoolExecutor(4, thread_name_prefix="prefetch")
        return _PREFETCH


@dataclass
class Chain:
    identity: dict
    identity_checksum: str
    runs: list[RunManifest]

    @property
    def numbers(self) -> list[int]:
        """Every segment any run holds, ascending (a Pravega stream's graph: sealed
        predecessors and successors; a fixed stream: 0..n-1)."""
        got = {p.segment for m in self.runs for p in m.segments}
        return sorted(got) if got else list(range(int(self.identity["source"]["segments"])))

    def shape(self, segment: int) -> dict | None:
        """The segment's latest recorded place in the stream's graph (None: fixed stream)."""
        return next((p.shape for m in reversed(self.runs) if (p := m.segment(segment)) is not None
                     and p.shape is not None), None)

    @property
    def scaled(self) -> bool:
        """Did the stream ever scale (its segments are not one fixed set)?"""
        return any((sh := self.shape(n)) is not None and (sh["predecessors"] or sh["successors"])
                   for n in self.numbers)

    def dense(self, numbers: list[int]) -> dict[int, int]:
        """Archive segment -> destination segment for a stream whose segments are
        ``numbers``: the same numbers if it has them all, else in order onto 0..n-1."""
        mine = self.numbers
        if set(mine) <= set(numbers):
            return {n: n for n in mine}
        return {n: i for i, n in enumerate(mine)}

    @property
    def source(self) -> dict:
        return self.identity["source"]

    def parts(self, segment: int):
        for m in self.runs:
            p = m.segment(segment)
            if p is not None:
                yield p


def _reader(target: ArchiveTarget):
    def read(key: str) -> bytes:
        data = target.read(key)
        if data is None:
            raise FileNotFoundError(key)
        return data

    return read


def complete_runs(target: ArchiveTarget) -> list[int]:
    return ArchiveListing.of(target.list(layout.RUNS_DIR)).complete_runs


def load_chain(target: ArchiveTarget) -> Chain:
    """Identity + every complete run, oldest first, links and checksums checked."""
    target.check_access()
    data = target.read(layout.IDENTITY_KEY)
    if data is None:
        raise NotFoundError(f"no archive at {target.display} ({layout.IDENTITY_KEY} missing)")
    ident = parse_identity(data, target.where(layout.IDENTITY_KEY))
    ident_checksum = ident.get("checksum") or checksum_of(ident)
    return Chain(ident, ident_checksum, read_chain(_reader(target), complete_runs(target), target.display))


def check_segment_part(target: ArchiveTarget, run: int, part) -> None:
    """The run's segment part file must be there and say what the run manifest says."""
    from ..archive import SegmentPart, segment_part_key

    pkey = segment_part_key(run, part.segment)
    data = target.read(pkey)
    if data is None:
        raise CorruptionError(f"archive {target.display}: segment part {pkey} of run {run} is missing")
    stored = SegmentPart.parse(data, target.where(pkey))
    if stored.checksum != part.checksum:
        raise CorruptionError(f"corrupt archive manifest {target.where(pkey)}: differs from run {run}'s manifest")
    part.check()


def segment_events(target: ArchiveTarget, chain: Chain, segment: int, skip: int = 0, piece: int = 8 * 1024 * 1024,
                   check_parts: bool = True) -> Iterator[ArchivedEvent]:
    """The segment's events across the chain, in order, after skipping the first ``skip``.

    Whole runs and whole objects are skipped by their counts without being read; an
    event that spills over into the next object is assembled across both. Each run part
    read from is checked against its segment part file first (``check_parts``), and each
    object whole before its events are handed out, so nothing of a damaged archive is
    written anywhere.
    """
    for part in chain.parts(segment):
        if skip >= part.events:
            skip -= part.events
            continue
        if check_parts:
            check_segment_part(target, part.run, part)
        objs = part.objects
        k = 0
        while k < len(objs) and skip >= objs[k].events_started:
            skip -= objs[k].events_started
            k += 1

        def records(start=k):
            for o in objs[start:]:
                with checked_object(target, o, piece) as f:
                    first = True
                    for r in iter_records(f, target.where(o.key), compressed=o.compressed,
                                          expected_size=o.size, expected_records=o.records):
                        if r.segment != segment or (first and (r.seq, r.chunk_offset) != (o.first_seq, o.first_offset)):
                            raise CorruptionError(
                                f"corrupt archive object {target.where(o.key)}: it holds segment {r.segment} seq "
                                f"{r.seq}, the manifest says segment {segment} seq {o.first_seq} (a misnamed object?)"
                            )
                        first = False
                        yield r

        where = target.where(objs[k].key) if k < len(objs) else target.display
        for ev in iter_events(records(), where, skip_partial_start=True):
            if skip:
                skip -= 1
                continue
            yield ev


SPOOL_IN_MEMORY = 16 * 1024 * 1024  # an object's bytes kept in memory; past it, in TMPDIR


def checked_object(target: ArchiveTarget, o: ObjectInfo, piece: int):
    """Object ``o``'s stored bytes, read whole and checked against the manifest (its size
    as stored, its crc32c) before a single event of it is handed out: an import must not
    write the first events of a swapped, misnamed, truncated or extended object and fail
    only at its end. The bytes wait in a spooled temporary file (memory up to
    SPOOL_IN_MEMORY, then TMPDIR), so the object is fetched from the target once; an
    object that is a local file already is checked and then read in place."""
    where = target.where(o.key)
    stored = target.size(o.key)
    if stored is None:
        raise CorruptionError(f"archive object {where} is missing")
    if stored != o.size:
        raise CorruptionError(f"corrupt archive object {where}: {stored} bytes, manifest says {o.size}")
    local = target.local_path(o.key)
    if local is not None:
        with target.errors(o.key):
            spool = f = open(local, "rb")
    else:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        f = RangeFile(target, o.key, o.size, piece)
    try:
        crc = n = 0
        while True:
            chunk = f.read(piece)
            if not chunk:
                break
            if spool is not f:
                spool.write(chunk)
            crc = crc32c(chunk, crc)
            n += len(chunk)
        if n != o.size:
            raise CorruptionError(f"corrupt archive object {where}: read {n} bytes, manifest says {o.size}")
        if crc != o.crc32c:
            raise CorruptionError(f"corrupt archive object {where}: crc32c {crc:08x}, manifest says {o.crc32c:08x}")
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def checkpoints_of(target: ArchiveTarget) -> list[dict]:
    out = []
    for key in sorted(target.list(layout.CHECKPOINTS_DIR)):
        data = target.read(key)
        try:
            doc = json.loads(data or b"{}")
        except ValueError:
            continue
        doc.pop("objects", None)
        out.append(doc)
    return out
