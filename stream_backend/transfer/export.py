"""Export: a stream's events -> an archive, as runs chained one after the other.

How a run is chosen. The archive's runs are numbered; a run is *complete* when its
manifest exists. If some run is *open* (segment parts or checkpoints but no manifest),
this export joins it — that is how a resumed export, or another shard of a Kubernetes
Indexed Job, continues the same run. Otherwise, if any segment has events beyond the
last complete run, a new run starts at ``last + 1``. Each segment's share of a run is
``[previous run's to_seq, tail_seq)``, the tail read when that share starts (or
``--to-seq``), so the totals — and progress and ETA — are fixed at the start.

Exactly once. Objects are packed by ``archive.SegmentPacker`` from a start position
only; the checkpoint keeps the objects already durable, so after any interruption
the same objects (keys and bytes) are produced from the checkpoint's position. On S3,
a multipart upload left by a killed exporter is adopted and its matching parts reused.
A segment part is written when a segment's share is done, then its checkpoint is
removed; the run manifest is written by whichever exporter sees all parts present.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from ..archive import (
    RunManifest,
    SegmentPacker,
    SegmentPart,
    build_run_manifest,
    build_segment_part,
    parse_identity,
    parse_reader_group,
    run_manifest_key,
    segment_part_key,
    serialize_identity,
    serialize_reader_group,
)
from .. import settings
from ..archive import layout
from ..archive.format import COMPRESSIONS
from ..archive.listing import ArchiveListing
from ..errors import AlreadyExistsError, Paused, StreamBackendError, UsageError
from ..units import human_size
from .checkpoint import Checkpoint, LeaseSet, delete_checkpoint, load_checkpoint, save_checkpoint
from .progress import Progress
from .retention import renew_locks
from .signals import PauseRequest
from .targets import ArchiveTarget, PartPool



@dataclass
class ExportOptions:
    object_size: int = settings.DEFAULT_OBJECT_SIZE
    part_size: int = settings.DEFAULT_PART_SIZE
    parallel: int = settings.DEFAULT_PARALLEL
    compression: str = "none"
    to_seq: int | None = None
    #: the segments this worker exports (None: all) — from --segments and/or --shard
    segments: list[int] | None = None
    #: seconds between checkpoint writes (always one at the end and on pause)
    checkpoint_interval: float = 1.0
    #: a Pravega reader group whose position each run records (--reader-group)
    reader_group: str | None = None

    def check(self, target: ArchiveTarget) -> None:
        if self.compression not in COMPRESSIONS:
            raise UsageError(f"unknown compression {self.compression!r}: use one of {', '.join(COMPRESSIONS)}")
        if self.object_size < 1024:
            raise UsageError("--object-size must be at least 1KiB")
        if self.part_size < 1:
            raise UsageError("--part-size must be positive")
        if self.parallel < 1:
            raise UsageError("--parallel must be at least 1")
        least = target.min_part_size
        if self.part_size < least and self.part_size < self.object_size:
            raise UsageError(
                f"--part-size must be at least {human_size(least)} on {target.display} (its smallest "
                "multipart part) unless it is at least --object-size"
            )


def select_segments(numbers: list[int], segments: list[int] | None = None,
                    shard: tuple[int, int] | None = None) -> list[int]:
    """The segments one worker handles, of the stream's segment ``numbers``: ``--segments``
    and/or ``--shard I/N`` (s % N == I)."""
    chosen = sorted(numbers) if segments is None else sorted(set(segments))
    for s in chosen:
        if s not in numbers:
            raise UsageError(f"segment {s} does not exist (the stream's segments: {_ranges(numbers)})")
    if shard is not None:
        i, n = shard
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"bad shard {i}/{n}: expected I/N with 0 <= I < N")
        chosen = [s for s in chosen if s % n == i]
    return chosen


def _ranges(numbers: list[int]) -> str:
    """0..3, 7, 9..10"""
    out, run = [], []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out) or "none"


def shape_of(seg) -> dict | None:
    """What an archive records of a segment's place in a Pravega stream's graph (None for
    a store without key ranges): docs/format.md, "Segment shape"."""
    if seg.key_range is None:
        return None
    return {"key_range": [seg.key_range[0], seg.key_range[1]], "epoch": seg.epoch,
            "predecessors": list(seg.predecessors), "successors": list(seg.successors), "sealed": seg.sealed}


def source_of(store, scope: str, stream: str, info) -> dict:
    """What an archive records of its stream: name, shape, largest event, identity."""
    src = {"store": store.protocol, "scope": scope, "stream": stream, "segments": info.segment_count,
           "max_event_size": info.max_event_size}
    if info.identity is not None:
        src["stream_id"] = info.identity
    if any(seg.key_range is not None for seg in info.segments):
        src["scalable"] = True  # its segments change as it scales: the count is no identity
    return src


class ArchiveState:
    """What an archive holds right now: complete runs, the open run, parts, checkpoints."""

    def __init__(self, target: ArchiveTarget):
        self.target = target
        listing = ArchiveListing.of([*target.list(layout.RUNS_DIR), *target.list(layout.CHECKPOINTS_DIR)])
        self.manifests, self.parts, self.checkpoints = listing.manifests, listing.parts, listing.checkpoints
        self.last_complete = listing.last_complete
        self.open_run = listing.open_run  # (checkpoint runs) -> the run begun after the last complete one

    def manifest(self, run: int) -> RunManifest:
        key = run_manifest_key(run)
        data = self.target.read(key)
        if data is None:
            from ..errors import CorruptionError

            raise CorruptionError(f"archive run manifest {self.target.where(key)} vanished")
        return RunManifest.parse(data, self.target.where(key))


def ensure_identity(target: ArchiveTarget, source: dict, create: bool) -> dict:
    """Read (or, for a new archive, write) ``archive.json``; refuse another stream's archive."""
    data = target.read(layout.IDENTITY_KEY)
    if data is None:
        if not create:
            from ..errors import NotFoundError

            raise NotFoundError(f"no archive at {target.display} ({layout.IDENTITY_KEY} missing)")
        target.write(layout.IDENTITY_KEY, serialize_identity(source))
        return parse_identity(serialize_identity(source))
    ident = parse_identity(data, target.where(layout.IDENTITY_KEY))
    have = ident.get("source") or {}
    if create and (have.get("scope"), have.get("stream")) != (source["scope"], source["stream"]):
        raise AlreadyExistsError(
            f"{target.display} holds an archive of {have.get('store')}://{have.get('scope')}/{have.get('stream')}, "
            f"not of {source['store']}://{source['scope']}/{source['stream']}: use another prefix"
        )
    if create and have.get("stream_id") and source.get("stream_id") and have["stream_id"] != source["stream_id"]:
        raise AlreadyExistsError(
            f"{target.display} holds an archive of an earlier stream named "
            f"{source['store']}://{source['scope']}/{source['stream']} (id {have['stream_id']}); the stream of that "
            f"name now is another one (id {source['stream_id']}), deleted and re-created since: "
            "export it into a new prefix"
        )
    if create and have.get("segments") != source["segments"] and not source.get("scalable"):
        raise AlreadyExistsError(
            f"{target.display} holds an archive of a stream with {have.get('segments')} segments; "
            f"the stream now has {source['segments']}"
        )
    return ident


def _count_events(store, scope, stream, seg_info, from_seq: int, to_seq: int) -> tuple[int, int]:
    """(events, payload bytes) in ``[from_seq, to_seq)`` without reading them."""
    if to_seq <= from_seq:
        return 0, 0
    idx = store.offset_index(scope, stream, seg_info.segment)
    start = idx.offset_of(from_seq) if from_seq > seg_info.head_seq else 0
    end = seg_info.length if to_seq >= seg_info.tail_seq else idx.offset_of(to_seq)
    nbytes = max(0, end - start)
    if store.dense_seqs:
        return to_seq - from_seq, nbytes
    return -1, nbytes  # unknown without a scan (Pravega: seq is a byte offset)


@dataclass
class RunPlan:
    """One export run, fixed before any data moves: what ``execute`` carries out."""

    run: int | None
    numbers: list[int]
    source: dict
    #: the last complete run's manifest, which this run continues
    prev: RunManifest | None
    #: this exporter's shares of the run, each with its checkpoint saved
    shares: list[Checkpoint]
    summary: dict
    warning: str | None
    #: set when there is nothing to export (no segment selected, the archive up to date)
    result: dict | None = None


class Exporter:
    def __init__(self, store, scope: str, stream: str, target: ArchiveTarget, opts: ExportOptions,
                 pause: PauseRequest | None = None, progress: Progress | None = None):
        self.store, self.scope, self.stream = store, scope, stream
        self.target = target
        self.opts = opts
        self.pause = pause if pause is not None else PauseRequest()
        self.progress = progress or Progress("export", "none")
        self.progress.watch_retries(lambda: target.retries)
        self.objects_written = 0
        self.reused_parts = 0
        self.sent_bytes = 0
        self._count_lock = threading.Lock()
        self._t0 = time.monotonic()

    # ----------------------------------------------------------------- planning
    def run(self) -> dict:
        with self.plan_run() as plan:
            result = plan.result if plan.result is not None else self.execute(plan)
        if result.get("complete") and self.target.object_lock() is not None:
            result["locks_renewed"] = renew_locks(self.target)
        return result

    @contextlib.contextmanager
    def plan_run(self) -> Iterator[RunPlan]:
        """Check everything, take the segments' leases, and fix the run: its number, and
        each share's range in a checkpoint saved before any data (a resumed or sharded
        attempt reads the same ends). The leases are held until the block ends; a plan
        with a ``result`` has nothing to export."""
        opts, target = self.opts, self.target
        # the group's position first, the tails after: it then lies within what the run holds
        group_at = (self.store.reader_group_position(self.scope, self.stream, opts.reader_group)
                    if opts.reader_group else None)
        info = self.store.stream_info(self.scope, self.stream)  # NotFoundError: unknown stream
        self.store.check_whole(self.scope, self.stream)  # a shape the store cannot read whole: refuse
        opts.check(target)
        target.check_access(create=True)
        numbers = info.numbers
        source = source_of(self.store, self.scope, self.stream, info)
        ensure_identity(target, source, create=True)
        mine = select_segments(numbers, opts.segments)
        summary = {"op": "export", "archive": target.display, "source": f"{self.store.protocol}://{self.scope}/{self.stream}",
                   "segments": mine}
        if not mine:
            yield RunPlan(None, numbers, source, None, [], summary, None,
                          result=dict(summary, run=None, complete=False, events=0, bytes=0, objects=0,
                                      note="no segments selected"))
            return
        self.pause.holding_state()  # leases and checkpoints from here: a signal pauses at a safe point
        with LeaseSet(target, mine, "export") as leases:
            self.leases = leases
            state = ArchiveState(target)
            # every shard's checkpoints tell which run is open, even before any part exists
            all_cps = {s: load_checkpoint(target, s) for s in state.checkpoints if s in numbers}
            cps = {s: all_cps.get(s) for s in mine if all_cps.get(s) is not None}
            last = state.last_complete
            run = state.open_run([cp.run for cp in all_cps.values() if cp is not None])
            prev = state.manifest(last) if last is not None else None
            seg_infos = {s.segment: s for s in info.segments}

            def share_range(s: int) -> tuple[int, int]:
                si = seg_infos[s]
                p = prev.segment(s) if prev is not None else None
                start = p.to_seq if p is not None else si.head_seq
                if p is not None and si.tail_seq < p.to_seq:
                    raise AlreadyExistsError(
                        f"{self.store.protocol}://{self.scope}/{self.stream} segment {s} ends at seq {si.tail_seq}, "
                        f"before run {prev.run} of {target.display} ended (seq {p.to_seq}): it is not the stream "
                        "this archive holds (deleted and re-created?); export it into a new prefix"
                    )
                end = si.tail_seq if opts.to_seq is None else min(si.tail_seq, max(opts.to_seq, start))
                return start, max(end, start)

            if run is None:
                new = [s for s in numbers if share_range(s)[1] > share_range(s)[0]]
                if not new:
                    self._finish_leftovers(state, cps)
                    yield RunPlan(last, numbers, source, prev, [], summary, None,
                                  result=dict(summary, run=last, complete=True, events=0, bytes=0, objects=0,
                                              manifest_checksum=prev.checksum if prev else None,
                                              note="archive is up to date"))
                    return
                run = (last or 0) + 1
            shape, warning = self._run_shape(run, state, all_cps)
            if group_at is not None:
                gkey = layout.reader_group_key(run, opts.reader_group)
                if target.read(gkey) is None:  # a resumed or sharded run keeps the first one
                    target.write(gkey, serialize_reader_group(run, opts.reader_group, group_at))
            shares: list[Checkpoint] = []
            for s in mine:
                cp = cps.get(s)
                if s in state.parts.get(run, set()):
                    if cp is not None:
                        delete_checkpoint(target, s)  # done, its part already written
                    continue
                if cp is not None and cp.run == run:
                    shares.append(cp)
                    continue
                if cp is not None:  # a checkpoint of an older, finished run: stale
                    delete_checkpoint(target, s)
                start, end = share_range(s)
                events, nbytes = _count_events(self.store, self.scope, self.stream, seg_infos[s], start, end)
                cp = Checkpoint(run, s, start, end, shape[0], shape[1], events, nbytes,
                                shape=shape_of(seg_infos[s]), config=info.config)
                # saved now, before any data: it fixes the share's end (a share saved only
                # when its turn came would, after a kill, take a grown stream's new tail as
                # the run's end) and marks the run open for other shards
                save_checkpoint(target, cp)
                shares.append(cp)
            yield RunPlan(run, numbers, source, prev, shares, summary, warning)

    # ----------------------------------------------------------------- executing
    def execute(self, plan: RunPlan) -> dict:
        """Export the plan's shares (inside ``plan_run``'s block: the leases held), write
        the run's parts and, when every segment's part exists, its manifest."""
        target, shares, run, mine = self.target, plan.shares, plan.run, plan.summary["segments"]
        target.check_free_space(sum(cp.total_bytes - cp.done_bytes for cp in shares))
        for cp in shares:
            self.progress.add_total(max(cp.total_events, 0), cp.total_bytes)
            self.progress.add_done(cp.done_events, cp.done_bytes, resumed=True)
        pool = PartPool(self.opts.parallel)
        try:
            for cp in shares:
                if cp.complete:  # data all written: only its segment part is missing
                    self._export_share(cp, pool)
            for cp in shares:
                if not cp.complete:
                    self._export_share(cp, pool)
        finally:
            pool.close(wait=True)
        complete, manifest = self._finalize(run, plan.numbers, plan.source, plan.prev)
        missing = [] if complete else self._missing(run, plan.numbers)
        if set(missing) & set(mine):
            # every share of ours was written, yet the archive does not show it: the
            # target does not read back what it was given; never report that as done
            raise StreamBackendError(
                f"export wrote run {run} of segments {mine} but {target.display} does not list "
                f"segment parts {sorted(set(missing) & set(mine))}: the run is not complete"
            )
        events, nbytes = sum(c.done_events for c in shares), sum(c.total_bytes for c in shares)
        summary = dict(plan.summary)
        if plan.warning:
            summary["warning"] = plan.warning
        return dict(
            summary, run=run, complete=complete, events=events, bytes=nbytes, objects=self.objects_written,
            reused_parts=self.reused_parts, uploaded_bytes=self.sent_bytes,
            manifest_checksum=manifest.checksum if manifest is not None else None,
            waiting_for=missing,
            # the two things a resumed run's numbers can mean, named apart
            this_attempt={"objects": self.objects_written, "uploaded_bytes": self.sent_bytes,
                          "reused_parts": self.reused_parts, "retries": target.retries,
                          "elapsed_s": round(time.monotonic() - self._t0, 2)},
            run_total={"events": events, "bytes": nbytes, "objects": sum(len(c.objects) for c in shares),
                       "segments": len(shares)},
        )

    def _run_shape(self, run: int, state: "ArchiveState", cps: dict) -> tuple[tuple[int, str], str | None]:
        """(object size, compression) of ``run``: those of its first attempt when it is
        already open (a checkpoint or a segment part of it exists), else this export's.
        Bytes already written fix them; other options given to a resume wait for the next
        run, and the returned warning says so."""
        want = (self.opts.object_size, self.opts.compression)
        have = next(((cp.object_size, cp.compression) for cp in cps.values() if cp is not None and cp.run == run), None)
        if have is None and state.parts.get(run):
            pkey = segment_part_key(run, min(state.parts[run]))
            part = SegmentPart.parse(self.target.read(pkey) or b"", self.target.where(pkey))
            have = (part.object_size, part.compression)
        if have is None or have == want:
            return want, None
        return have, (f"run {run} was started with --object-size {have[0]} --compression {have[1]}; it keeps them "
                      f"(its bytes must not change), the options given apply from run {run + 1}")

    def _missing(self, run: int, numbers: list[int]) -> list[int]:
        have = ArchiveState(self.target).parts.get(run, set())
        return [s for s in numbers if s not in have]

    def _finish_leftovers(self, state: ArchiveState, cps: dict) -> None:
        for s, cp in cps.items():
            if cp is not None and state.last_complete is not None and cp.run <= state.last_complete:
                delete_checkpoint(self.target, s)

    # ----------------------------------------------------------------- one segment
    def _export_share(self, cp: Checkpoint, pool: PartPool, events=None, stop: threading.Event | None = None) -> None:
        target, opts = self.target, self.opts
        self.progress.set_segment(cp.segment)  # its checkpoint was saved when the run was planned
        last_save = time.monotonic()
        if not cp.complete:
            seq, off = cp.position
            if events is None:
                events = self.store.read_events(self.scope, self.stream, cp.segment, from_seq=seq, to_seq=cp.to_seq)
            packer = SegmentPacker(events, cp.segment, seq, off, cp.object_size, cp.compression, end_seq=cp.to_seq,
                                  chunk_size=opts.part_size)  # parts come out exact: no re-cut
            pending: deque = deque()  # (packed object, future, upload, bytes credited) in order
            ratio = 1.0  # payload / stored bytes of the last object: what a part is worth in progress

            def drain(block: bool) -> None:
                nonlocal last_save
                while pending and (block or pending[0][1].done()):
                    obj, fut, up, credited = pending.popleft()
                    fut.result()
                    cp.objects.append(obj.info)
                    with self._count_lock:  # shares may run in threads
                        self.objects_written += 1
                        self.reused_parts += up.reused_parts
                        self.sent_bytes += up.sent_bytes
                    self.progress.add_done(
                        obj.info.events_started, obj.info.payload_bytes - credited
                    )
                if time.monotonic() - last_save >= opts.checkpoint_interval:
                    save_checkpoint(target, cp)
                    last_save = time.monotonic()

            try:
                for obj in packer:
                    self._check_stop(cp, stop)
                    up = target.upload(obj.key, opts.part_size, pool)
                    credited = 0  # progress moves with every part, not only with whole objects
                    try:
                        for part in obj.parts(opts.part_size):
                            up.write_part(part)
                            step = int(len(part) * ratio)
                            credited += step
                            self.progress.add_done(0, step)
                            if self.pause:  # leave this object's stored parts for reuse
                                raise _Stop()
                        fut = up.finish()
                    except BaseException:
                        up.abandon()
                        self.progress.add_done(0, -credited)
                        raise
                    if obj.info.size:
                        ratio = min(1.0, obj.info.payload_bytes / obj.info.size)
                    pending.append((obj, fut, up, credited))
                    drain(block=False)
                drain(block=True)
            except _Stop:
                self._pause_out(cp, pending)
            except Paused:
                self._pause_out(cp, pending)
            except BaseException:
                try:
                    self._salvage(cp, pending)
                finally:
                    raise
        self._complete_share(cp)

    def _check_stop(self, cp: Checkpoint, stop: threading.Event | None = None) -> None:
        self.leases.check()
        if self.pause or (stop is not None and stop.is_set()):
            raise _Stop()

    def _salvage(self, cp: Checkpoint, pending: deque) -> None:
        """After a failure: keep what is durable in the checkpoint (in order), then stop."""
        while pending:
            obj, fut, _up, _credited = pending[0]
            try:
                fut.result()
            except BaseException:
                break
            pending.popleft()
            cp.objects.append(obj.info)
        try:
            save_checkpoint(self.target, cp)
        except Exception:
            pass

    def _pause_out(self, cp: Checkpoint, pending: deque) -> None:
        self._salvage(cp, pending)
        save_checkpoint(self.target, cp)
        raise Paused(
            f"export paused at segment {cp.segment}, {cp.done_events} of "
            f"{cp.total_events if cp.total_events >= 0 else 'an uncounted number of'} events of run {cp.run}; "
            f"checkpoint saved in {self.target.display}"
        )

    def _complete_share(self, cp: Checkpoint) -> None:
        target = self.target
        part = build_segment_part(cp.run, cp.segment, cp.from_seq, cp.to_seq, cp.objects,
                                  compression=cp.compression, object_size=cp.object_size,
                                  shape=cp.shape, config=cp.config)
        part.check()
        target.write(segment_part_key(cp.run, cp.segment), part.serialize())
        delete_checkpoint(target, cp.segment)
        # uploads still open under this segment were left by interrupted attempts
        target.abort_stray_uploads(f"{layout.DATA_DIR}/{cp.segment:06d}/")

    # ----------------------------------------------------------------- the manifest
    def _finalize(self, run: int, numbers: list[int], source: dict, prev: RunManifest | None):
        """Write the run manifest if every segment part exists (deterministic bytes)."""
        target = self.target
        key = run_manifest_key(run)
        state = ArchiveState(target)
        if run in state.manifests:
            return True, state.manifest(run)
        have = state.parts.get(run, set())
        if any(s not in have for s in numbers):
            return False, None
        parts = []
        for s in sorted(have):
            pkey = segment_part_key(run, s)
            data = target.read(pkey)
            parts.append(SegmentPart.parse(data, target.where(pkey)))
        groups = dict(parse_reader_group(target.read(k), target.where(k))
                      for k in target.list(layout.reader_groups_dir(run)) if k.endswith(".json"))
        manifest = build_run_manifest(run, parts, source, previous=prev, reader_groups=groups)
        target.write(key, manifest.serialize())
        return True, manifest


class _Stop(Exception):
    """Internal: a pause was requested (or another share failed)."""


def export_stream(store, scope, stream, target: ArchiveTarget, opts: ExportOptions, pause=None, progress=None) -> dict:
    return Exporter(store, scope, stream, target, opts, pause, progress).run()
