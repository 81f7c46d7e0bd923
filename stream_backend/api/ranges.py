"""HTTP byte ranges (RFC 9110 section 14) over a stream's file view."""

from __future__ import annotations

import re

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
#: more ranges than this in one request is refused (a client asking for thousands of
#: tiny ranges is attacking, not downloading)
MAX_RANGES = 64


class Unsatisfiable(ValueError):
    """No range of the request overlaps the representation (416)."""


def parse(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The ``[start, stop)`` ranges a Range header asks of ``size`` bytes, or None when the
    whole representation is to be sent (no header, another unit, or a header that does
    not parse: RFC 9110 says to ignore those). Overlapping ranges are merged."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    out = []
    specs = header.strip()[6:].split(",")
    if len(specs) > MAX_RANGES:
        return None
    for spec in specs:
        m = _SPEC.match(spec)
        if m is None:
            return None
        first, last = m.groups()
        if first == "" and last == "":
            return None
        if first == "":  # the last N bytes
            n = int(last)
            if n and size:  # the last 0 bytes, or any bytes of nothing: none
                out.append((max(size - n, 0), size))
        else:
            start = int(first)
            stop = size if last == "" else min(int(last) + 1, size)
            if last != "" and int(last) < start:
                return None
            if start < size:
                out.append((start, stop))
    if not out:
        raise Unsatisfiable(f"bytes */{size}")
    out.sort()
    merged = [out[0]]
    for start, stop in out[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged
