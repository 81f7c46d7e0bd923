"""Import: replay an archive's chain of runs into a stream, resumably, exactly once.

Where to resume comes from the destination itself: its event count per segment says
how many of the archive's events are already there, so after a pause or a SIGKILL the
import skips exactly those (no gap, no duplicate). That only holds if nobody else
writes to the destination, hence the *import marker*.

The marker. Before the first event is written, the import appends one small JSON
event describing itself — the archive's identity checksum (``archive.json``) and the
checksum of its first run manifest (the chain's root), plus the newest run imported —
to a companion stream ``SCOPE/STREAM.sb-import`` in the destination store. A later
import into a non-empty destination proceeds only if the marker's archive identity and
chain root match its own: then the destination is this archive's partial (or earlier
complete) import and its tail is a position in the archive. Anything else is refused
(exit 73). The marker lives with the destination, not in the archive, because two
archives can target the same stream: a checkpoint in one archive cannot know what
another import wrote. Identity is content-based (same stream, same first run), so a
copy of the archive under another URL resumes the same import. Before appending, the
last event of each non-empty destination segment is compared with the archive's event
at that position, which catches a foreign writer that slipped in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Iterator

from .. import settings
from ..errors import (
    CorruptionError,
    EventTooLargeError,
    NotEmptyError,
    NotFoundError,
    Paused,
    StreamBackendError,
    UsageError,
    WriterBusyError,
)
from ..units import iso_time
from ..urls import check_name
from .export import select_segments
from .progress import Progress
from .reader import Chain, load_chain, segment_events
from .shape import ShapeReplay, config_options, restore_scaling
from .signals import PauseRequest
from .targets import ArchiveTarget

MARKER_SUFFIX = ".sb-import"
# a flush waits for the store to acknowledge everything in flight (Pravega: drains the
# writer's pipeline); resume never needs one (it counts what the destination holds), so
# they only bound how much progress is reported before it is durable
FLUSH_EVENTS = 200_000
FLUSH_BYTES = 128 * 1024 * 1024
TURN_BYTES = 4 * 1024 * 1024  # one segment's share before the next segment's turn
TOGETHER = 4  # segments written in turns at once (each holds an archive object open)


@dataclass
class ImportOptions:
    to_seq: int | None = None
    to_time_ns: int | None = None
    segments: list[int] | None = None
    part_size: int = settings.DEFAULT_PART_SIZE
    #: recreate this reader group (as export --reader-group recorded it) on the destination
    reader_group: str | None = None


def marker_stream(stream: str) -> str:
    name = stream + MARKER_SUFFIX
    if len(name) > 255:
        name = stream[:200] + "." + hashlib.sha256(stream.encode()).hexdigest()[:16] + MARKER_SUFFIX
    return check_name("stream", name)


def _identity(chain: Chain) -> dict:
    return {
        "kind": "import-marker",
        "version": 1,
        "archive": chain.identity_checksum,
        "source": chain.source,
        "root": chain.runs[0].checksum if chain.runs else None,
        "numbers": chain.numbers,
        "latest": {"run": chain.runs[-1].run, "checksum": chain.runs[-1].checksum} if chain.runs else None,
    }


def _marker_records(store, scope: str, stream: str) -> list[dict]:
    """Every record of the destination's import marker, oldest first ([] if none)."""
    name = marker_stream(stream)
    try:
        info = store.stream_info(scope, name)
    except NotFoundError:
        return []
    out = []
    for seg in info.segments:
        if seg.tail_seq > seg.head_seq:
            for ev in store.read_events(scope, name, seg.segment, from_seq=seg.head_seq, to_seq=seg.tail_seq):
                try:
                    doc = json.loads(ev.payload)
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    out.append(doc)
    return out


def _read_marker(store, scope: str, stream: str) -> dict | None:
    records = _marker_records(store, scope, stream)
    return records[-1] if records else None


def import_state(store, scope: str, stream: str) -> dict | None:
    """What the import marker says about a destination stream, for ``info``: None if no
    import ever wrote to it; else the archive and run it restores, and whether every
    segment's import finished (a failed or paused import leaves ``complete`` false, so a
    partial restore is never mistaken for a whole one)."""
    records = _marker_records(store, scope, stream)
    if not records:
        return None
    last = records[-1]
    key = (last.get("archive"), last.get("root"), json.dumps(last.get("latest"), sort_keys=True))
    done: set[int] = set()
    point = damaged = None
    for r in records:
        same = (r.get("archive"), r.get("root"), json.dumps(r.get("latest"), sort_keys=True)) == key
        if r.get("finished") and same:
            done.update(int(s) for s in r.get("segments", []))
            point = r.get("restore_point", point)
        if same:
            damaged = r.get("damaged")  # the latest attempt's word: a later clean one clears it
    return {
        "archive_identity": last.get("archive"),
        "source": last.get("source"),
        "run": (last.get("latest") or {}).get("run"),
        "complete": bool(done) and done >= set(
            last.get("numbers") or range(int((last.get("source") or {}).get("segments", 0)))),
        "segments_done": sorted(done),
        "restore_point": point,
        "damaged": damaged,
    }


def _write_marker(store, scope: str, stream: str, doc: dict, wait: float = 10.0) -> None:
    """Append one marker record. Shards of one import share the marker stream, and the
    local store has one writer per stream: a busy marker is waited for, briefly."""
    name = marker_stream(stream)
    store.create_stream(scope, name, segments=1, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            w = store.writer(scope, name)
            break
        except WriterBusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    with w:
        w.append(json.dumps(doc, sort_keys=True).encode(), None, segment=0)
        w.flush()


def _grouped(steps: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Consecutive ("write", segment) steps as ("write", [segments]) steps of up to
    TOGETHER segments: segments between two scales are independent of each other."""
    out: list[tuple[str, object]] = []
    for kind, what in steps:
        if kind == "write" and out and out[-1][0] == "write" and len(out[-1][1]) < TOGETHER:
            out[-1][1].append(what)
        else:
            out.append((kind, [what] if kind == "write" else what))
    return out


def _recorded_group(chain: Chain, group: str, display: str) -> tuple[int, dict[int, int]]:
    """(run, positions) of the latest run that recorded ``group``."""
    for m in reversed(chain.runs):
        if group in m.reader_groups:
            return m.run, m.reader_groups[group]
    have = sorted({g for m in chain.runs for g in m.reader_groups})
    raise NotFoundError(f"no run of {display} recorded reader group {group} "
                        f"(recorded: {', '.join(have) or 'none'}; export with --reader-group {group})")


def _events_limit(part, opts: ImportOptions) -> bool:
    """True when a whole run part lies beyond the restore point (nothing to import)."""
    if opts.to_seq is not None and part.from_seq >= opts.to_seq:
        return True
    if opts.to_time_ns is not None and part.first_time is not None and part.first_time > opts.to_time_ns:
        return True
    return False


def _planned(chain: Chain, segment: int, opts: ImportOptions) -> tuple[int, int]:
    """(events, bytes) the import restores in ``segment`` (exact for dense seqs + --to-seq)."""
    ev = by = 0
    for p in chain.parts(segment):
        if _events_limit(p, opts):
            break
        if opts.to_seq is not None and p.to_seq > opts.to_seq and p.to_seq - p.from_seq == p.events:
            n = opts.to_seq - p.from_seq
            ev += n
            by += int(p.bytes * n / max(p.events, 1))
            break
        ev += p.events
        by += p.bytes
    return ev, by


@dataclass
class ImportPlan:
    """One import, fixed while the destination's writer is held: what ``execute`` does."""

    writer: object
    chain: Chain
    mine: list[int]
    dest: str
    ident: dict
    #: archive segment -> events its destination segment holds already (skipped)
    have: dict[int, int]
    #: archive segment -> (events, bytes) the import restores
    plan: dict[int, tuple[int, int]]
    warning: str | None


class Importer:
    def __init__(self, target: ArchiveTarget, store, scope: str, stream: str, opts: ImportOptions,
                 pause: PauseRequest | None = None, progress: Progress | None = None):
        self.target, self.store, self.scope, self.stream = target, store, scope, stream
        self.opts = opts
        self.pause = pause if pause is not None else PauseRequest()
        self.progress = progress or Progress("import", "none")
        self.progress.watch_retries(lambda: target.retries)

    def run(self) -> dict:
        with self.plan_run() as plan:
            return self.execute(plan)

    @contextlib.contextmanager
    def plan_run(self) -> Iterator[ImportPlan]:
        """Check the archive and the destination, create it if it is missing, take its
        writer, and fix what each segment restores (what it holds already is skipped).
        The writer is held until the block ends."""
        chain = self._chain = load_chain(self.target)
        if not chain.runs:
            raise NotFoundError(f"archive {self.target.display} has no complete run yet")
        mine = select_segments(chain.numbers, self.opts.segments)
        dest = f"{self.store.protocol}://{self.scope}/{self.stream}"
        # a stream that scaled is restored scale by scale where the store can scale
        self.replay = ShapeReplay(chain) if chain.scaled and self.store.scalable else None
        if self.replay is not None and mine != chain.numbers:
            raise UsageError(
                f"{self.target.display} holds a stream that scaled: its shape is restored scale by scale, "
                "which takes every segment in one import (no --segments or --shard)"
            )
        if self.opts.reader_group is not None:
            self._group_at = _recorded_group(chain, self.opts.reader_group, self.target.display)
            if mine != chain.numbers:
                raise UsageError("--reader-group restores a position in every segment: import them all "
                                 "in one run (no --segments or --shard)")
        ident = _identity(chain)
        largest = chain.source.get("max_event_size")  # absent in archives made before it was recorded
        try:
            info = self.store.stream_info(self.scope, self.stream)
        except NotFoundError:
            if self.replay is not None:
                self.replay.create(self.store, self.scope, self.stream, largest)
            else:
                self.store.create_stream(self.scope, self.stream, segments=len(chain.numbers), exist_ok=True,
                                         max_event_size=largest, **config_options(self.store, chain.runs[-1].stream_config))
            info = self.store.stream_info(self.scope, self.stream)
        if largest is not None and info.max_event_size < largest:
            raise EventTooLargeError(
                f"destination {dest} takes events of at most {info.max_event_size} bytes; the archive's stream "
                f"allowed {largest}: import into a new stream (created to fit) or one made with "
                f"'create --max-event-size {largest}'"
            )
        # the destination's writer first, its state second: an import that read the state
        # before another import's events landed would append them all again
        self.pause.holding_state()
        try:
            writer = self.store.writer(self.scope, self.stream)
        except WriterBusyError:
            raise WriterBusyError(
                f"destination {dest} is being written by another import or writer: "
                "run this import again once it has finished (it then resumes or finds it complete)"
            ) from None
        try:
            yield self._plan_holding(writer, chain, mine, dest, ident)
        except CorruptionError as exc:
            # next to the destination, for `info`: running the import again cannot help
            # until the archive is repaired
            try:
                _write_marker(self.store, self.scope, self.stream, dict(ident, damaged=str(exc)))
            except StreamBackendError:
                pass  # the damage is what the user must hear about, not the note's failure
            raise
        finally:
            writer.close()

    def _plan_holding(self, writer, chain: Chain, mine: list[int], dest: str, ident: dict) -> ImportPlan:
        info = self.store.stream_info(self.scope, self.stream)
        if self.replay is not None:
            self.replay.start(self.store, self.scope, self.stream, info)
            info = self.store.stream_info(self.scope, self.stream)
            writer.refresh()
            dest_of = self.replay.match(info)
            if dest_of is None:
                raise NotEmptyError(
                    f"destination {dest} does not have the shape of the stream {self.target.display} holds "
                    "(it scaled): import into a new stream, which is created and scaled to match"
                )
        elif info.segment_count != len(chain.numbers):
            raise NotEmptyError(
                f"destination {dest} has {info.segment_count} segments, the archive {len(chain.numbers)}: "
                "import into a new stream"
            )
        else:
            dest_of = chain.dense(info.numbers)
        self.dest_of = dest_of
        marker = _read_marker(self.store, self.scope, self.stream)
        if info.events > 0:
            if not marker or marker.get("archive") != ident["archive"] or marker.get("root") != ident["root"]:
                raise NotEmptyError(
                    f"destination {dest} is not empty and is not a partial import of {self.target.display}: "
                    "import into a new or empty stream"
                )
        if marker != ident:
            _write_marker(self.store, self.scope, self.stream, ident)

        have = {s: (info.segment(d).events if info.segment(d) is not None else 0) for s, d in dest_of.items()}
        plan = {s: _planned(chain, s, self.opts) for s in mine}
        for s in mine:
            if have.get(s, 0) > plan[s][0]:
                raise NotEmptyError(
                    f"destination {dest} segment {dest_of[s]} holds {have[s]} events, more than the {plan[s][0]} "
                    "this import restores: import into a new stream"
                )
        warning = None
        if sum(ev for ev, _b in plan.values()) == 0 and (self.opts.to_seq is not None or self.opts.to_time_ns is not None):
            first = min((p.first_time for s in mine for p in chain.parts(s) if p.first_time is not None), default=None)
            warning = "nothing to restore: no event of the archive is before the restore point" + (
                f" (its first event was appended at {iso_time(first / 1e9)})" if first is not None else "")
        return ImportPlan(writer, chain, mine, dest, ident, have, plan, warning)

    def execute(self, p: ImportPlan) -> dict:
        """Append what the plan restores, segment by segment (scale by scale for a stream
        that scaled), then mark the destination finished and restore its policies."""
        writer, chain, mine, dest, ident, have, plan = p.writer, p.chain, p.mine, p.dest, p.ident, p.have, p.plan
        for s in mine:
            self.progress.add_total(*plan[s])
        self.appended = self.appended_bytes = skipped = 0
        t0 = time.monotonic()
        steps = self.replay.steps(mine) if self.replay is not None else [("write", s) for s in mine]
        steps = _grouped(steps)
        for i, (kind, what) in enumerate(steps):
            if kind == "scale":
                self._scale(writer, what, dest)
                continue
            skipped += sum(have.get(s, 0) for s in what)  # segments a scale of this attempt made are empty
            self._write_segments(writer, chain, what, have, plan, dest)
            if self.pause and i != len(steps) - 1:
                raise Paused(f"import paused after segments {what}; {dest} holds every event appended so far")
        # every planned event of these segments is in: say so next to the destination
        point = {"to_seq": self.opts.to_seq, "to_time_ns": self.opts.to_time_ns}
        _write_marker(self.store, self.scope, self.stream, dict(
            ident, finished=True, segments=mine,
            restore_point=point if any(v is not None for v in point.values()) else None))
        if len(mine) == len(chain.numbers):
            restore_scaling(self.store, self.scope, self.stream, chain.runs[-1].stream_config)
        group = self._restore_group(chain) if self.opts.reader_group is not None else None
        return {
            "op": "import", "archive": self.target.display, "destination": dest, "segments": mine,
            "runs": len(chain.runs), "events": self.appended, "skipped": skipped,
            "bytes": sum(b for _e, b in plan.values()), "manifest_checksum": chain.runs[-1].checksum,
            "this_attempt": {"events": self.appended, "bytes": self.appended_bytes,
                             "elapsed_s": round(time.monotonic() - t0, 2)},
            "run_total": {"events": sum(ev for ev, _b in plan.values()), "bytes": sum(b for _e, b in plan.values()),
                          "segments": len(mine)},
            **({"warning": p.warning} if p.warning else {}),
            **({"reader_group": group} if group else {}),
        }

    def _restore_group(self, chain: Chain) -> dict:
        """Create the reader group at the recorded position, moved onto the destination.

        A Pravega offset is where an event starts, and the destination segment holds the
        same events framed the same way from its head on, so a position moves by the
        distance from the segment's first archived event; a position past what this
        import restored (``--to-seq``/``--to-time``) is clipped to the segment's end."""
        run, at = self._group_at
        info = self.store.stream_info(self.scope, self.stream)
        cut, clipped = {}, []
        for n, off in sorted(at.items()):
            if n not in self.dest_of:
                raise CorruptionError(f"run {run} of {self.target.display} places reader group "
                                      f"{self.opts.reader_group} in segment {n}, which the archive does not hold")
            d = self.dest_of[n]
            if off == -1:  # read to its end, and so sealed: the same on the destination
                cut[d] = -1
                continue
            seg = info.segment(d)
            first = next(self._chain.parts(n)).from_seq
            pos = seg.head_seq + max(off - first, 0)
            if pos > seg.tail_seq:
                pos = seg.tail_seq
                clipped.append(n)
            elif pos < seg.tail_seq:
                ev = next(iter(self.store.read_events(self.scope, self.stream, d, from_seq=pos, to_seq=seg.tail_seq)), None)
                if ev is None or ev.seq != pos:
                    raise StreamBackendError(
                        f"reader group {self.opts.reader_group}: offset {off} of source segment {n} does not land on "
                        f"an event of destination segment {d} (offset {pos}); the group was not created")
            cut[d] = pos
        self.store.create_reader_group(self.scope, self.stream, self.opts.reader_group, cut)
        return {"name": self.opts.reader_group, "run": run, "positions": {str(d): p for d, p in sorted(cut.items())},
                **({"clipped_segments": clipped} if clipped else {})}

    def _scale(self, writer, step: dict, dest: str) -> None:
        """One scale of the source, replayed on the destination (unless a previous attempt
        did it): every segment it seals is complete by now."""
        info = self.store.stream_info(self.scope, self.stream)
        if not self.replay.scaled(info, step):
            self.store.scale_stream(self.scope, self.stream, [self.dest_of[s] for s in step["sealed"]],
                                    [tuple(r) for r in step["ranges"]])
            info = self.store.stream_info(self.scope, self.stream)
        got = self.replay.match(info)
        if got is None:
            raise StreamBackendError(f"destination {dest} did not take the shape of its source's scale "
                                     f"{step['sealed']} -> {step['ranges']}: someone else scaled it")
        self.dest_of = got
        writer.refresh()

    def _write_segments(self, writer, chain: Chain, segs: list[int], have: dict, plan: dict, dest: str) -> None:
        """Append each archive segment's events after the ones already there, the segments
        in turns of about TURN_BYTES each, so a store that takes segments apart (Pravega:
        one pipelined appender per segment) keeps all of them busy."""
        feeds = {}
        for s in segs:
            done = have.get(s, 0)
            if done:
                self._check_tail(s, done)
                ev, by = plan[s]
                self.progress.add_done(min(done, ev), int(by * min(done, ev) / max(ev, 1)), resumed=True)
            feeds[s] = iter(segment_events(self.target, chain, s, skip=done, piece=self.opts.part_size))
        pending = pbytes = counted = 0
        while feeds:
            for s in list(feeds):
                self.progress.set_segment(s)
                d, turn, ended = self.dest_of[s], 0, True
                for ev in feeds[s]:
                    if (self.opts.to_seq is not None and ev.seq >= self.opts.to_seq) or (
                            self.opts.to_time_ns is not None and ev.timestamp_ns is not None
                            and ev.timestamp_ns > self.opts.to_time_ns):
                        break  # the restore point
                    writer.append(ev.payload, ev.routing_key, segment=d)
                    self.appended += 1
                    self.appended_bytes += len(ev.payload)
                    pending += 1
                    pbytes += len(ev.payload)
                    turn += len(ev.payload) + 1
                    if pending % 64 == 0:
                        self.progress.add_done(64, pbytes - counted)
                        counted = pbytes
                        if self.pause:
                            writer.flush()
                            raise Paused(f"import paused at segment {s}; {dest} holds every event appended so far")
                    if pending >= FLUSH_EVENTS or pbytes >= FLUSH_BYTES:
                        writer.flush()
                        self.progress.add_done(pending % 64, pbytes - counted)
                        pending = pbytes = counted = 0
                    if turn >= TURN_BYTES and len(feeds) > 1:
                        ended = False  # its turn is over; the others' now
                        break
                if ended:
                    del feeds[s]
        writer.flush()
        self.progress.add_done(pending % 64, pbytes - counted)

    def _check_tail(self, source_segment: int, done: int) -> None:
        """The destination's last event must be the archive's event number ``done - 1``."""
        segment = self.dest_of[source_segment]
        info = self.store.segment_info(self.scope, self.stream, segment)
        # seqs are only monotonic (Pravega: byte offsets), so tail_seq - 1 need not be an
        # event: start at the event holding the last file-view byte (zero-length events
        # after it are read too), or at the head if every event is empty
        idx = self.store.offset_index(self.scope, self.stream, segment)
        start = idx.locate(idx.length - 1)[0] if idx.length else info.head_seq
        last = None
        for ev in self.store.read_events(self.scope, self.stream, segment, from_seq=start, to_seq=info.tail_seq):
            last = ev
        mine = next(iter(segment_events(self.target, self._chain, source_segment, skip=done - 1,
                                        piece=self.opts.part_size)), None)
        # a store may not keep routing keys (Pravega): None matches any key
        if last is None or mine is None or last.payload != mine.payload or (
            last.routing_key is not None and last.routing_key != mine.routing_key
        ):
            raise NotEmptyError(
                f"destination {self.store.protocol}://{self.scope}/{self.stream} segment {segment}: its last event "
                f"differs from the archive's event {done - 1}: someone else wrote to it; import into a new stream"
            )


def import_archive(target: ArchiveTarget, store, scope: str, stream: str, opts: ImportOptions, pause=None, progress=None) -> dict:
    if opts.to_seq is not None and opts.to_seq < 0:
        raise UsageError("--to-seq must be >= 0")
    return Importer(target, store, scope, stream, opts, pause, progress).run()
