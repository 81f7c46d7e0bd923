"""An export or import is fixed before any data moves (``plan_run``) and carried out as
planned (``execute``), whatever the stream does in between."""

from __future__ import annotations

from stream_backend.transfer.checkpoint import load_checkpoint
from stream_backend.transfer.export import ArchiveState, Exporter, ExportOptions
from stream_backend.transfer.progress import Progress
from stream_backend.transfer.targets import open_target

from support.transfer import append_events, cli_env, fill_stream, listing, run_cli


def _exporter(store, target):
    return Exporter(store, "demo", "src", target, ExportOptions(object_size=4096), progress=Progress("export", "none"))


def test_plan_fixes_the_run_and_execute_keeps_to_it(local_store, store_root, tmp_path):
    fill_stream(local_store, "demo", "src", segments=2, events=120, seed=8, max_size=3000)
    tails = {s.segment: s.tail_seq for s in local_store.stream_info("demo", "src").segments}
    target = open_target(f"file://{tmp_path}/a")
    exporter = _exporter(local_store, target)
    with exporter.plan_run() as plan:
        assert plan.result is None and plan.run == 1
        assert {cp.segment: (cp.from_seq, cp.to_seq) for cp in plan.shares} == {s: (0, t) for s, t in tails.items()}
        # the ends are on record before any data: a resumed attempt reads the same ones
        assert {s: load_checkpoint(target, s).to_seq for s in tails} == tails
        assert target.list("data") == {}
        # the leases are held for the whole plan: another exporter cannot start the run
        other = run_cli(["export", "stream://demo/src", str(tmp_path / "a")], cli_env(store_root))
        assert other.returncode == 75 and "being exported by" in other.stderr, other.stderr
        append_events(local_store, "demo", "src", 10, 100)  # the stream grows meanwhile
        done = exporter.execute(plan)
    assert done["run"] == 1 and done["complete"] and done["events"] == 120
    run1 = ArchiveState(target).manifest(1)
    assert {p.segment: p.to_seq for p in run1.segments} == tails
    # the leases went with the block: the next export takes what came after
    again = _exporter(local_store, target).run()
    assert again["run"] == 2 and again["events"] == 10


def test_nothing_to_export_is_a_plan_with_a_result(local_store, tmp_path):
    fill_stream(local_store, "demo", "src", segments=1, events=5, seed=1, max_size=100)
    target = open_target(f"file://{tmp_path}/a")
    assert _exporter(local_store, target).run()["complete"]
    with _exporter(local_store, target).plan_run() as plan:
        assert plan.shares == [] and plan.result["note"] == "archive is up to date"


def test_import_plan_holds_the_destination_and_execute_restores_it(local_store, store_root, tmp_path):
    from stream_backend.transfer.import_ import Importer, ImportOptions

    fill_stream(local_store, "demo", "src", segments=2, events=80, seed=9, max_size=2000)
    target = open_target(f"file://{tmp_path}/a")
    _exporter(local_store, target).run()
    importer = Importer(target, local_store, "demo", "copy", ImportOptions(), progress=Progress("import", "none"))
    with importer.plan_run() as plan:
        want = {s.segment: s.events for s in local_store.stream_info("demo", "src").segments}
        assert {s: ev for s, (ev, _b) in plan.plan.items()} == want and plan.have == {0: 0, 1: 0}
        # the destination exists, empty, and its writer is the plan's: a second import waits its turn
        assert local_store.stream_info("demo", "copy").events == 0
        other = run_cli(["import", str(tmp_path / "a"), "stream://demo/copy"], cli_env(store_root))
        assert other.returncode == 75, other.stderr
        done = importer.execute(plan)
    assert done["events"] == 80
    assert listing(local_store, "demo", "copy") == listing(local_store, "demo", "src")
