"""Manifests: canonical bytes, checksums, versions, the run chain."""

from __future__ import annotations

import json

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_backend.archive import layout
from stream_backend.archive.format import FORMAT_VERSION
from stream_backend.archive.packing import SegmentPacker
from stream_backend.archive.manifest import (
    ArchiveReader,
    RunManifest,
    SegmentPart,
    build_run_manifest,
    build_segment_part,
    parse_identity,
    parse_reader_group,
    seal,
    segment_objects,
    serialize_identity,
    serialize_reader_group,
    unseal,
    walk_chain,
)
from stream_backend.errors import CorruptionError, FormatVersionError, NotFoundError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = {"store": "stream", "scope": "sc", "stream": "st", "segments": 2}


def make_part(run, segment, events, object_size=300, compression="none", to_seq=None):
    infos = []
    for o in SegmentPacker(events, segment, start_seq=events[0][0] if events else 0, object_size=object_size,
                          compression=compression, end_seq=to_seq):
        o.read()
        infos.append(o.info)
    from_seq = events[0][0] if events else (to_seq or 0)
    return build_segment_part(run, segment, from_seq, to_seq if to_seq is not None else from_seq, infos,
                              compression=compression, object_size=object_size)


events_st = st.lists(
    st.tuples(st.binary(max_size=700), st.one_of(st.none(), st.text(max_size=5)), st.integers(0, 2**60)),
    max_size=12,
)


@SETTINGS
@given(evs=events_st, compression=st.sampled_from(["none", "zstd"]), data=st.data())
def test_manifests_round_trip_and_truncation_is_detected(evs, compression, data):
    events = [(i, p, k, t) for i, (p, k, t) in enumerate(evs)]
    part = make_part(1, 0, events, compression=compression, to_seq=len(events))
    part.check()
    assert part.events == len(events) and part.bytes == sum(len(p) for p, _, _ in evs)
    blob = part.serialize()
    back = SegmentPart.parse(blob, "k")
    assert back.serialize() == blob and back.to_doc() == part.to_doc()
    run = build_run_manifest(1, [part, make_part(1, 1, [], to_seq=0)], SOURCE)
    mblob = run.serialize()
    parsed = RunManifest.parse(mblob, "runs/00000001/manifest.json")
    assert parsed.serialize() == mblob
    assert parsed.segment(0).objects == part.objects and parsed.events == len(events)
    # canonical: sorted keys, compact, and the checksum is over the rest
    doc = json.loads(mblob)
    body = {k: v for k, v in doc.items() if k != "checksum"}
    assert mblob == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    from stream_backend.archive.format import crc32c

    assert doc["checksum"] == f"{crc32c(json.dumps(body, sort_keys=True, separators=(',', ':')).encode()):08x}"
    cut = data.draw(st.integers(0, len(mblob) - 2))
    with pytest.raises(CorruptionError, match="runs/00000001/manifest.json"):
        RunManifest.parse(mblob[:cut], "runs/00000001/manifest.json")
    at = data.draw(st.integers(0, len(mblob) - 2))
    bad = bytearray(mblob)
    bad[at] ^= 1 << data.draw(st.integers(0, 6))
    with pytest.raises((CorruptionError, FormatVersionError)):
        RunManifest.parse(bytes(bad), "runs/00000001/manifest.json")


def test_same_parts_any_order_give_identical_manifest_bytes():
    p0 = make_part(3, 0, [(0, b"a" * 500), (1, b"b")], to_seq=2)
    p1 = make_part(3, 1, [(0, b"c")], to_seq=1)
    a = build_run_manifest(3, [p0, p1], SOURCE).serialize()
    b = build_run_manifest(3, [SegmentPart.parse(p1.serialize()), SegmentPart.parse(p0.serialize())], SOURCE).serialize()
    assert a == b


@SETTINGS
@given(groups=st.dictionaries(st.from_regex(r"[a-z][a-z0-9.-]{0,8}", fullmatch=True),
                              st.dictionaries(st.integers(0, 2**32 - 1), st.integers(-1, 2**62)), max_size=3))
def test_reader_group_positions_round_trip(groups):
    part = make_part(2, 0, [(0, b"a")], to_seq=1)
    run = build_run_manifest(2, [part], SOURCE, reader_groups=groups)
    blob = run.serialize()
    back = RunManifest.parse(blob, "m")
    assert back.reader_groups == groups and back.serialize() == blob
    # a run without groups keeps version 1's bytes for a fixed stream
    assert json.loads(blob)["version"] == (2 if groups else 1)
    assert ("reader_groups" in json.loads(blob)) == bool(groups)
    for g, pos in groups.items():
        assert parse_reader_group(serialize_reader_group(2, g, pos), "k") == (g, pos)


def test_reader_group_offsets_below_minus_one_are_corrupt():
    doc = json.loads(serialize_reader_group(1, "g", {0: 5}))
    doc["positions"] = {"0": -2}
    with pytest.raises(CorruptionError, match="offset"):
        parse_reader_group(seal(doc), "k")


def test_newer_version_is_refused_with_format_version_error():
    doc = json.loads(serialize_identity(SOURCE))
    doc["version"] = FORMAT_VERSION + 1
    with pytest.raises(FormatVersionError, match="archive.json.*upgrade"):
        parse_identity(seal(doc), "archive.json")
    assert parse_identity(serialize_identity(SOURCE))["source"] == SOURCE
    with pytest.raises(CorruptionError, match="expected a run"):
        RunManifest.parse(serialize_identity(SOURCE), "x")
    with pytest.raises(CorruptionError, match="not a stream-backend"):
        unseal(b'{"a":1}', "x")


def write_chain(fs, prefix, runs=3):
    fs.pipe_file(f"{prefix}/{layout.IDENTITY_KEY}", serialize_identity(SOURCE))
    prev, seq = None, 0
    written = {}
    for r in range(1, runs + 1):
        events = [(seq + i, bytes([r]) * (100 * i)) for i in range(4)]
        part = make_part(r, 0, events, to_seq=seq + 4)
        for o in SegmentPacker(events, 0, start_seq=seq, object_size=300, end_seq=seq + 4):
            fs.pipe_file(f"{prefix}/{o.key}", o.read())
        fs.pipe_file(f"{prefix}/{part.key}", part.serialize())
        m = build_run_manifest(r, [part], SOURCE, previous=prev)
        fs.pipe_file(f"{prefix}/{m.key}", m.serialize())
        written[r] = events
        prev, seq = m, seq + 4
    return written


def test_chain_walks_back_and_detects_a_replaced_run():
    fs = fsspec.filesystem("memory")
    prefix = "/chain-test"
    fs.rm(prefix, recursive=True) if fs.exists(prefix) else None
    written = write_chain(fs, prefix)
    reader = ArchiveReader(fs, prefix)
    assert reader.runs() == [1, 2, 3] and reader.latest_run() == 3
    chain = reader.chain()
    assert [m.run for m in chain] == [1, 2, 3]
    assert [m.previous and m.previous["run"] for m in chain] == [None, 1, 2]
    objs = segment_objects(chain, 0)
    assert [o.first_seq for o in objs][0] == 0 and objs[-1].end_seq == 12
    assert reader.segment_part(2, 0).to_doc() == chain[1].segment(0).to_doc()
    assert sum(o.payload_bytes for o in objs) == sum(len(p) for r in written.values() for _, p in r)
    # an incomplete run (parts but no manifest) is not a run yet
    fs.pipe_file(f"{prefix}/runs/00000004/segments/000000.json", b"{}")
    assert reader.runs() == [1, 2, 3]
    # replace run 2 by a different valid manifest: run 3's link no longer matches
    other = build_run_manifest(2, [make_part(2, 0, [(4, b"zz")], to_seq=8)], SOURCE, previous=chain[0])
    fs.pipe_file(f"{prefix}/{layout.run_manifest_key(2)}", other.serialize())
    with pytest.raises(CorruptionError, match="runs/00000002/manifest.json checksum"):
        reader.chain()
    fs.rm(f"{prefix}/{layout.run_manifest_key(1)}")
    with pytest.raises(NotFoundError):
        list(walk_chain(reader.read, 2))
    with pytest.raises(NotFoundError, match="no archive"):
        ArchiveReader(fs, "/nothing-here").identity()


def test_part_check_finds_gaps():
    part = make_part(1, 0, [(0, b"a" * 1000), (1, b"b")], to_seq=2)
    part.check()
    del part.objects[1]
    with pytest.raises(CorruptionError, match="expected"):
        part.check()


