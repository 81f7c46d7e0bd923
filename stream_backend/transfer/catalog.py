"""Every archive under a prefix: what `stream-backend archives` lists.

An archive is a directory holding ``archive.json``. The walk lists one directory level
at a time (a delimiter listing on S3) and never descends into an archive, so its cost
grows with the number of directories above the archives, not with their objects.
"""

from __future__ import annotations

from typing import Iterator

from ..archive import layout
from ..errors import StreamBackendError
from .targets import ArchiveTarget
from .verify import archive_status

#: how deep below the prefix archives are looked for (bucket/env/namespace/stream/...)
MAX_DEPTH = 6


def find_archives(target: ArchiveTarget, max_depth: int = MAX_DEPTH) -> Iterator[str]:
    """Keys (relative to ``target``) of the archives at or below it, in name order; ""
    when ``target`` is itself one."""
    todo = [("", 0)]
    while todo:
        key, depth = todo.pop()
        names = target.children(key)
        if layout.IDENTITY_KEY in names:
            yield key
            continue
        if depth < max_depth:
            todo.extend((f"{key}/{n}" if key else n, depth + 1) for n in sorted(names, reverse=True)
                        if not n.startswith("."))


def archive_summary(target: ArchiveTarget) -> dict:
    """One line's worth of an archive: its stream, runs, size, event times, last run."""
    try:
        st = archive_status(target)
    except StreamBackendError as exc:  # one damaged archive does not hide the others
        return {"archive": target.display, "error": str(exc), "exit_code": exc.exit_code}
    src, runs = st["source"], st["runs"]
    last = runs[-1] if runs else {}
    return {
        "archive": target.display,
        "stream": f"{src.get('store')}://{src.get('scope')}/{src.get('stream')}",
        "runs": len(runs), "events": st["events"], "bytes": st["bytes"],
        "first_time": min((r["first_time"] for r in runs if r["first_time"] is not None), default=None),
        "last_time": max((r["last_time"] for r in runs if r["last_time"] is not None), default=None),
        "last_run": last.get("run"), "last_written": last.get("written"),
        "in_progress": bool(st["in_progress"]["runs"] or st["in_progress"]["checkpoints"]),
        **({"lock": last["lock"]} if last.get("lock") else {}),
    }
