"""Durable transfer state kept in the archive itself: checkpoints and leases.

Both live next to the data (``checkpoints/SSSSSS.json``, ``leases/SSSSSS.json``) so a
pod restarted on another node finds them with nothing but the archive URL.

A *checkpoint* records one segment's share of the run in progress: the fixed range
``[from_seq, to_seq)``, the options that shape the bytes (object size, compression) and
every data object already durable. The next object starts where the last one ended,
so a resumed export packs exactly the objects an uninterrupted one would have.

A *lease* says who exports a segment right now. Object stores give no portable
compare-and-swap, so a lease is an object holding its holder's id
(``host:pid:process-start``) and an expiry renewed by a heartbeat; an exporter writes
its lease, waits a settle delay and reads it back, proceeding only if it still holds it
(two exporters racing both see the last writer, so only one proceeds). A lease whose
expiry has passed, or whose holder is a dead process on this same host, is taken over
at once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from .. import settings
from ..archive import checkpoint_key, lease_key
from ..archive.format import ObjectInfo
from ..errors import CorruptionError, WriterBusyError
from .targets import ArchiveTarget, PreconditionFailed

CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    run: int
    segment: int
    from_seq: int
    to_seq: int
    object_size: int
    compression: str
    total_events: int
    total_bytes: int
    objects: list[ObjectInfo] = field(default_factory=list)
    #: the segment's shape and the stream's configuration at planning: a resumed run
    #: writes the segment part an uninterrupted one would, whatever happened since
    shape: dict | None = None
    config: dict | None = None

    @property
    def position(self) -> tuple[int, int]:
        """(seq, offset in event) where the next object starts."""
        if self.objects:
            last = self.objects[-1]
            return last.end_seq, last.end_offset
        return self.from_seq, 0

    @property
    def done_events(self) -> int:
        return sum(o.events_started for o in self.objects)

    @property
    def done_bytes(self) -> int:
        return sum(o.payload_bytes for o in self.objects)

    @property
    def complete(self) -> bool:
        return self.position == (self.to_seq, 0) or self.from_seq >= self.to_seq

    def to_bytes(self) -> bytes:
        doc = {
            "kind": "checkpoint",
            "version": CHECKPOINT_VERSION,
            "op": "export",
            "run": self.run,
            "segment": self.segment,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "object_size": self.object_size,
            "compression": self.compression,
            "total_events": self.total_events,
            "total_bytes": self.total_bytes,
            "done_events": self.done_events,
            "done_bytes": self.done_bytes,
            "objects": [o.to_json() for o in self.objects],
            **({"shape": self.shape} if self.shape is not None else {}),
            **({"config": self.config} if self.config is not None else {}),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Checkpoint":
        try:
            d = json.loads(data)
            if d.get("kind") != "checkpoint":
                raise ValueError("not a checkpoint")
            if int(d.get("version", 0)) > CHECKPOINT_VERSION:
                from ..errors import FormatVersionError

                raise FormatVersionError(f"checkpoint {where} was written by a newer stream-backend: upgrade")
            return cls(
                run=int(d["run"]),
                segment=int(d["segment"]),
                from_seq=int(d["from_seq"]),
                to_seq=int(d["to_seq"]),
                object_size=int(d["object_size"]),
                compression=str(d["compression"]),
                total_events=int(d["total_events"]),
                total_bytes=int(d["total_bytes"]),
                objects=[ObjectInfo.from_json(o) for o in d["objects"]],
                shape=d.get("shape"),
                config=d.get("config"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(f"corrupt checkpoint {where}: {exc}") from None


def load_checkpoint(target: ArchiveTarget, segment: int) -> Checkpoint | None:
    key = checkpoint_key(segment)
    data = target.read(key)
    if data is None:
        return None
    return Checkpoint.from_bytes(data, target.where(key))


def save_checkpoint(target: ArchiveTarget, cp: Checkpoint) -> None:
    target.write(checkpoint_key(cp.segment), cp.to_bytes())


def delete_checkpoint(target: ArchiveTarget, segment: int) -> None:
    target.delete(checkpoint_key(segment))


# --------------------------------------------------------------------------- leases


def _proc_start(pid: int) -> str:
    """Start time of process ``pid`` (clock ticks since boot), "" where unknown: tells a
    live holder from a recycled pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start and _proc_start(pid) not in ("", start):
        return False  # the pid now belongs to another process
    # a zombie (killed but not yet reaped) holds nothing
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def holder_id() -> dict:
    pid = os.getpid()
    host = socket.gethostname()
    start = _proc_start(pid)
    return {"holder": f"{host}:{pid}:{start}", "host": host, "pid": pid, "start": start}


class LeaseSet:
    """The leases on the segments one exporter works on; renewed in the background."""

    def __init__(self, target: ArchiveTarget, segments: list[int], op: str = "export", ttl: float | None = None):
        self.target = target
        self.segments = list(segments)
        self.op = op
        self.ttl = ttl if ttl is not None else settings.seconds("lease_ttl")
        self.settle = settings.seconds("lease_settle")
        self.me = holder_id()
        self.held: list[int] = []
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._etags: dict[int, str | None] = {}

    def _doc(self, segment: int) -> bytes:
        doc = dict(self.me, op=self.op, segment=segment, expires=time.time() + self.ttl, ttl=self.ttl)
        return json.dumps(doc, sort_keys=True).encode()

    def _read(self, segment: int) -> dict | None:
        return self._read_versioned(segment)[0]

    def _read_versioned(self, segment: int) -> tuple[dict | None, str | None]:
        data, etag = self.target.read_versioned(lease_key(segment))
        if data is None:
            return None, None
        try:
            doc = json.loads(data)
            return (doc if isinstance(doc, dict) else {}), etag
        except ValueError:
            return {}, etag  # torn or garbled: treat as expired

    def _is_stale(self, doc: dict) -> bool:
        if not doc or "holder" not in doc:
            return True
        if float(doc.get("expires", 0)) < time.time():
            return True
        if doc.get("host") == self.me["host"]:
            try:
                return not _pid_alive(int(doc.get("pid")), str(doc.get("start", "")))
            except (TypeError, ValueError):
                return True
        return False

    def _busy(self, segment: int, doc: dict) -> WriterBusyError:
        left = max(0, int(float(doc.get("expires", 0)) - time.time()))
        return WriterBusyError(
            f"segment {segment} of {self.target.display} is being {self.op}ed by {doc.get('holder', '?')} "
            f"(lease renewed until {left}s from now); retry later"
        )

    def acquire(self) -> "LeaseSet":
        """Take every lease or none: conditional writes where the target has them (S3
        If-None-Match/If-Match, O_EXCL locally), then a read-back; a settle delay before
        it unless every write was an atomic create (a local directory's fresh lease)."""
        seen: dict[int, tuple[dict | None, str | None]] = {}
        for s in self.segments:
            doc, etag = self._read_versioned(s)
            if doc is not None and doc.get("holder") != self.me["holder"] and not self._is_stale(doc):
                raise self._busy(s, doc)
            seen[s] = (doc, etag)
        for s in self.segments:
            doc, etag = seen[s]
            try:
                self._etags[s] = self.target.write_if(
                    lease_key(s), self._doc(s), absent=doc is None, etag=etag if doc is not None else None
                )
            except PreconditionFailed:
                self.release()
                raise self._busy(s, self._read(s) or {}) from None
            self.held.append(s)
        racy = any(not self.target.atomic_if(absent=seen[s][0] is None) for s in self.segments)
        if racy and self.settle > 0:  # let a racing plain write land before the read-back
            time.sleep(self.settle)
        for s in self.segments:
            doc, etag = self._read_versioned(s)
            doc = doc or {}
            if doc.get("holder") != self.me["holder"]:
                self.held.remove(s)
                self.release()
                raise self._busy(s, doc)
            self._etags[s] = etag
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            for s in list(self.held):
                try:
                    doc, etag = self._read_versioned(s)
                    doc = doc or {}
                    if doc.get("holder") != self.me["holder"]:
                        self.lost = f"lease on segment {s} was taken over by {doc.get('holder', '?')}"
                        return
                    self._etags[s] = self.target.write_if(lease_key(s), self._doc(s), etag=etag)
                except PreconditionFailed:
                    self.lost = f"lease on segment {s} was taken over while renewing it"
                    return
                except Exception:  # a transient fault: try again next beat
                    continue

    def check(self) -> None:
        """Raise if another exporter took a lease over (we must stop writing)."""
        if self.lost:
            raise WriterBusyError(f"{self.lost}; stopping")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for s in list(self.held):
            try:
                doc = self._read(s) or {}
                if doc.get("holder") == self.me["holder"]:
                    self.target.delete(lease_key(s))
            except Exception:
                pass  # it expires by itself
            self.held.remove(s)

    def __enter__(self) -> "LeaseSet":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_leases(target: ArchiveTarget) -> list[dict]:
    """Every lease in the archive (for ``status``), with seconds left."""
    out = []
    for key in sorted(target.list("leases")):
        data = target.read(key)
        try:
            doc = json.loads(data or b"{}")
        except ValueError:
            continue
        doc["expires_in_s"] = round(float(doc.get("expires", 0)) - time.time(), 1)
        out.append(doc)
    return out
