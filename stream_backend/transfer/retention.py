"""Keep every restore point locked as long as asked.

Run R restores from the objects of runs 1..R, so it is only as safe as the lock of the
oldest object it needs: written with ``--object-lock-retain-days N``, run 1's objects
would come free N days after run 1 while later runs still need them. Each export that
ends with its archive complete therefore renews the locks of earlier runs: once less
than half of the period is left on a run (its manifest tells, being written last), every
object of that run gets a fresh date, its manifest last. Each object is renewed at most
once per half period, whatever the schedule.
"""

from __future__ import annotations

from ..archive import layout
from ..archive.listing import ArchiveListing
from ..archive.manifest import RunManifest
from .targets import ArchiveTarget
from .views import view_manifest


def run_keys(target: ArchiveTarget, manifest: RunManifest) -> list[str]:
    """Every key run ``manifest.run`` adds to the archive, its manifest last."""
    run = manifest.run
    keys = [o.key for part in manifest.segments for o in part.objects]
    keys += [layout.segment_part_key(run, part.segment) for part in manifest.segments]
    keys += sorted(k for k in target.list(layout.reader_groups_dir(run)) if k.endswith(".json"))
    view = view_manifest(target, run)
    if view is not None:
        keys += [o["key"] for objs in view["segments"].values() for o in objs]
        keys.append(layout.view_manifest_key(run))
    keys.append(manifest.key)
    return keys


def renew_locks(target: ArchiveTarget) -> int:
    """Renew the Object Lock of every complete run whose lock runs short of what the
    target asks for (``target.object_lock()``); returns how many objects were renewed."""
    want = target.object_lock()
    if want is None:
        return 0
    renewed = 0
    runs = ArchiveListing.of(target.list(layout.RUNS_DIR)).complete_runs
    for key in [layout.IDENTITY_KEY] + [layout.run_manifest_key(r) for r in runs]:
        lock = (target.lock_of(key) or type(want)()).renewed_by(want)
        if lock is None:
            continue
        if key == layout.IDENTITY_KEY:
            todo = [key]
        else:
            todo = run_keys(target, RunManifest.parse(target.read(key), target.where(key)))
        for k in todo:
            target.set_lock(k, lock)
        renewed += len(todo)
    return renewed
