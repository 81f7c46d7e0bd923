"""Prometheus metrics of one export or import, fed by the progress snapshots it already
makes: scraped during a long run (``--metrics-port``), or pushed to a Pushgateway when
the run ends (``--pushgateway``), for CronJob pods that are gone before any scrape.

A success replaces the archive's group on the Pushgateway (PUT); a failure only adds to
it (POST), so the time of the last success stays there for the alert that asks how long
ago a backup last completed.
"""

from __future__ import annotations

import math
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, pushadd_to_gateway, push_to_gateway, start_http_server

from ..errors import UnavailableError

#: the exit code of a pause: the run goes on later, nothing failed
PAUSED = 75


class TransferMetrics:
    """Gauges and counters of one transfer, labelled with its op, archive and stream."""

    def __init__(self, op: str, archive: str, stream: str):
        self.op, self.archive = op, archive
        self.registry = CollectorRegistry()
        self.labels = {"op": op, "archive": archive, "stream": stream}

        def metric(kind, name: str, doc: str):
            return kind(f"stream_backend_{name}", doc, list(self.labels), registry=self.registry)

        self._bytes = metric(Gauge, "transfer_bytes", "Payload bytes of the run done, by this attempt and earlier ones")
        self._bytes_expected = metric(Gauge, "transfer_bytes_expected", "Payload bytes of the whole run")
        self._events = metric(Gauge, "transfer_events", "Events of the run done")
        self._events_expected = metric(Gauge, "transfer_events_expected", "Events of the whole run")
        self._rate = metric(Gauge, "transfer_rate_bytes_per_second", "Bytes moved per second over the last 10 s")
        self._eta = metric(Gauge, "transfer_eta_seconds", "Seconds left at the current rate (NaN: not known yet)")
        self._elapsed = metric(Gauge, "transfer_elapsed_seconds", "Seconds since this attempt started")
        self._retries = metric(Counter, "transfer_retries", "Transient storage faults met and retried")
        self._objects = metric(Counter, "transfer_objects", "Data objects written (export) or read (import)")
        self._errors = metric(Counter, "transfer_errors", "Attempts that ended in an error (a pause is none)")
        self._exit = metric(Gauge, "transfer_exit_code", "How the attempt ended: 0 done, 75 paused, else the error's code")
        self._metric = metric
        self._seen_retries = 0
        #: the run ended with the archive (export) or the stream (import) complete
        self.complete = False
        self._exit.labels(**self.labels).set(math.nan)
        for counter in (self._retries, self._objects, self._errors):
            counter.labels(**self.labels)  # shown from the start, at 0

    def __call__(self, snap: dict) -> None:
        """A progress sink: every snapshot the transfer reports."""
        lab = self.labels
        self._bytes.labels(**lab).set(snap["done_bytes"])
        self._bytes_expected.labels(**lab).set(snap["total_bytes"])
        self._events.labels(**lab).set(snap["done_events"])
        self._events_expected.labels(**lab).set(snap["total_events"])
        self._rate.labels(**lab).set(snap["rate_bytes_per_s"])
        self._eta.labels(**lab).set(math.nan if snap["eta_s"] is None else snap["eta_s"])
        self._elapsed.labels(**lab).set(snap["elapsed_s"])
        retries = snap.get("retries") or 0
        if retries > self._seen_retries:
            self._retries.labels(**lab).inc(retries - self._seen_retries)
            self._seen_retries = retries

    def finished(self, summary: dict) -> None:
        attempt = summary.get("this_attempt") or {}
        self._objects.labels(**self.labels).inc(attempt.get("objects", summary.get("objects", 0)) or 0)
        self._exit.labels(**self.labels).set(0)
        self.complete = bool(summary.get("complete", True))
        if self.complete:
            # made only now: a failure's push must not carry it, or it would replace the
            # last success's time on the Pushgateway
            success = self._metric(Gauge, "last_success_timestamp_seconds",
                                   "When an attempt last finished with the archive complete (Unix time)")
            success.labels(**self.labels).set(time.time())

    def failed(self, exit_code: int) -> None:
        self._exit.labels(**self.labels).set(exit_code)
        if exit_code != PAUSED:
            self._errors.labels(**self.labels).inc()

    def serve(self, addr: str, port: int) -> None:
        """Answer scrapes on ``addr:port`` (a daemon thread) until the process ends."""
        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise UnavailableError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None

    def push(self, url: str, succeeded: bool) -> None:
        """To the Pushgateway at ``url``, grouped by archive: a success replaces the group,
        a failure adds to it (keeping the last success's time)."""
        send = push_to_gateway if succeeded else pushadd_to_gateway
        try:
            send(url, job=f"stream-backend-{self.op}", grouping_key={"archive": self.archive}, registry=self.registry,
                 timeout=10)
        except OSError as exc:
            raise UnavailableError(f"cannot push metrics to the Pushgateway {url}: {exc}") from None
