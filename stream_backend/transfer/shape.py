"""Restoring a Pravega stream's shape: an archive of a stream that scaled is imported
scale by scale, so every routing key's events keep their order and a reader group on the
restored stream reads what it would have read on the source.

The archive records each segment's key range, creating epoch and predecessors
(``SegmentPart.shape``). The replay creates the stream as one segment, scales it to the
root segments' key ranges (those whose predecessors the archive does not hold; no scale if
that is the whole key space), writes every segment a scale seals before replaying that
scale (seal the same key ranges, create the same new ones), and writes the segments still
open at the end last. Which scale a destination
already took is read from the destination itself (its epochs and key ranges), so a
killed import resumes from there.
"""

from __future__ import annotations

from ..errors import UnsupportedError


class ShapeReplay:
    def __init__(self, chain):
        self.numbers = chain.numbers
        self.shapes = {n: chain.shape(n) for n in self.numbers}
        self.config = chain.runs[-1].stream_config if chain.runs else None
        missing = [n for n, sh in self.shapes.items() if sh is None]
        if missing:
            raise UnsupportedError(f"archive segments {missing} have no recorded shape: cannot restore it")
        have = set(self.numbers)
        self.roots = sorted((n for n in self.numbers if not set(self.shapes[n]["predecessors"]) & have),
                            key=self._low)
        later = [n for n in self.numbers if n not in self.roots]
        self.scales = []  # [{"epoch", "sealed", "new", "ranges"}], in epoch order
        for epoch in sorted({self.shapes[n]["epoch"] for n in later}):
            new = sorted((n for n in later if self.shapes[n]["epoch"] == epoch), key=self._low)
            sealed = sorted({p for n in new for p in self.shapes[n]["predecessors"]}, key=self._low)
            self.scales.append({"epoch": epoch, "sealed": sealed, "new": new,
                                "ranges": [self._range(n) for n in new]})
        # the destination starts as one segment, then takes the roots' key ranges in a scale
        # of its own: a stream created over n segments could never be merged below n
        self.whole = [self._range(n) for n in self.roots] == [(0.0, 1.0)]

    def _range(self, n: int) -> tuple[float, float]:
        lo, hi = self.shapes[n]["key_range"]
        return float(lo), float(hi)

    def _low(self, n: int) -> float:
        return self._range(n)[0]

    def create(self, store, scope: str, stream: str, max_event_size: int | None) -> None:
        store.create_stream(scope, stream, segments=1, exist_ok=True,
                            max_event_size=max_event_size, **config_options(store, self.config))
        self.start(store, scope, stream, store.stream_info(scope, stream))

    def start(self, store, scope: str, stream: str, info) -> None:
        """The scale to the roots' key ranges, unless taken (an import killed right after
        creating the stream resumes here)."""
        if not self.whole and [s.epoch for s in info.segments] == [0] and info.events == 0:
            store.scale_stream(scope, stream, [0], [self._range(n) for n in self.roots])

    def steps(self, numbers: list[int]) -> list[tuple[str, object]]:
        """("write", segment) and ("scale", scale) in the order that keeps each key's order."""
        out: list[tuple[str, object]] = []
        written: set[int] = set()
        for sc in self.scales:
            for n in sc["sealed"]:
                if n not in written:
                    out.append(("write", n))
                    written.add(n)
            out.append(("scale", sc))
        out += [("write", n) for n in numbers if n not in written]
        return out

    def _levels(self, info) -> dict[int, list]:
        by_epoch: dict[int, list] = {}
        for seg in info.segments:
            by_epoch.setdefault(seg.epoch, []).append(seg)
        return by_epoch

    def match(self, info) -> dict[int, int] | None:
        """Archive segment -> destination segment, for as many scales as the destination
        took; None if its shape is not a prefix of the source's."""
        levels = self._levels(info)
        first = 0 if self.whole else 1
        out: dict[int, int] = {}
        plan = [self.roots] + [sc["new"] for sc in self.scales]
        for i, group in enumerate(plan):
            segs = levels.get(first + i)
            if segs is None:
                if i == 0:
                    return None
                break
            by_range = {(round(s.key_range[0], 12), round(s.key_range[1], 12)): s.segment for s in segs}
            for n in group:
                lo, hi = self._range(n)
                d = by_range.get((round(lo, 12), round(hi, 12)))
                if d is None:
                    return None
                out[n] = d
        if set(levels) - set(range(first + len(plan))) - ({0} if not self.whole else set()):
            return None  # the destination scaled in ways the source did not
        return out

    def scaled(self, info, scale: dict) -> bool:
        """Did the destination already take ``scale``?"""
        first = 0 if self.whole else 1
        return (first + 1 + self.scales.index(scale)) in self._levels(info)


def restore_scaling(store, scope: str, stream: str, config: dict | None) -> None:
    """The source's auto-scaling policy, once every event is in (set earlier, the
    destination could scale on its own during the import and lose the source's shape)."""
    scaling = (config or {}).get("scaling") or {}
    if scaling.get("type") in ("events", "kbytes") and store.scalable:
        store.set_scaling(scope, stream, (scaling["type"], scaling["target_rate"], scaling["scale_factor"]),
                          scaling["min_segments"])


def config_options(store, config: dict | None) -> dict:
    """create_stream options that restore a Pravega stream's retention policy and tags."""
    if not config or not store.scalable:
        return {}
    ret = config.get("retention") or {}
    out: dict = {"tags": list(config.get("tags") or [])}
    if ret.get("type") in ("time", "size"):
        out["retention"] = (ret["type"], int(ret["value"]))
    return out


def segment_map(chain, store, info, is_source: bool) -> dict[int, int] | None:
    """Archive segment -> segment of the stream ``info`` describes, for comparing them:
    the same numbers (the archive's source itself), the restored shape (a replayed
    import), or in order onto 0..n-1 (an import into a fixed stream); None if none fits."""
    if is_source:
        return {n: n for n in chain.numbers} if set(chain.numbers) <= set(info.numbers) else None
    if chain.scaled and store.scalable:
        got = ShapeReplay(chain).match(info)
        if got is not None and len(got) == len(chain.numbers):
            return got
    if len(info.numbers) == len(chain.numbers) or set(chain.numbers) <= set(info.numbers):
        return chain.dense(info.numbers)
    return None
