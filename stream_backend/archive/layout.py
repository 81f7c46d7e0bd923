"""Key names inside an archive prefix (docs/format.md, "Layout").

Every name derives from segment numbers, run numbers and event positions only — never
clocks or random ids — so a resumed export writes exactly the keys an uninterrupted one
would. Keys are relative to the archive prefix and always use "/".
"""

from __future__ import annotations

import re
from typing import NamedTuple

IDENTITY_KEY = "archive.json"
DATA_DIR = "data"
RUNS_DIR = "runs"
CHECKPOINTS_DIR = "checkpoints"
LEASES_DIR = "leases"
#: the file view (payloads back to back, no framing) of each run, when exported with it
VIEWS_DIR = "views"

OBJECT_SUFFIX = ".sbo"
ZSTD_SUFFIX = ".sbo.zst"

_OBJECT_RE = re.compile(r"^data/(\d{6})/(\d{20})-(\d{12})\.sbo(\.zst)?$")
_RUN_RE = re.compile(r"^(\d{8})$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def object_key(segment: int, seq: int, offset: int, compressed: bool = False) -> str:
    """Key of the data object of ``segment`` whose first record starts at ``(seq, offset)``."""
    _check(segment, 6, "segment")
    _check(seq, 20, "seq")
    _check(offset, 12, "offset")
    suffix = ZSTD_SUFFIX if compressed else OBJECT_SUFFIX
    return f"{DATA_DIR}/{segment:06d}/{seq:020d}-{offset:012d}{suffix}"


def parse_object_key(key: str) -> tuple[int, int, int, bool]:
    """``(segment, seq, offset, compressed)`` of an object key (relative or with a prefix)."""
    idx = key.rfind(DATA_DIR + "/")
    m = _OBJECT_RE.match(key[idx:] if idx >= 0 else key)
    if not m:
        raise ValueError(f"not a data object key: {key!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) is not None


def run_dir(run: int) -> str:
    _check(run, 8, "run")
    return f"{RUNS_DIR}/{run:08d}"


def run_manifest_key(run: int) -> str:
    return f"{run_dir(run)}/manifest.json"


def segment_part_key(run: int, segment: int) -> str:
    _check(segment, 6, "segment")
    return f"{run_dir(run)}/segments/{segment:06d}.json"


def reader_groups_dir(run: int) -> str:
    return f"{run_dir(run)}/reader-groups"


def reader_group_key(run: int, group: str) -> str:
    if not _GROUP_RE.match(group):
        raise ValueError(f"reader group name {group!r} is not a Pravega name")
    return f"{reader_groups_dir(run)}/{group}.json"


def checkpoint_key(segment: int) -> str:
    _check(segment, 6, "segment")
    return f"{CHECKPOINTS_DIR}/{segment:06d}.json"


def lease_key(segment: int) -> str:
    _check(segment, 6, "segment")
    return f"{LEASES_DIR}/{segment:06d}.json"


def view_object_key(segment: int, run: int, index: int) -> str:
    """The ``index``-th plain object of ``segment``'s file view written by ``run``."""
    _check(segment, 6, "segment")
    _check(run, 8, "run")
    _check(index, 6, "view object")
    return f"{VIEWS_DIR}/{segment:06d}/{run:08d}-{index:06d}.bin"


def view_manifest_key(run: int) -> str:
    """What ``run``'s file view objects hold; written last, so its presence commits them."""
    _check(run, 8, "run")
    return f"{VIEWS_DIR}/{run:08d}.json"


def parse_run_dir(name: str) -> int | None:
    """Run number of a ``runs/`` child name (``"00000003"`` -> 3), None if not a run."""
    m = _RUN_RE.match(name.rstrip("/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


class Key(NamedTuple):
    """What a key names: ``kind`` is identity, object, manifest, segment-part,
    reader-group, checkpoint, lease, view-manifest or view-object; ``run``/``segment``/``name``
    where the kind has one."""

    kind: str
    run: int | None = None
    segment: int | None = None
    name: str | None = None


_KEY_RES = [
    ("manifest", re.compile(r"^runs/(?P<run>\d{8})/manifest\.json$")),
    ("segment-part", re.compile(r"^runs/(?P<run>\d{8})/segments/(?P<segment>\d{6})\.json$")),
    ("reader-group", re.compile(r"^runs/(?P<run>\d{8})/reader-groups/(?P<name>" + _GROUP_RE.pattern[1:-1] + r")\.json$")),
    ("checkpoint", re.compile(r"^checkpoints/(?P<segment>\d{6})\.json$")),
    ("lease", re.compile(r"^leases/(?P<segment>\d{6})\.json$")),
    ("view-manifest", re.compile(r"^views/(?P<run>\d{8})\.json$")),
    ("view-object", re.compile(r"^views/(?P<segment>\d{6})/(?P<run>\d{8})-\d{6}\.bin$")),
]


def parse_key(key: str) -> Key | None:
    """What the archive key ``key`` (relative to the prefix) names; None for a key that is
    not one of the layout's (a temporary file, a stranger's object)."""
    if key == IDENTITY_KEY:
        return Key("identity")
    if key.startswith(DATA_DIR + "/"):
        try:
            segment, _seq, _off, _z = parse_object_key(key)
        except ValueError:
            return None
        return Key("object", segment=segment)
    for kind, rx in _KEY_RES:
        m = rx.match(key)
        if m:
            d = m.groupdict()
            return Key(kind, int(d["run"]) if d.get("run") else None,
                       int(d["segment"]) if d.get("segment") else None, d.get("name"))
    return None


def _check(value: int, digits: int, what: str) -> None:
    if not isinstance(value, int) or value < 0 or value >= 10**digits:
        raise ValueError(f"{what} {value!r} does not fit the archive layout ({digits} digits)")
