"""Archive identity, segment parts, run manifests and the run chain (docs/format.md).

All three documents are canonical JSON (sorted keys, compact separators, ASCII) carrying a
``checksum``: the crc32c (8 hex digits) of the canonical JSON of the document without
that field. Content derives from events and options only (no wall-clock time, no host
names), so two workers finishing the same run write identical bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..errors import CorruptionError, FormatVersionError, NotFoundError
from . import layout
from .listing import ArchiveListing
from .format import COMPRESSIONS, FORMAT_VERSION, ObjectInfo, crc32c, version_for

FORMAT_NAME = "stream-backend-archive"


# --------------------------------------------------------------------------- canonical JSON


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def checksum_of(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return f"{crc32c(canonical_json(body)):08x}"


def seal(doc: dict) -> bytes:
    """Serialize ``doc`` canonically with its checksum (plus a final newline)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    body["checksum"] = checksum_of(body)
    return canonical_json(body) + b"\n"


def unseal(data: bytes, key: str, kind: str | None = None) -> dict:
    """Parse and verify a sealed document; CorruptionError/FormatVersionError name ``key``."""
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptionError(f"corrupt archive manifest {key}: not valid JSON (truncated or garbled)") from None
    if not isinstance(doc, dict):
        raise CorruptionError(f"corrupt archive manifest {key}: not a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise CorruptionError(f"corrupt archive manifest {key}: not a stream-backend archive document")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CorruptionError(f"corrupt archive manifest {key}: bad version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"archive manifest {key} has format version {version}; this stream-backend reads up to "
            f"version {FORMAT_VERSION}: upgrade stream-backend"
        )
    want = doc.get("checksum")
    if want != checksum_of(doc):
        raise CorruptionError(f"corrupt archive manifest {key}: checksum mismatch")
    if kind is not None and doc.get("kind") != kind:
        raise CorruptionError(f"corrupt archive manifest {key}: expected a {kind} document, found {doc.get('kind')!r}")
    return doc


def _field(doc: dict, name: str, key: str, types=int) -> Any:
    try:
        value = doc[name]
    except KeyError:
        raise CorruptionError(f"corrupt archive manifest {key}: missing field {name!r}") from None
    if types is not None and not isinstance(value, types):
        raise CorruptionError(f"corrupt archive manifest {key}: bad field {name!r}")
    return value


# --------------------------------------------------------------------------- identity


def identity(source: dict) -> dict:
    """The ``archive.json`` document: what this archive holds."""
    return {"format": FORMAT_NAME, "version": version_for(bool(source.get("scalable"))), "kind": "archive",
            "source": dict(source)}


def serialize_identity(source: dict) -> bytes:
    return seal(identity(source))


def parse_identity(data: bytes, key: str = layout.IDENTITY_KEY) -> dict:
    return unseal(data, key, "archive")


class _Sealed:
    """A document written sealed (``to_doc()`` plus its checksum), which then knows the
    checksum the next document refers to it by."""

    checksum: str | None

    def serialize(self) -> bytes:
        data = seal(self.to_doc())
        self.checksum = json.loads(data)["checksum"]
        return data


# --------------------------------------------------------------------------- segment parts


@dataclass
class SegmentPart(_Sealed):
    """One segment's share of one run: the events ``[from_seq, to_seq)`` and their objects."""

    run: int
    segment: int
    from_seq: int
    to_seq: int
    compression: str = "none"
    object_size: int = 0
    events: int = 0
    bytes: int = 0
    first_time: int | None = None  # ns, event append times
    last_time: int | None = None
    objects: list[ObjectInfo] = field(default_factory=list)
    checksum: str | None = None  # set when parsed or serialized
    #: the segment's place in a Pravega stream's graph when the run was planned (key
    #: range, epoch, predecessors, successors, sealed); None for a fixed stream
    shape: dict | None = None
    #: the stream's configuration then (scaling, retention, tags); None where none
    config: dict | None = None

    @property
    def key(self) -> str:
        return layout.segment_part_key(self.run, self.segment)

    def body(self) -> dict:
        return {
            "segment": self.segment,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "compression": self.compression,
            "object_size": self.object_size,
            "events": self.events,
            "bytes": self.bytes,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "objects": [o.to_json() for o in self.objects],
            **({"shape": self.shape} if self.shape is not None else {}),
            **({"stream_config": self.config} if self.config is not None else {}),
        }

    def to_doc(self) -> dict:
        doc = {"format": FORMAT_NAME, "version": version_for(self.shape is not None), "kind": "segment",
               "run": self.run}
        doc.update(self.body())
        return doc


    @classmethod
    def from_body(cls, run: int, d: dict, key: str, checksum: str | None = None) -> "SegmentPart":
        try:
            part = cls(
                run=run,
                segment=_field(d, "segment", key),
                from_seq=_field(d, "from_seq", key),
                to_seq=_field(d, "to_seq", key),
                compression=_field(d, "compression", key, str),
                object_size=_field(d, "object_size", key),
                events=_field(d, "events", key),
                bytes=_field(d, "bytes", key),
                first_time=_field(d, "first_time", key, (int, type(None))),
                last_time=_field(d, "last_time", key, (int, type(None))),
                objects=[ObjectInfo.from_json(o) for o in _field(d, "objects", key, list)],
                checksum=checksum,
                shape=_shape(d.get("shape"), key),
                config=d.get("stream_config") if isinstance(d.get("stream_config"), dict) else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CorruptionError(f"corrupt archive manifest {key}: bad object entry") from None
        if part.compression not in COMPRESSIONS:
            raise CorruptionError(f"corrupt archive manifest {key}: unknown compression {part.compression!r}")
        return part

    @classmethod
    def parse(cls, data: bytes, key: str = "<segment part>") -> "SegmentPart":
        doc = unseal(data, key, "segment")
        return cls.from_body(_field(doc, "run", key), doc, key, doc["checksum"])

    def check(self) -> None:
        """Objects must tile [from_seq, to_seq) without gap or overlap; raise CorruptionError."""
        pos = (self.from_seq, 0)
        for o in self.objects:
            if (o.first_seq, o.first_offset) != pos:
                raise CorruptionError(
                    f"corrupt archive manifest {self.key}: object {o.key} starts at {o.first_seq}/{o.first_offset}, "
                    f"expected {pos[0]}/{pos[1]}"
                )
            pos = (o.end_seq, o.end_offset)
        if self.objects and pos != (self.to_seq, 0):
            raise CorruptionError(f"corrupt archive manifest {self.key}: objects end at {pos}, run ends at {self.to_seq}")


def build_segment_part(
    run: int,
    segment: int,
    from_seq: int,
    to_seq: int,
    objects: Iterable[ObjectInfo],
    compression: str = "none",
    object_size: int = 0,
    events: int | None = None,
    shape: dict | None = None,
    config: dict | None = None,
) -> SegmentPart:
    """A segment part from the objects of the segment's share of a run, in order.

    ``events`` (events that start in this share) is derived from the objects when None:
    inside one object an event is one record, so it is the records minus the objects
    that start with a spillover continuation.
    """
    objs = list(objects)
    if events is None:
        events = sum(o.events_started for o in objs)
    part = SegmentPart(
        run=run, segment=segment, from_seq=from_seq, to_seq=to_seq, compression=compression,
        object_size=object_size, events=events, bytes=sum(o.payload_bytes for o in objs),
        first_time=next((o.first_time for o in objs if o.first_time is not None), None),
        last_time=next((o.last_time for o in reversed(objs) if o.last_time is not None), None),
        objects=objs,
        shape=shape,
        config=config,
    )
    return part


def _shape(d, key: str) -> dict | None:
    """A segment part's ``shape``, checked: key range within [0, 1], integer epoch and
    segment numbers."""
    if d is None:
        return None
    try:
        lo, hi = (float(x) for x in d["key_range"])
        ok = (0.0 <= lo < hi <= 1.0 and isinstance(d["epoch"], int) and isinstance(d["sealed"], bool)
              and all(isinstance(n, int) for n in list(d["predecessors"]) + list(d["successors"])))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CorruptionError(f"corrupt archive manifest {key}: bad segment shape {d!r}")
    return dict(d)


# --------------------------------------------------------------------------- run manifests


@dataclass
class RunManifest(_Sealed):
    run: int
    previous: dict | None  # {"run", "key", "checksum"} of the previous run, or None
    source: dict
    compression: str
    object_size: int
    segments: list[SegmentPart]
    checksum: str | None = None
    #: reader group -> {segment number: offset}: where each named group would next read,
    #: taken when the run was planned (``export --reader-group``); -1: read to its end
    reader_groups: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return layout.run_manifest_key(self.run)

    @property
    def events(self) -> int:
        return sum(p.events for p in self.segments)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.segments)

    def segment(self, segment: int) -> SegmentPart | None:
        for p in self.segments:
            if p.segment == segment:
                return p
        return None

    @property
    def stream_config(self) -> dict | None:
        """The stream's configuration when the run was planned (None: fixed stream)."""
        return next((p.config for p in self.segments if p.config is not None), None)

    def to_doc(self) -> dict:
        doc = {
            "format": FORMAT_NAME,
            "version": version_for(any(p.shape is not None for p in self.segments) or bool(self.reader_groups)),
            "kind": "run",
            "run": self.run,
            "previous": self.previous,
            "source": self.source,
            "compression": self.compression,
            "object_size": self.object_size,
            "events": self.events,
            "bytes": self.bytes,
            "segments": [dict(p.body(), part_checksum=p.checksum) for p in sorted(self.segments, key=lambda p: p.segment)],
        }
        if self.reader_groups:
            doc["reader_groups"] = _positions_doc(self.reader_groups)
        return doc


    @classmethod
    def parse(cls, data: bytes, key: str = "<run manifest>") -> "RunManifest":
        doc = unseal(data, key, "run")
        run = _field(doc, "run", key)
        prev = _field(doc, "previous", key, (dict, type(None)))
        if prev is not None and not (
            isinstance(prev.get("run"), int) and isinstance(prev.get("key"), str) and isinstance(prev.get("checksum"), str)
        ):
            raise CorruptionError(f"corrupt archive manifest {key}: bad 'previous'")
        parts = [
            SegmentPart.from_body(run, s, key, s.get("part_checksum")) for s in _field(doc, "segments", key, list)
        ]
        return cls(
            run=run, previous=prev, source=_field(doc, "source", key, dict),
            compression=_field(doc, "compression", key, str), object_size=_field(doc, "object_size", key),
            segments=parts, checksum=doc["checksum"],
            reader_groups={g: _positions(p, key) for g, p in doc.get("reader_groups", {}).items()},
        )


def _positions_doc(groups: dict[str, dict[int, int]]) -> dict:
    return {g: {str(n): off for n, off in sorted(pos.items())} for g, pos in sorted(groups.items())}


def _positions(doc: Any, key: str) -> dict[int, int]:
    if not isinstance(doc, dict):
        raise CorruptionError(f"corrupt archive manifest {key}: bad reader-group positions")
    try:
        out = {int(n): off for n, off in doc.items()}
    except ValueError:
        raise CorruptionError(f"corrupt archive manifest {key}: bad reader-group segment") from None
    # -1: the group read that (sealed) segment to its end (Pravega's own mark)
    if not all(isinstance(off, int) and not isinstance(off, bool) and off >= -1 for off in out.values()):
        raise CorruptionError(f"corrupt archive manifest {key}: bad reader-group offset")
    return out


def serialize_reader_group(run: int, group: str, positions: dict[int, int]) -> bytes:
    """``runs/<run>/reader-groups/<group>.json``: the group's position, written once when
    the run is planned, so a resumed or sharded run records the same one."""
    return seal({"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": "reader-group", "run": run,
                 "group": group, "positions": _positions_doc({group: positions})[group]})


def parse_reader_group(data: bytes, key: str) -> tuple[str, dict[int, int]]:
    doc = unseal(data, key, "reader-group")
    return _field(doc, "group", key, str), _positions(_field(doc, "positions", key, dict), key)


def build_run_manifest(
    run: int,
    parts: Iterable[SegmentPart],
    source: dict,
    previous: RunManifest | None = None,
    compression: str | None = None,
    object_size: int | None = None,
    reader_groups: dict[str, dict[int, int]] | None = None,
) -> RunManifest:
    """The run manifest from all segment parts of run ``run`` (any order: sorted here).

    Each part gets its checksum from its canonical serialization, so the manifest is a
    pure function of the parts, and any worker that finishes last writes the same bytes.
    """
    plist = sorted(parts, key=lambda p: p.segment)
    for p in plist:
        if p.run != run:
            raise ValueError(f"segment part of run {p.run} given to run {run}")
        if p.checksum is None:
            p.serialize()
    if previous is not None and previous.checksum is None:
        previous.serialize()
    return RunManifest(
        run=run,
        previous=None if previous is None else {"run": previous.run, "key": previous.key, "checksum": previous.checksum},
        source=dict(source),
        compression=compression if compression is not None else (plist[0].compression if plist else "none"),
        object_size=object_size if object_size is not None else (plist[0].object_size if plist else 0),
        segments=plist,
        reader_groups=dict(reader_groups or {}),
    )


# --------------------------------------------------------------------------- chain


def walk_chain(read: Callable[[str], bytes], latest: int) -> Iterator[RunManifest]:
    """Run manifests from run ``latest`` back to the first run, following ``previous``.

    ``read(key)`` returns a document's bytes (keys relative to the archive prefix) or
    raises FileNotFoundError. Each link's checksum is checked against the manifest it
    points to, so a replaced or damaged earlier run is detected.
    """
    key = layout.run_manifest_key(latest)
    want: str | None = None
    seen: set[int] = set()
    while True:
        try:
            data = read(key)
        except FileNotFoundError:
            raise NotFoundError(f"archive run manifest {key} not found") from None
        m = RunManifest.parse(data, key)
        if want is not None and m.checksum != want:
            raise CorruptionError(f"corrupt archive chain: {key} checksum {m.checksum} differs from {want} recorded by the next run")
        if m.run in seen or key != layout.run_manifest_key(m.run):
            raise CorruptionError(f"corrupt archive chain at {key}: run number {m.run} does not match")
        seen.add(m.run)
        yield m
        if m.previous is None:
            return
        if m.previous["run"] >= m.run:
            raise CorruptionError(f"corrupt archive chain at {key}: previous run {m.previous['run']} is not earlier")
        key, want = m.previous["key"], m.previous["checksum"]


def read_chain(read: Callable[[str], bytes], runs: list[int], where: str) -> list[RunManifest]:
    """The manifests of the complete ``runs``, oldest first, walked back from the newest
    with every link checked; a complete run the walk does not reach is damage too."""
    if not runs:
        return []
    try:
        chain = list(reversed(list(walk_chain(read, max(runs)))))
    except NotFoundError as exc:
        raise CorruptionError(f"broken archive chain in {where}: {exc}") from None
    missing = sorted(set(runs) - {m.run for m in chain})
    if missing:
        raise CorruptionError(f"archive {where}: run(s) {missing} are not in the chain of run {max(runs)}")
    return chain


# --------------------------------------------------------------------------- reading archives through fsspec


class ArchiveReader:
    """Reads an archive's documents through any fsspec filesystem (s3fs, local, memory).

    Only plain fsspec calls; no knowledge of S3. ``prefix`` is the archive's path inside
    ``fs`` (no protocol).
    """

    def __init__(self, fs: Any, prefix: str):
        self.fs = fs
        self.prefix = prefix.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                raise FileNotFoundError(key) from None
            raise

    def identity(self) -> dict:
        try:
            data = self.read(layout.IDENTITY_KEY)
        except FileNotFoundError:
            raise NotFoundError(f"no archive at {self.prefix or '/'} ({layout.IDENTITY_KEY} missing)") from None
        return parse_identity(data, self.path(layout.IDENTITY_KEY))

    def runs(self) -> list[int]:
        """Numbers of the complete runs (those with a manifest), ascending."""
        base = self.path(layout.RUNS_DIR)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.prefix
        keys = [p[len(root) + 1:] if root and p.startswith(root + "/") else p.lstrip("/") for p in found]
        return ArchiveListing.of(keys).complete_runs

    def latest_run(self) -> int | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def manifest(self, run: int) -> RunManifest:
        key = layout.run_manifest_key(run)
        try:
            return RunManifest.parse(self.read(key), self.path(key))
        except FileNotFoundError:
            raise NotFoundError(f"archive run {run} not found ({self.path(key)})") from None

    def chain(self, latest: int | None = None) -> list[RunManifest]:
        """Run manifests from the first run to ``latest`` (default: the newest), in order."""
        runs = self.runs()
        if latest is not None:
            if latest not in runs:
                raise NotFoundError(f"archive run {latest} not found ({self.path(layout.run_manifest_key(latest))})")
            runs = [r for r in runs if r <= latest]
        return read_chain(self.read, runs, self.prefix or "/")

    def segment_part(self, run: int, segment: int) -> SegmentPart:
        key = layout.segment_part_key(run, segment)
        try:
            return SegmentPart.parse(self.read(key), self.path(key))
        except FileNotFoundError:
            raise NotFoundError(f"archive segment part {self.path(key)} not found") from None


def segment_objects(chain: Iterable[RunManifest], segment: int) -> list[ObjectInfo]:
    """All objects of ``segment`` across a chain of runs (oldest first), in file-view order."""
    out: list[ObjectInfo] = []
    for m in chain:
        p = m.segment(segment)
        if p is not None:
            out.extend(p.objects)
    return out
