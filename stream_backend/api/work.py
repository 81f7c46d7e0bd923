"""Export and import requests run on this machine.

Each request runs the command a pod would run (k8s.jobs.container_args) as a child
process, at most ``workers`` at once, and carries the document of a StreamExport /
StreamImport: the same spec fields, the same status (phase, progress, run, error), so a
client reads one shape on one machine and in a cluster. Pausing sends the child SIGTERM
(it saves its checkpoint and exits 75, as a pod does); resuming runs the command again,
which continues from the checkpoint exactly once. Requests are kept in a state directory:
a restarted server runs again what was running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field

from .. import settings
from ..errors import AlreadyExistsError, NotFoundError, UsageError
from ..k8s.jobs import TransferSpec, container_args
from ..k8s.names import check_k8s_name, parse_size
from ..k8s.resources import API_VERSION, ARCHIVE_FIELDS, EXPORT_FIELDS, IMPORT_FIELDS, S3_WRITE_FIELDS
from ..k8s.status import done_status, finished_progress, progress_entry, succeeded_message, sum_progress
from ..units import parse_rate
from ..urls import check_name, parse_stream_url, redact

log = logging.getLogger("stream_backend.api")

#: URL path word -> resource kind
KINDS = {"exports": "StreamExport", "imports": "StreamImport"}
FINISHED = ("Succeeded", "Failed")
#: spec fields a request may set on one machine (the pod and Job fields have no meaning here)
_COMMON = {"archiveLocation": ARCHIVE_FIELDS["archiveLocation"], "archivePath": ARCHIVE_FIELDS["archivePath"],
           "suspend": ARCHIVE_FIELDS["suspend"], "segments": {"type": "string"}, "bwlimit": {"type": "string"}}
_SPEC = {"StreamExport": {**{k: v for k, (_, v) in EXPORT_FIELDS.items()}, **_COMMON},
         "StreamImport": {**{k: v for k, (_, v) in IMPORT_FIELDS.items()}, **_COMMON}}
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
#: a child that exits 75 without being asked to pause (a writer busy elsewhere) runs again after this
RETRY_SECONDS = 10.0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Location:
    """A named archive location of the server (``--location NAME=URL``): requests name it
    and a path under it, so no caller chooses where the server writes."""

    name: str
    url: str
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, text: str, endpoint_url: str | None = None) -> "Location":
        name, sep, url = text.partition("=")
        if not sep or not url:
            raise UsageError(f"--location takes NAME=URL (for example backups=s3://bucket/prefix), not {text!r}")
        check_k8s_name("--location name", name, 63, label=True)
        return cls(name, url.rstrip("/"), endpoint_url)

    def archive(self, path: str | None) -> str:
        parts = [p for p in (path or "").split("/") if p]
        for p in parts:
            check_name("archivePath part", p)
        return "/".join([self.url, *parts])

    def target(self, path: str | None):
        """The archive target at ``path`` under this location."""
        from ..transfer.targets import S3Options, open_target

        return open_target(self.archive(path), S3Options(endpoint_url=self.endpoint_url))

    def to_dict(self) -> dict:
        return {"name": self.name, "url": redact(self.url)}


def check_spec(kind: str, spec: dict, more: dict | None = None) -> dict:
    """The request's spec, checked against the resource's schema (with the fields of
    ``more``): unknown fields, wrong types, values outside an enum or range, sizes and
    segment lists are a 400."""
    schema = {**_SPEC[kind], **(more or {})}
    if not isinstance(spec, dict):
        raise UsageError("spec must be an object")
    unknown = sorted(set(spec) - set(schema))
    if unknown:
        raise UsageError(f"unknown spec field {unknown[0]!r} (known: {', '.join(sorted(schema))})")
    for name, value in spec.items():
        want = schema[name]
        if value is None:
            continue
        if not isinstance(value, _TYPES[want["type"]]) or (want["type"] != "boolean" and isinstance(value, bool)):
            raise UsageError(f"spec.{name} must be a {want['type']}")
        if "enum" in want and value not in want["enum"]:
            raise UsageError(f"spec.{name} must be one of {', '.join(want['enum'])}")
        if "minimum" in want and value < want["minimum"]:
            raise UsageError(f"spec.{name} must be at least {want['minimum']}")
        if "maximum" in want and value > want["maximum"]:
            raise UsageError(f"spec.{name} must be at most {want['maximum']}")
    for name in ("objectSize", "partSize"):
        if spec.get(name) is not None:
            parse_size(spec[name])
    if spec.get("bwlimit") is not None:
        parse_rate(spec["bwlimit"], "spec.bwlimit")
    segments = spec.get("segments")
    if segments is not None and not all(p.strip().isdigit() for p in segments.split(",")):
        raise UsageError("spec.segments takes segment numbers separated by commas, like 0,2")
    stream_field = "source" if kind == "StreamExport" else "destination"
    if not spec.get(stream_field):
        raise UsageError(f"spec.{stream_field} is required (a stream URL such as stream://demo/logs)")
    if not spec.get("archiveLocation"):
        raise UsageError("spec.archiveLocation is required: the name of one of the server's archive locations")
    if kind == "StreamImport" and spec.get("toSeq") is not None and spec["toSeq"] < 0:
        raise UsageError("spec.toSeq must be >= 0")
    return {k: v for k, v in spec.items() if v is not None}


@dataclass
class Work:
    """One request: its resource document and, while it runs, its child process."""

    kind: str
    name: str
    spec: dict
    created: str
    status: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    wanted: str | None = None  # "pause", "cancel" or "stop" (server shutdown) once asked

    def document(self) -> dict:
        return {"apiVersion": API_VERSION, "kind": self.kind,
                "metadata": {"name": self.name, "creationTimestamp": self.created},
                "spec": self.spec, "status": self.status}


class Changes:
    """Change notification for Server-Sent Events: worker threads call ``_changed_soon``,
    waiters on the server's event loop wait for the ``changes()`` event."""

    _loop: asyncio.AbstractEventLoop | None = None
    _changed: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Changes set the ``changes()`` event on this event loop."""
        self._loop, self._changed = loop, asyncio.Event()

    def changes(self) -> asyncio.Event:
        """An event set at the next change of any request (take it before reading one)."""
        return self._changed

    @staticmethod
    async def changed(event: asyncio.Event, timeout: float) -> bool:
        """Whether ``event`` was set within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _wake(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def _changed_soon(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)


class LocalWorkers(Changes):
    """At most ``workers`` requests run at once; the others wait in order, Pending."""

    def __init__(self, store_args: list[str], stream_protocol: str, locations: dict[str, Location],
                 state_dir: str, workers: int = 2, python: str = sys.executable) -> None:
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        self.store_args, self.protocol, self.locations = store_args, stream_protocol, locations
        self.state_dir, self.python = state_dir, python
        self._works: dict[tuple[str, str], Work] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue = queue.Queue()
        self._closing = False
        self._load()
        self._threads = [threading.Thread(target=self._run_queue, name=f"worker-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- requests ---------------------------------------------------------------
    def submit(self, kind: str, name: str, spec: dict) -> tuple[dict, bool]:
        """(document, created): the same name and spec again is the same request."""
        check_k8s_name("name", name, 63, label=True)
        spec = check_spec(kind, spec)
        self._command(kind, spec)  # refuse a bad stream or location now, not in the child
        with self._lock:
            old = self._works.get((kind, name))
            if old is not None:
                if {k: v for k, v in old.spec.items() if k != "suspend"} != {k: v for k, v in spec.items()
                                                                               if k != "suspend"}:
                    raise AlreadyExistsError(f"{kind} {name} exists with another spec: choose another name")
                return old.document(), False
            work = Work(kind, name, spec, _now())
            self._works[(kind, name)] = work
            if spec.get("suspend"):
                self._set(work, "Paused", "Suspended", "spec.suspend is true: not started")
            else:
                self._enqueue(work, "Queued", "waiting for a free worker")
            return work.document(), True

    def get(self, kind: str, name: str) -> dict:
        return self._find(kind, name).document()

    def list(self, kind: str) -> list[dict]:
        with self._lock:
            return [w.document() for (k, _), w in sorted(self._works.items()) if k == kind]

    def target_of(self, kind: str, name: str):
        """The archive target of a request."""
        spec = self._find(kind, name).spec
        return self.locations[spec["archiveLocation"]].target(spec.get("archivePath"))

    def pause(self, kind: str, name: str) -> dict:
        with self._lock:
            work = self._find(kind, name)
            work.spec["suspend"] = True
            phase = work.status.get("phase")
            if phase == "Pending":
                self._set(work, "Paused", "Suspended", "spec.suspend is true: not started")
            elif phase == "Running" and work.proc is not None:
                work.wanted = "pause"
                work.proc.send_signal(signal.SIGTERM)  # the child saves its checkpoint and exits 75
                self._set(work, "Running", "Pausing", "saving the checkpoint")
            else:
                self._save(work)
            return work.document()

    def resume(self, kind: str, name: str) -> dict:
        """A Paused or Failed request runs again, from its checkpoint."""
        with self._lock:
            work = self._find(kind, name)
            work.spec.pop("suspend", None)
            if work.status.get("phase") in ("Paused", "Failed"):
                self._enqueue(work, "Resumed", "waiting for a free worker")
            elif work.status.get("phase") == "Running" and work.wanted == "pause":
                work.wanted = "resume"  # it is saving its checkpoint: run again once it has
            else:
                self._save(work)
            return work.document()

    def cancel(self, kind: str, name: str) -> dict:
        """Stop it (at a checkpoint, which a new request for the same archive resumes) and
        forget it."""
        with self._lock:
            work = self._find(kind, name)
            del self._works[(kind, name)]
            work.wanted = "cancel"
            if work.proc is not None and work.proc.poll() is None:
                work.proc.send_signal(signal.SIGTERM)
            try:
                os.unlink(self._path(work))
            except FileNotFoundError:
                pass
            self._changed_soon()
            return work.document()

    def close(self, timeout: float = 60.0) -> None:
        """Server shutdown: running children pause at a checkpoint; the next start runs them again."""
        with self._lock:
            self._closing = True
            running = [w for w in self._works.values() if w.proc is not None and w.proc.poll() is None]
            for w in running:
                w.wanted = "stop"
                w.proc.send_signal(signal.SIGTERM)
        for w in running:
            try:
                w.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:  # each writes its child's state (ServerStopped) before it ends
            t.join(timeout)

    # -- running ----------------------------------------------------------------
    def _command(self, kind: str, spec: dict) -> list[str]:
        op = "export" if kind == "StreamExport" else "import"
        url = spec["source" if op == "export" else "destination"]
        stream = parse_stream_url(url, need="stream")
        if stream.protocol != self.protocol or stream.segment is not None:
            raise UsageError(f"this server serves {self.protocol}:// streams: name one as "
                             f"{self.protocol}://SCOPE/STREAM")
        location = self.locations.get(spec["archiveLocation"])
        if location is None:
            known = ", ".join(sorted(self.locations)) or "none (start the server with --location NAME=URL)"
            raise NotFoundError(f"no archive location {spec['archiveLocation']!r} (known: {known})")
        archive = location.archive(spec.get("archivePath"))
        ts = TransferSpec(op=op, stream_url=url, archive=archive, endpoint_url=location.endpoint_url,
                          object_size=spec.get("objectSize"), part_size=spec.get("partSize"),
                          parallel=spec.get("parallel"), compression=spec.get("compression"), bwlimit=spec.get("bwlimit"),
                          file_view=bool(spec.get("fileView")),
                          **{field: spec.get(name) for name, (field, _) in S3_WRITE_FIELDS.items()},
                          segments=spec.get("segments"), to_seq=spec.get("toSeq"), to_time=spec.get("toTime"))
        return [self.python, "-m", "stream_backend", *container_args(ts, url, archive), *self.store_args]

    def _enqueue(self, work: Work, reason: str, message: str) -> None:
        work.wanted = None
        self._set(work, "Pending", reason, message)
        self._queue.put((work.kind, work.name))

    def _run_queue(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            with self._lock:
                work = self._works.get(key)
                if work is None or work.status.get("phase") != "Pending" or self._closing:
                    continue
                log_file = tempfile.NamedTemporaryFile(prefix="stream-backend-summary-", delete=False)
                log_file.close()
                env = {**os.environ, settings.TERMINATION_LOG_ENV: log_file.name}
                work.status.setdefault("startTime", _now())
                try:
                    work.proc = subprocess.Popen(self._command(work.kind, work.spec), stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                                 start_new_session=True)  # a Ctrl-C of the server is ours to pass on
                except (OSError, UsageError, NotFoundError) as exc:
                    os.unlink(log_file.name)
                    self._fail(work, "StartFailed", str(exc))
                    continue
                self._set(work, "Running", "Started", f"pid {work.proc.pid}")
            try:
                self._follow(work, log_file.name)
            finally:
                os.unlink(log_file.name)

    def _follow(self, work: Work, summary_path: str) -> None:
        last_line = ""
        for raw in work.proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("event") == "progress":
                with self._lock:
                    work.status["progress"] = sum_progress({"0": progress_entry(event)})
                    self._changed_soon()
            else:
                last_line = line
        code = work.proc.wait()
        try:
            with open(summary_path, encoding="utf-8") as f:
                summary = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            summary = {}
        with self._lock:
            work.proc = None
            if work.wanted == "cancel":
                return
            if code == 0 and summary.get("event") == "done":
                work.status.update(done_status([summary]), lastError=None, completionTime=_now())
                work.status["progress"] = finished_progress(work.status)
                self._set(work, "Succeeded", "Complete", succeeded_message(work.status))
            elif code in (75, -signal.SIGTERM) and work.wanted == "pause":
                self._set(work, "Paused", "Suspended", "stopped at a checkpoint; resume continues from it")
            elif code in (75, -signal.SIGTERM) and work.wanted == "resume":
                self._enqueue(work, "Resumed", "waiting for a free worker")
            elif code in (75, -signal.SIGTERM) and work.wanted == "stop":
                self._set(work, "Pending", "ServerStopped", "runs again from its checkpoint when the server starts")
            elif code == 75:  # busy elsewhere (another writer): retry, as a Job would
                self._set(work, "Pending", "Retrying", (summary.get("error") or last_line)[:500])
                timer = threading.Timer(RETRY_SECONDS, self._retry, args=(work,))
                timer.daemon = True
                timer.start()
            else:
                self._fail(work, f"Exit{code}", summary.get("error") or last_line or f"exit code {code}")

    def _retry(self, work: Work) -> None:
        with self._lock:
            if self._works.get((work.kind, work.name)) is work and work.status.get("reason") == "Retrying":
                self._queue.put((work.kind, work.name))

    def _fail(self, work: Work, reason: str, message: str) -> None:
        line = redact(message.strip().splitlines()[-1] if message.strip() else reason)[:1000]
        work.status.update(lastError=line, completionTime=_now())
        self._set(work, "Failed", reason, line)

    def _set(self, work: Work, phase: str, reason: str, message: str) -> None:
        st = work.status
        if st.get("phase") != phase:
            st["conditions"] = [{"type": phase, "status": "True", "reason": reason, "message": message,
                                 "lastTransitionTime": _now()}]
        st.update(phase=phase, reason=reason, message=message)
        if phase in ("Pending", "Running"):
            st.pop("completionTime", None)
        self._save(work)
        self._changed_soon()

    def _find(self, kind: str, name: str) -> Work:
        with self._lock:
            work = self._works.get((kind, name))
        if work is None:
            raise NotFoundError(f"no {kind} named {name!r}")
        return work

    # -- state directory ------------------------------------------------------------
    def _path(self, work: Work) -> str:
        return os.path.join(self.state_dir, f"{work.kind}.{work.name}.json")

    def _save(self, work: Work) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = self._path(work) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(work.document(), f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(work))

    def _load(self) -> None:
        if not os.path.isdir(self.state_dir):
            return
        for entry in sorted(os.listdir(self.state_dir)):
            if not entry.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.state_dir, entry), encoding="utf-8") as f:
                    doc = json.load(f)
                work = Work(doc["kind"], doc["metadata"]["name"], doc["spec"], doc["metadata"]["creationTimestamp"],
                            doc.get("status") or {})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("request state %s unreadable, left alone: %s", entry, exc)
                continue
            self._works[(work.kind, work.name)] = work
            if work.status.get("phase") in ("Pending", "Running"):
                self._enqueue(work, "ServerRestarted", "runs again from its checkpoint")
