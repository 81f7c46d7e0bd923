"""Progress of a transfer: a rich bar on a terminal, JSON lines on stderr otherwise.

Totals are known at the start (the end of a run is fixed by the tail seqs read when it
starts), so percent and ETA are honest. The rate counts only bytes moved by this
process, not those a resumed run finds already done.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque

from .. import settings
from ..units import human_size
from ..urls import redact

MODES = ("auto", "bar", "json", "none")


def _interval() -> float:
    return settings.seconds("progress_interval")


class Progress:
    """Thread-safe counters + a periodic reporter."""

    #: the rate behind the time left is measured over this many recent seconds: a run
    #: whose speed changes (throttling, a busy server) gets an honest ETA within it
    RATE_WINDOW = 10.0
    #: this long without a byte moving, the progress says so
    STALL_AFTER = 10.0

    def __init__(self, op: str, mode: str = "auto", stream=None, clock=time.monotonic, sinks=()):
        self.op = op
        #: callables given every snapshot the reporter makes (a pod's status reporter)
        self.sinks = list(sinks)
        self._clock = clock
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "json"
        self.mode = mode
        self.total_events = 0
        self.total_bytes = 0
        self.done_events = 0
        self.done_bytes = 0
        self.segment: int | None = None
        self._start_bytes = 0
        self._t0 = clock()
        self._samples: deque = deque([(self._t0, 0)])  # (time, bytes moved by this process)
        self._last_move = self._t0
        self._retries = lambda: 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None
        self._task = None

    # -- counters ---------------------------------------------------------------
    def add_total(self, events: int, nbytes: int) -> None:
        with self._lock:
            self.total_events += events
            self.total_bytes += nbytes

    def add_done(self, events: int, nbytes: int, resumed: bool = False) -> None:
        """Count work done; ``resumed`` for work found done by an earlier attempt."""
        with self._lock:
            self.done_events += events
            self.done_bytes += nbytes
            if resumed:
                self._start_bytes += nbytes
            elif nbytes:
                now = self._clock()
                self._last_move = now
                self._samples.append((now, self.done_bytes - self._start_bytes))
                while len(self._samples) > 2 and self._samples[1][0] <= now - self.RATE_WINDOW:
                    self._samples.popleft()

    def set_segment(self, segment: int | None) -> None:
        self.segment = segment

    def watch_retries(self, count) -> None:
        """``count()``: transient faults retried so far (the archive target's), shown with
        the progress so a struggling endpoint is visible before anything fails."""
        self._retries = count

    def snapshot(self) -> dict:
        with self._lock:
            now = self._clock()
            moved = self.done_bytes - self._start_bytes
            t_old, moved_old = self._samples[0]  # about RATE_WINDOW ago (the start, if younger)
            rate = (moved - moved_old) / max(now - t_old, 1e-6)
            left = max(self.total_bytes - self.done_bytes, 0)
            stalled = now - self._last_move if left else 0.0
            if self.total_bytes:
                percent = 100.0 * self.done_bytes / self.total_bytes
            elif self.total_events:
                percent = 100.0 * self.done_events / self.total_events
            else:
                percent = 100.0
            eta = (left / rate) if rate > 0 else None
            return {
                "event": "progress",
                "op": self.op,
                "segment": self.segment,
                "done_events": self.done_events,
                "total_events": self.total_events,
                # parts are credited at an estimate of their payload until their object is
                # done: the count may run ahead of the total for a moment, never shown so
                "done_bytes": min(self.done_bytes, self.total_bytes) if self.total_bytes else self.done_bytes,
                "total_bytes": self.total_bytes,
                "percent": round(min(percent, 100.0), 2),
                "rate_bytes_per_s": round(rate, 1),
                "eta_s": round(eta, 1) if eta is not None else None,
                "stalled_s": round(stalled, 1) if stalled >= self.STALL_AFTER else None,
                "retries": self._retries(),
                "elapsed_s": round(now - self._t0, 1),
            }

    # -- reporting ------------------------------------------------------------------
    def start(self) -> "Progress":
        if self.mode == "none" and not self.sinks:
            return self
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, TextColumn

            # percent, rate and time left come from the engine's own counters (rich's
            # speed estimate would count a resumed run's already-done bytes as speed)
            self._bar = RichProgress(
                TextColumn(f"{self.op}" + " [progress.description]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[percent]:>5.1f}%"),
                DownloadColumn(binary_units=True),  # MiB, as in info and the summaries
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[eta]}"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=None, percent=0.0, rate="", eta="")
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        iv = _interval()
        while not self._stop.wait(iv):
            self.emit()

    def emit(self) -> None:
        snap = self.snapshot()
        if not snap["total_bytes"] and not snap["total_events"]:
            return  # nothing planned yet (or nothing to do): no line that would claim 100 %
        for sink in self.sinks:
            sink(snap)
        if self.mode == "json":
            try:
                self.stream.write(json.dumps(snap, separators=(",", ":")) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        elif self.mode == "bar" and self._bar is not None:
            seg = "" if snap["segment"] is None else f"segment {snap['segment']} "
            events = f"{snap['done_events']}/{snap['total_events']}" if snap["total_events"] else f"{snap['done_events']}"
            eta = snap["eta_s"]
            desc = f"{seg}{events} events"
            if snap["stalled_s"]:
                desc = f"no progress for {snap['stalled_s']:.0f} s, retrying"
                if snap["retries"]:
                    desc += f" ({snap['retries']} retries so far)"
            self._bar.update(
                self._task,
                total=snap["total_bytes"] or None,
                completed=snap["done_bytes"],
                description=desc,
                percent=snap["percent"],
                rate=f"{human_size(snap['rate_bytes_per_s'])}/s",
                eta="eta --:--:--" if eta is None else f"eta {_clock(eta)}",
            )

    def stop(self) -> None:
        if self._stop.is_set():
            return  # already stopped (a pause stops it before printing how to resume)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.mode != "none" or self.sinks:
            self.emit()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def print_done(summary: dict, stream=None) -> None:
    """The final one-line JSON summary, on stdout (machine-readable result of the run)."""
    out = stream or sys.stdout
    out.write(redact(json.dumps({"event": "done", **summary}, separators=(",", ":"), sort_keys=False)) + "\n")
    out.flush()
