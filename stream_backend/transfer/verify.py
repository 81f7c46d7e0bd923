"""verify and status: check an archive end to end; summarize its runs and transfers.

verify reads everything: each manifest's checksum and the chain's links, each segment
part against the checksum its run recorded, each object's size and crc32c, each
record's crc32c and the reassembly of every event; with a source stream it also
compares event for event. The first problem raises CorruptionError naming the object.
"""

from __future__ import annotations

from ..archive import layout
from ..archive.listing import ArchiveListing
from ..errors import ArchiveBehindError, CorruptionError, StreamBehindError
from ..units import human_size, iso_time
from .checkpoint import read_leases
from .reader import RangeFile, check_segment_part, checkpoints_of, load_chain, segment_events
from .shape import segment_map
from .targets import ArchiveTarget


def verify_archive(target: ArchiveTarget, against=None, piece: int = 8 * 1024 * 1024) -> dict:
    """``against``: optional ``(store, scope, stream)`` to compare events with."""
    from ..archive import iter_events

    chain = load_chain(target)
    listing = target.list("")
    objects = events = payload = 0
    prev_to: dict[int, int] = {}
    for m in chain.runs:
        for part in m.segments:
            check_segment_part(target, m.run, part)
            if part.segment in prev_to and part.from_seq != prev_to[part.segment]:
                raise CorruptionError(
                    f"archive {target.display}: run {m.run} segment {part.segment} starts at seq {part.from_seq}, "
                    f"the previous run ended at {prev_to[part.segment]}"
                )
            prev_to[part.segment] = part.to_seq
            seg_events = seg_bytes = 0
            counter = [0]
            for ev in iter_events(_checked_records(target, part, listing, piece, counter), target.where(part.key)):
                seg_events += 1
                seg_bytes += len(ev.payload)
            objects += counter[0]
            if seg_events != part.events or seg_bytes != part.bytes:
                raise CorruptionError(
                    f"archive {target.where(part.key)}: holds {seg_events} events / {seg_bytes} bytes, "
                    f"manifest says {part.events} / {part.bytes}"
                )
            events += seg_events
            payload += seg_bytes
    result = {"op": "verify", "archive": target.display, "runs": len(chain.runs), "objects": objects,
              "events": events, "bytes": payload,
              "manifest_checksum": chain.runs[-1].checksum if chain.runs else None}
    if against is not None:
        result.update(_compare(target, chain, against, piece))
    return result


def _checked_records(target, part, listing, piece, counter):
    """Records of a segment part's objects, each object checked against the manifest."""
    from ..archive import iter_records

    for o in part.objects:
        size = listing.get(o.key)
        if size is None:
            raise CorruptionError(f"archive object {target.where(o.key)} is missing")
        if size != o.size:
            raise CorruptionError(f"corrupt archive object {target.where(o.key)}: {size} bytes, manifest says {o.size}")
        got = 0
        for r in iter_records(
            RangeFile(target, o.key, o.size, piece), target.where(o.key), compressed=o.compressed,
            expected_size=o.size, expected_crc32c=o.crc32c, expected_records=o.records,
        ):
            if r.segment != part.segment:
                raise CorruptionError(f"corrupt archive object {target.where(o.key)}: record of segment {r.segment}")
            got += len(r.chunk)
            yield r
        if got != o.payload_bytes:
            raise CorruptionError(
                f"corrupt archive object {target.where(o.key)}: {got} payload bytes, manifest says {o.payload_bytes}"
            )
        counter[0] += 1


def _compare(target: ArchiveTarget, chain, against, piece: int) -> dict:
    """Event for event, every segment; the stream may hold more or fewer events than the
    archive (a source appended to since the export, a restore that stopped short, a
    destination written to afterwards). Content differences raise CorruptionError;
    length differences are counted, per direction, for ``verify`` to report."""
    store, scope, stream = against
    info = store.stream_info(scope, stream)
    store.check_whole(scope, stream)
    # against the archive's own source, positions must agree too; a restore has its own
    src_doc = chain.source
    source = (src_doc.get("store"), src_doc.get("scope"), src_doc.get("stream")) == (store.protocol, scope, stream)
    where = segment_map(chain, store, info, is_source=source)
    if where is None:
        raise CorruptionError(
            f"archive has segments {chain.numbers}, {scope}/{stream} has {info.numbers}: not the same stream shape"
        )
    out = {"compared_events": 0, "stream_extra_events": 0, "stream_extra_bytes": 0,
           "archive_extra_events": 0, "archive_extra_bytes": 0}
    for extra in sorted(set(info.numbers) - set(where.values())):  # segments born after the archive's last run
        seg = info.segment(extra)
        out["stream_extra_events"] += seg.events
        out["stream_extra_bytes"] += seg.length
    for s in chain.numbers:
        d = where[s]
        parts = list(chain.parts(s))
        seg = info.segment(d)
        start = parts[0].from_seq if source and parts else seg.head_seq
        src = store.read_events(scope, stream, d, from_seq=start, to_seq=seg.tail_seq)
        for a in segment_events(target, chain, s, piece=piece, check_parts=False):
            b = next(src, None)
            if b is None:
                out["archive_extra_events"] += 1
                out["archive_extra_bytes"] += len(a.payload)
                continue
            if (source and a.seq != b.seq) or a.payload != b.payload or (b.routing_key is not None and a.routing_key != b.routing_key):
                raise CorruptionError(
                    f"archive {target.display} differs from {store.protocol}://{scope}/{stream} "
                    f"in segment {s} at seq {a.seq}"
                )
            out["compared_events"] += 1
        for b in src:
            out["stream_extra_events"] += 1
            out["stream_extra_bytes"] += len(b.payload)
    return out


def mismatch(result: dict, archive: str, stream_url: str):
    """The error a ``verify --against`` result amounts to (None: the two hold the same
    events). A stream with events the archive lacks and an archive with events the
    stream lacks are different problems with different remedies and exit codes."""
    extra, extra_b = result.get("stream_extra_events", 0), result.get("stream_extra_bytes", 0)
    if extra:
        return ArchiveBehindError(
            f"archive {archive} is behind {stream_url} by {extra} event{'s' if extra != 1 else ''} "
            f"({human_size(extra_b)}): the stream has {extra} event{'s' if extra != 1 else ''} the archive does not"
        )
    lack, lack_b = result.get("archive_extra_events", 0), result.get("archive_extra_bytes", 0)
    if lack:
        return StreamBehindError(
            f"{stream_url} lacks {lack} event{'s' if lack != 1 else ''} ({human_size(lack_b)}) that archive "
            f"{archive} holds (an import that did not finish, or a truncated stream)"
        )
    return None


def _lock_field(lock) -> dict:
    """A run's Object Lock as its manifest carries it (written last, renewed last)."""
    if lock is None:
        return {}
    return {"lock": {"mode": lock.mode, "until": iso_time(lock.until.timestamp()) if lock.until else None,
                     "legal_hold": lock.legal_hold}}


def archive_status(target: ArchiveTarget) -> dict:
    """Runs (number, when written, events, bytes, segments, ranges) and any transfer in
    progress. A run's time is its manifest's, as the storage recorded it: the manifest's
    bytes hold no clock time, so that a rerun writes the very same archive."""
    chain = load_chain(target)
    written = target.written(layout.RUNS_DIR)
    runs = []
    for m in chain.runs:
        runs.append({
            "run": m.run, "written": iso_time(written.get(layout.run_manifest_key(m.run))),
            "events": m.events, "bytes": m.bytes, "segments": len(m.segments),
            "objects": sum(len(p.objects) for p in m.segments),
            "ranges": {str(p.segment): [p.from_seq, p.to_seq] for p in m.segments},
            "first_time": min((p.first_time for p in m.segments if p.first_time is not None), default=None),
            "last_time": max((p.last_time for p in m.segments if p.last_time is not None), default=None),
            "checksum": m.checksum,
            **_lock_field(target.lock_of(layout.run_manifest_key(m.run))),
            **({"shape": {str(p.segment): p.shape for p in m.segments if p.shape is not None}}
               if any(p.shape is not None for p in m.segments) else {}),
            **({"stream_config": m.stream_config} if m.stream_config is not None else {}),
        })
    cps = checkpoints_of(target)
    for cp in cps:
        tot, done = cp.get("total_bytes") or 0, cp.get("done_bytes") or 0
        cp["percent"] = round(100.0 * done / tot, 2) if tot else 100.0
    listing = ArchiveListing.of(written)
    in_progress = sorted(r for r in listing.parts if r not in listing.manifests)
    return {
        "archive": target.display,
        "source": chain.source,
        "runs": runs,
        "events": sum(r["events"] for r in runs),
        "bytes": sum(r["bytes"] for r in runs),
        "in_progress": {"runs": in_progress, "checkpoints": cps, "leases": read_leases(target)},
    }
