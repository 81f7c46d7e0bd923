"""``rm`` of a whole archive: only a directory that is an archive, never while an export
holds it or while Object Lock protects it, in an order that an interruption cannot turn
into a complete-looking archive with data missing (``_in_order``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ..archive import layout
from ..archive.listing import ArchiveListing
from ..errors import NotFoundError, PermissionDeniedError, WriterBusyError
from ..units import iso_time
from .checkpoint import read_leases
from .targets import ArchiveTarget


def archive_keys(target: ArchiveTarget) -> dict[str, int]:
    """Every object of the archive at ``target`` -> size; NotFoundError if it is none."""
    if layout.IDENTITY_KEY not in target.children(""):
        raise NotFoundError(f"no archive at {target.display} (no {layout.IDENTITY_KEY}): nothing removed")
    return target.list("")


def check_removable(target: ArchiveTarget, keys: dict[str, int]) -> None:
    """Refuse while an exporter holds a lease, or while a run is locked."""
    live = [lease for lease in read_leases(target) if lease["expires_in_s"] > 0]
    if live:
        raise WriterBusyError(f"{target.display} is being exported (segment {live[0].get('segment')} held by "
                              f"{live[0].get('holder')}): stop that export first; nothing removed")
    now = datetime.now(timezone.utc)
    for run in ArchiveListing.of(keys).complete_runs:
        lock = target.lock_of(layout.run_manifest_key(run))
        if lock is not None and (lock.legal_hold or (lock.until is not None and lock.until > now)):
            until = "a legal hold" if lock.legal_hold else f"{lock.mode} until {iso_time(lock.until.timestamp())}"
            raise PermissionDeniedError(f"{target.display} run {run} is under Object Lock ({until}): "
                                        "it cannot be removed; nothing removed")


def _in_order(keys) -> list[list[str]]:
    """Batches to delete one after the other: the run manifests, then the rest of the runs
    (with no segment part left, no later export can complete a run over missing data),
    the export's scratch, the file views, the data, and ``archive.json``."""
    kinds = {k: getattr(layout.parse_key(k), "kind", None) for k in keys}
    rank = {"manifest": 0, "segment-part": 1, "reader-group": 1, "checkpoint": 2, "lease": 2,
            "view-manifest": 3, "view-object": 4, "object": 5, "identity": 7}
    batches: dict[int, list[str]] = {}
    for key in sorted(keys):
        batches.setdefault(rank.get(kinds[key], 6), []).append(key)
    return [batches[r] for r in sorted(batches)]


def remove_archive(target: ArchiveTarget) -> dict:
    """Remove every object of the archive; returns what went."""
    keys = archive_keys(target)
    check_removable(target, keys)
    t0 = time.monotonic()
    for batch in _in_order(keys):
        target.delete_all(batch)
    target.abort_stray_uploads("")
    return {"op": "rm", "archive": target.display, "objects": len(keys), "bytes": sum(keys.values()),
            "elapsed_s": round(time.monotonic() - t0, 2)}
