"""Progress from inside a pod to its StreamExport / StreamImport: the operator names the
resource in the pod's environment, and the pod's ServiceAccount may patch only that kind's
status. Each pod writes its own entry (``status.shardProgress[INDEX]``, a merge patch, so
shards do not overwrite each other); the operator sums them into ``status.progress``.

Reporting never slows or fails a transfer: the patch is sent from a thread of its own, at
most every few seconds, and a failed one is logged and forgotten.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import urllib.request

from .. import settings
from .jobs import SERVICE_ACCOUNT_MOUNT
from .resources import GROUP, VERSION

log = logging.getLogger("stream_backend.k8s")

MIN_INTERVAL = 2.0


def progress_entry(snap: dict) -> dict:
    """A Progress snapshot as the status schema names its fields."""
    return {"eventsDone": snap["done_events"], "eventsTotal": snap["total_events"], "bytesDone": snap["done_bytes"],
            "bytesTotal": snap["total_bytes"], "percent": snap["percent"], "etaSeconds": snap["eta_s"],
            "rateBytesPerSecond": snap["rate_bytes_per_s"]}


def sum_progress(shards: dict) -> dict:
    """``status.progress`` from the shards' entries: counts summed, the ETA of the slowest."""
    total = {k: sum(e.get(k) or 0 for e in shards.values())
             for k in ("eventsDone", "eventsTotal", "bytesDone", "bytesTotal", "rateBytesPerSecond")}
    if total["bytesTotal"]:
        total["percent"] = round(min(100.0, 100.0 * total["bytesDone"] / total["bytesTotal"]), 1)
    elif total["eventsTotal"]:
        total["percent"] = round(min(100.0, 100.0 * total["eventsDone"] / total["eventsTotal"]), 1)
    etas = [e["etaSeconds"] for e in shards.values() if e.get("etaSeconds") is not None]
    if etas:
        left = int(round(max(etas)))
        total.update(etaSeconds=float(left), eta=f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}")
    return total


def done_status(done: list[dict]) -> dict:
    """run, archive, complete, events and bytes of a run from its "done" summaries (one per
    shard, each with its share over all its attempts): complete once one of them found
    every segment's part in the archive. Imports do not say ``complete``."""
    totals = [m.get("run_total") or m for m in done]
    out = {"run": max(m.get("run") or 0 for m in done), "archive": done[0].get("archive"),
           "events": sum(t.get("events") or 0 for t in totals), "bytes": sum(t.get("bytes") or 0 for t in totals)}
    if any("complete" in m for m in done):
        out["complete"] = any(m.get("complete") for m in done)
    return out


def finished_progress(status: dict) -> dict:
    """The progress of a finished run; null clears what running shards reported (a merge
    patch keeps absent keys)."""
    return {"percent": 100.0, "eventsDone": status.get("events"), "eventsTotal": status.get("events"),
            "bytesDone": status.get("bytes"), "bytesTotal": status.get("bytes"), "eta": None,
            "etaSeconds": None, "rateBytesPerSecond": None}


def succeeded_message(status: dict) -> str:
    return f"run {status.get('run')}: {status.get('events')} events, {status.get('bytes')} bytes"


class StatusReporter:
    """A Progress sink: ``reporter(snapshot)`` keeps the newest; a thread patches it."""

    def __init__(self, resource: str, token_dir: str, server: str, index: str) -> None:
        self.namespace, self.plural, self.name = resource.split("/")
        self.token_dir, self.server, self.index = token_dir, server, index
        self._latest: dict | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="k8s-status", daemon=True)
        self._thread.start()

    def __call__(self, snap: dict) -> None:
        self._latest = snap
        self._wake.set()

    def close(self) -> None:
        """Send the last snapshot, then stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            snap, self._latest = self._latest, None
            if snap is not None:
                self._patch(snap)
            if self._stop.is_set():
                return
            self._stop.wait(MIN_INTERVAL)

    def _patch(self, snap: dict) -> None:
        url = (f"{self.server}/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{self.plural}/{self.name}/status")
        body = json.dumps({"status": {"shardProgress": {self.index: progress_entry(snap)}}}).encode()
        try:
            with open(os.path.join(self.token_dir, "token")) as f:  # re-read: projected tokens rotate
                token = f.read().strip()
            ctx = ssl.create_default_context(cafile=os.path.join(self.token_dir, "ca.crt"))
            req = urllib.request.Request(url, data=body, method="PATCH", headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"})
            with urllib.request.urlopen(req, context=ctx, timeout=5):
                pass
        except (OSError, ValueError) as exc:
            if not self._warned:  # once: the transfer goes on either way
                log.warning("progress not reported to %s/%s: %s", self.plural, self.name, exc)
                self._warned = True


def reporter_from_env(env=None) -> StatusReporter | None:
    """The pod's reporter when the operator asked for one, else None."""
    env = os.environ if env is None else env
    resource = env.get(settings.K8S_STATUS_ENV)
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not resource or not host or not port:
        return None
    shown = f"[{host}]" if ":" in host else host
    return StatusReporter(resource, env.get(settings.K8S_TOKEN_DIR_ENV) or SERVICE_ACCOUNT_MOUNT, f"https://{shown}:{port}",
                          env.get(settings.JOB_INDEX_ENV) or "0")
