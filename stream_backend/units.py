"""Sizes and times as people write and read them: the one grammar every command and the
progress bar share (K, KB and KiB are all 1024; times in UTC, to the second)."""

from __future__ import annotations

import datetime as _dt

from .errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def parse_size(text: str | int) -> int:
    """'64MiB' -> 67108864; accepts KiB/MiB/GiB/TiB, K/M/G/T, KB/MB/GB/TB and plain bytes."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = s[len(num):].strip().lower()
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"not a size: {text!r} (examples: 64MiB, 8M, 1048576)") from None
    if unit not in _UNITS or value < 0:
        raise UsageError(f"not a size: {text!r} (examples: 64MiB, 8M, 1048576)")
    return int(value * _UNITS[unit])


def parse_rate(text: str, what: str = "--bwlimit") -> int:
    """'20MiB' or '20MiB/s' -> bytes per second (--bwlimit), positive."""
    try:
        rate = parse_size(str(text).strip().removesuffix("/s"))
    except UsageError:
        rate = 0
    if rate < 1:
        raise UsageError(f"{what} takes a rate in bytes per second such as 20MiB, not {text!r}")
    return rate


def human_size(n: int) -> str:
    """67108864 -> '64.0 MiB': the one way sizes are shown (CLI output, progress bar)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{int(n)} B"  # pragma: no cover


def iso_time(t: float | None) -> str | None:
    """Epoch seconds -> '2026-12-03T23:27:30Z': the one way times are shown."""
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
