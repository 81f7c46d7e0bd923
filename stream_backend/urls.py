"""Parse stream URLs: ``stream://SCOPE/STREAM[/SEGMENT]`` and ``pravega://SCOPE/STREAM``.

Kept apart from any store so the CLI, fsspec and FUSE agree on one grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

STORE_PROTOCOLS = ("stream", "pravega")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def check_name(kind: str, name: str) -> str:
    """Raise UsageError unless ``name`` is a valid scope or stream name."""
    if not _NAME.match(name or ""):
        raise UsageError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 255, not starting with '.', '_' or '-')"
        )
    return name


@dataclass(frozen=True)
class StreamURL:
    protocol: str  # "stream" or "pravega"
    scope: str | None = None
    stream: str | None = None
    segment: int | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.scope, self.stream) if p]
        if self.segment is not None:
            parts.append(str(self.segment))
        return f"{self.protocol}://" + "/".join(parts)


def parse_stream_url(url: str, need: str = "stream") -> StreamURL:
    """Parse a store URL. ``need`` is "store", "scope" or "stream": the least it must name."""
    m = re.match(r"^([a-z]+)://(.*)$", url or "")
    if not m or m.group(1) not in STORE_PROTOCOLS:
        raise UsageError(f"not a stream URL: {url!r} (expected stream://SCOPE/STREAM or pravega://SCOPE/STREAM)")
    proto, rest = m.group(1), m.group(2).strip("/")
    parts = [p for p in rest.split("/") if p] if rest else []
    if len(parts) > 3:
        raise UsageError(f"too many path parts in {url!r}: expected {proto}://SCOPE/STREAM")
    scope = check_name("scope", parts[0]) if parts else None
    stream = check_name("stream", parts[1]) if len(parts) > 1 else None
    segment = None
    if len(parts) == 3:
        if not parts[2].isdigit():
            raise UsageError(f"segment must be a number in {url!r}")
        segment = int(parts[2])
    order = {"store": 0, "scope": 1, "stream": 2}
    have = 2 if stream else 1 if scope else 0
    if have < order[need]:
        raise UsageError(f"{url!r} names no {need}: expected {proto}://SCOPE" + ("/STREAM" if need == "stream" else ""))
    return StreamURL(proto, scope, stream, segment)
