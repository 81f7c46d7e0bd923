"""Import writes nothing of a damaged object: each object is checked whole (stored size,
crc32c, segment and first seq against the manifest) before its first event is appended,
and each run's segment part file against the run manifest. A swapped, misnamed, extended
or truncated object stops the import with exit 65 naming it, the destination holds a
clean prefix of the source (no wrong event), and once the archive is repaired the same
import finishes."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.transfer import cli_env, fill_stream, listing, run_cli


def _archive(tmp_path, local_store):
    # same-sized events, so objects start at event boundaries; an object holds more events
    # than an import appends between two flushes (1000), so a check at the object's end
    # would come after some of its events were durable
    local_store.create_stream("d", "src", segments=2)
    with local_store.writer("d", "src") as w:
        for i in range(16000):
            w.append(i.to_bytes(4, "big") * 25, None, segment=i % 2)
    env = cli_env(local_store.root)
    arch = tmp_path / "arch"
    run_cli(["export", "stream://d/src", f"file://{arch}", "--object-size", "192KiB", "--progress", "none"], env, check=0)
    objs = {s: sorted((arch / "data" / f"{s:06d}").iterdir()) for s in (0, 1)}
    return env, arch, objs


def _is_clean_prefix(local_store, dest):
    src = listing(local_store, "d", "src")
    got = listing(local_store, "d", dest)
    for seg in (0, 1):
        a = [e for e in src if e[0] == seg]
        b = [e for e in got if e[0] == seg]
        assert b == a[: len(b)], f"segment {seg}: the destination holds an event the source does not have there"
    return got


def test_another_segments_object_in_place_writes_nothing_wrong(tmp_path, local_store):
    env, arch, objs = _archive(tmp_path, local_store)
    victim = objs[0][3]
    saved = victim.read_bytes()
    shutil.copyfile(objs[1][3], victim)  # same size, starts at an event of segment 1
    p = run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=65)
    assert victim.name in p.stderr and len(p.stderr.strip().splitlines()) == 1
    got = _is_clean_prefix(local_store, "dst")
    assert len([e for e in got if e[0] == 0]) < 8000
    assert "INCOMPLETE" in run_cli(["info", "stream://d/dst"], env, check=0).stdout

    victim.write_bytes(saved)  # the archive repaired: the same import resumes and finishes
    run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=0)
    assert listing(local_store, "d", "dst") == listing(local_store, "d", "src")


def test_swapped_objects_of_one_segment(tmp_path, local_store):
    env, arch, objs = _archive(tmp_path, local_store)
    a, b = objs[0][1], objs[0][3]
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    p = run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=65)
    assert a.name in p.stderr
    got = _is_clean_prefix(local_store, "dst")
    seg0 = [e for e in got if e[0] == 0]
    assert len(seg0) < 8000


def test_garbage_appended_to_an_object(tmp_path, local_store):
    env, arch, objs = _archive(tmp_path, local_store)
    with open(objs[0][2], "ab") as f:
        f.write(b"garbage")
    p = run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=65)
    assert objs[0][2].name in p.stderr and "manifest says" in p.stderr
    _is_clean_prefix(local_store, "dst")


def test_truncated_segment_part_stops_import_before_its_events(tmp_path, local_store):
    env, arch, _objs = _archive(tmp_path, local_store)
    part = arch / "runs" / "00000001" / "segments" / "000001.json"
    part.write_bytes(part.read_bytes()[:50])
    verify = run_cli(["verify", f"file://{arch}"], env, check=65)
    p = run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=65)
    assert "000001.json" in p.stderr and "000001.json" in verify.stderr
    got = _is_clean_prefix(local_store, "dst")
    assert not [e for e in got if e[0] == 1]


def test_missing_object_is_damage_for_import_and_verify_alike(tmp_path, local_store):
    env, arch, objs = _archive(tmp_path, local_store)
    objs[1][2].unlink()
    v = run_cli(["verify", f"file://{arch}"], env, check=65)
    p = run_cli(["import", f"file://{arch}", "stream://d/dst", "--progress", "none"], env, check=65)
    assert "missing" in v.stderr and "missing" in p.stderr
    _is_clean_prefix(local_store, "dst")


def test_round_trip_unchanged(tmp_path, local_store):
    fill_stream(local_store, "d", "mixed", segments=3, events=300, max_size=5000)
    env = cli_env(local_store.root)
    arch = Path(tmp_path) / "m"
    run_cli(["export", "stream://d/mixed", f"file://{arch}", "--object-size", "4KiB", "--progress", "none"], env, check=0)
    run_cli(["import", f"file://{arch}", "stream://d/mixed2", "--progress", "none"], env, check=0)
    assert listing(local_store, "d", "mixed2") == listing(local_store, "d", "mixed")
