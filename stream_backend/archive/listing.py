"""What an archive holds, from the list of its keys: the one reading of an archive's
listing (complete runs, the parts of each run, checkpoints) for every command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from . import layout


@dataclass
class ArchiveListing:
    #: runs whose manifest exists: complete
    manifests: set[int] = field(default_factory=set)
    #: run -> segments whose part of that run exists
    parts: dict[int, set[int]] = field(default_factory=dict)
    #: segment -> key of its export checkpoint
    checkpoints: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[str]) -> "ArchiveListing":
        """From keys relative to the archive prefix; keys the layout does not name are
        ignored."""
        out = cls()
        for key in keys:
            k = layout.parse_key(key)
            if k is None:
                continue
            if k.kind == "manifest":
                out.manifests.add(k.run)
            elif k.kind == "segment-part":
                out.parts.setdefault(k.run, set()).add(k.segment)
            elif k.kind == "checkpoint":
                out.checkpoints[k.segment] = key
        return out

    @property
    def complete_runs(self) -> list[int]:
        return sorted(self.manifests)

    @property
    def last_complete(self) -> int | None:
        return max(self.manifests) if self.manifests else None

    def open_run(self, checkpoint_runs: Iterable[int] = ()) -> int | None:
        """The run after the last complete one that parts or checkpoints show begun."""
        last = self.last_complete or 0
        candidates = [r for r in self.parts if r not in self.manifests and r > last]
        candidates += [r for r in checkpoint_runs if r > last]
        return max(candidates) if candidates else None
