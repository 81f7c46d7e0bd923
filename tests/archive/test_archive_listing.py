"""Every key the layout writes is read back as what it names, and the listing of an
archive's keys says which runs are complete and which are begun, whatever else lies there."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream_backend.archive import layout
from stream_backend.archive.layout import Key
from stream_backend.archive.listing import ArchiveListing

runs = st.integers(1, 10**8 - 1)
segments = st.integers(0, 10**6 - 1)
groups = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(runs, segments, groups, st.integers(0, 10**20 - 1), st.integers(0, 10**12 - 1), st.booleans())
def test_every_layout_key_parses_to_what_it_names(run, segment, group, seq, offset, zstd):
    assert layout.parse_key(layout.run_manifest_key(run)) == Key("manifest", run)
    assert layout.parse_key(layout.segment_part_key(run, segment)) == Key("segment-part", run, segment)
    assert layout.parse_key(layout.reader_group_key(run, group)) == Key("reader-group", run, None, group)
    assert layout.parse_key(layout.checkpoint_key(segment)) == Key("checkpoint", None, segment)
    assert layout.parse_key(layout.lease_key(segment)) == Key("lease", None, segment)
    assert layout.parse_key(layout.object_key(segment, seq, offset, zstd)) == Key("object", None, segment)
    assert layout.parse_key(layout.IDENTITY_KEY) == Key("identity")


@given(st.sets(st.tuples(runs.filter(lambda r: r < 50), segments.filter(lambda s: s < 8)), max_size=30),
       st.sets(runs.filter(lambda r: r < 50), max_size=5), st.sets(segments.filter(lambda s: s < 8), max_size=4))
def test_listing_reads_runs_parts_and_checkpoints(parts, manifests, checkpoints):
    keys = [layout.segment_part_key(r, s) for r, s in parts] + [layout.run_manifest_key(r) for r in manifests]
    keys += [layout.checkpoint_key(s) for s in checkpoints]
    # what a killed writer or a stranger leaves is not part of the archive
    keys += [layout.run_manifest_key(77) + ".tmp-1-2", ".tmp/runs_00000078_manifest.json-1-ab", "runs/README",
             "runs/00000079/segments/7.json", "checkpoints/x.json"]
    got = ArchiveListing.of(keys)
    assert got.complete_runs == sorted(manifests)
    want_parts: dict[int, set[int]] = {}
    for r, s in parts:
        want_parts.setdefault(r, set()).add(s)
    assert got.parts == want_parts
    assert got.checkpoints == {s: layout.checkpoint_key(s) for s in checkpoints}
    last = max(manifests, default=0)
    begun = [r for r in want_parts if r not in manifests and r > last]
    assert got.open_run() == (max(begun) if begun else None)
    assert got.open_run([last + 5]) == max(begun + [last + 5])
