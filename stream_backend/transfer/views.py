"""The file view in the archive: each segment's payloads back to back (what `cat` prints),
as plain objects anyone can download with a presigned URL, curl or a browser, no reader of
our format needed.

Each complete run gets its own view objects (``views/SEGMENT/RUN-K.bin``, at most the
object size each, an event's payload spilling over into the next object), then a view
manifest (``views/RUN.json``) naming each object's offset in the segment's file view, its
size, SHA-256 (for anyone's ``sha256sum``) and CRC32C (S3's own checksum, cheap to check).
The manifest is written last: a run without one has no view yet, and writing it again
rewrites the same bytes. The views are made from the archive, not the store, so they say
exactly what the archive holds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from concurrent.futures import Future

import crc32c

from ..archive import layout
from ..errors import CorruptionError, NotFoundError
from .reader import Chain, load_chain, segment_events
from .targets import ArchiveTarget
from .targets.uploads import PartPool

VIEW_FORMAT = 1


class _ViewObjects:
    """Bytes in, plain objects of at most ``object_size`` out, each as parts of ``part_size``."""

    def __init__(self, target: ArchiveTarget, segment: int, run: int, offset: int, object_size: int,
                 part_size: int, pool: PartPool) -> None:
        self.target, self.segment, self.run = target, segment, run
        self.object_size, self.part_size, self.pool = object_size, max(part_size, 1), pool
        self.offset = offset  # in the segment's file view
        self.objects: list[dict] = []
        self.pending: list[Future] = []
        self._buf = bytearray()
        self._upload = None
        self._size = 0
        self._hash = None
        self._crc = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._upload is None:
                key = layout.view_object_key(self.segment, self.run, len(self.objects))
                self._upload = self.target.upload(key, self.part_size, self.pool)
                self._hash, self._crc, self._size = hashlib.sha256(), 0, 0
                self.objects.append({"key": key, "offset": self.offset})
            room = self.object_size - self._size - len(self._buf)
            take = view[:room]
            self._buf += take
            view = view[len(take):]
            if len(self._buf) >= self.part_size:
                self._flush_part()
            if self._size + len(self._buf) >= self.object_size:
                self._finish_object()

    def _flush_part(self) -> None:
        part = bytes(self._buf)
        self._buf.clear()
        self._hash.update(part)
        self._crc = crc32c.crc32c(part, self._crc)
        self._size += len(part)
        self._upload.write_part(part)

    def _finish_object(self) -> None:
        if self._buf:
            self._flush_part()
        self.objects[-1].update(size=self._size, sha256=self._hash.hexdigest(), crc32c=f"{self._crc:08x}")
        self.offset += self._size
        self.pending.append(self._upload.finish())
        self._upload = None

    def close(self) -> list[dict]:
        if self._upload is not None:
            self._finish_object()
        for f in self.pending:
            f.result()
        return self.objects


def view_manifest(target: ArchiveTarget, run: int) -> dict | None:
    data = target.read(layout.view_manifest_key(run))
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        raise CorruptionError(f"corrupt view manifest {target.where(layout.view_manifest_key(run))}") from None
    if doc.get("format") != VIEW_FORMAT or doc.get("run") != run:
        raise CorruptionError(f"view manifest {target.where(layout.view_manifest_key(run))} is not run {run}'s")
    return doc


def write_views(target: ArchiveTarget, object_size: int, part_size: int, parallel: int,
                chain: Chain | None = None) -> list[int]:
    """Give every complete run that has no file view one; the runs written, oldest first."""
    chain = chain or load_chain(target)
    ends: dict[int, int] = {}  # segment -> bytes of its file view so far
    seen: dict[int, int] = {}  # segment -> events of the runs before
    written = []
    pool = PartPool(parallel)
    try:
        for m in chain.runs:
            doc = view_manifest(target, m.run)
            if doc is None:
                doc = {"format": VIEW_FORMAT, "run": m.run, "segments": {}}
                for part in m.segments:
                    out = _ViewObjects(target, part.segment, m.run, ends.get(part.segment, 0), object_size,
                                       part_size, pool)
                    events = segment_events(target, chain, part.segment, skip=seen.get(part.segment, 0))
                    for ev in itertools.islice(events, part.events):
                        out.write(ev.payload)
                    doc["segments"][str(part.segment)] = out.close()
                target.write(layout.view_manifest_key(m.run), json.dumps(doc, sort_keys=True).encode())
                written.append(m.run)
            for part in m.segments:
                seen[part.segment] = seen.get(part.segment, 0) + part.events
                objs = doc["segments"].get(str(part.segment)) or []
                if objs:
                    ends[part.segment] = objs[-1]["offset"] + objs[-1]["size"]
    finally:
        pool.close()
    return written


def segment_view(target: ArchiveTarget, chain: Chain, segment: int) -> list[dict]:
    """Every view object of ``segment``, in file-view order; CorruptionError if a run has
    no view (it was exported without one: export again with the file view to add it)."""
    out = []
    for m in chain.runs:
        doc = view_manifest(target, m.run)
        if doc is None:
            raise NotFoundError(f"run {m.run} of {target.display} has no file view: "
                                  "run the export again with --file-view to add it")
        out += doc["segments"].get(str(segment)) or []
    return out


#: a download plan's URLs are valid this long unless asked otherwise (S3 allows up to 7 days)
PLAN_EXPIRES = 3600
PLAN_EXPIRES_MAX = 7 * 24 * 3600


def download_plan(target: ArchiveTarget, segment: int | None = None, expires: int = PLAN_EXPIRES) -> dict:
    """What a client needs to fetch a segment's file view straight from S3: each view
    object's presigned URL, its offset in the file, size, SHA-256 and (views written since
    it was added) CRC32C, in order. Written at their offsets, the objects are the file view; each may be fetched in parallel and
    again with Range after an interruption."""
    import time

    from ..errors import UnsupportedError, UsageError

    if not 1 <= expires <= PLAN_EXPIRES_MAX:
        raise UsageError(f"expires must be between 1 and {PLAN_EXPIRES_MAX} seconds")
    chain = load_chain(target)
    if segment is None:
        if len(chain.numbers) != 1:
            raise UsageError(f"the archive holds {len(chain.numbers)} segments: add ?segment=N")
        segment = chain.numbers[0]
    elif segment not in chain.numbers:
        raise NotFoundError(f"the archive holds no segment {segment}")
    parts = []
    for o in segment_view(target, chain, segment):
        url = target.presigned_url(o["key"], expires)
        if url is None:
            raise UnsupportedError(f"{target.display} is not in S3: download plans need an s3:// archive")
        parts.append({"url": url, "offset": o["offset"], "size": o["size"], "sha256": o["sha256"],
                      **({"crc32c": o["crc32c"]} if "crc32c" in o else {})})
    return {"archive": target.display, "segment": segment, "runs": [m.run for m in chain.runs],
            "size": sum(p["size"] for p in parts), "expires": int(time.time()) + expires, "parts": parts}
