"""The generated Indexed Job, run the way the Job controller runs it, under chaos.

No cluster here: ``jobsim.JobSimulation`` starts one process per index with the
manifest's args and env (``JOB_COMPLETION_INDEX`` set, ``--shards N``), SIGTERMs and
SIGKILLs pods at seeded random moments, and replaces failed pods as the manifest's
podFailurePolicy says (exit 75 and disruptions ignored, other failures counted against
backoffLimit). The archive it leaves must equal one uninterrupted export, key for key
and byte for byte; a SIGTERMed pod must exit 75 and a finished one 0.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stream_backend.cli import main
from stream_backend.k8s.jobs import STORE_MOUNT

from support.jobs import (EVENTS_PER_SEGMENT, EXPORT_OPTS, SEGMENTS, archive_files, cli_executable, env_for,
                          job_manifest, progress_lines, uninterrupted_export)

from .jobsim import JobSimulation


def check_exit_codes(results, op: str, completions: int) -> None:
    """SIGTERM -> 75 (or 0 if the work was already done), SIGKILL -> 137, else 0 or 75;
    every index ends with exactly one success; the chaos really happened."""
    for r in results:
        if r.fate.startswith("sigterm") and r.signalled:
            assert r.exit_code in (75, 0, 143), (r.exit_code, r.stderr)
            if r.exit_code == 0:
                assert '"event":"done"' in r.stdout.replace(" ", "")
            elif r.exit_code == 143:
                # the signal came after the transfer had ended and the CLI had restored the
                # default handler: while exiting from an error such as a busy destination
                # writer, or after the last byte. The policy ignores it like 75.
                assert r.action == "Ignore"
            else:
                assert r.action == "Ignore"
                # paused by the signal, or (import into the one-writer local store) the pod
                # had already found the destination's writer busy when the signal landed
                assert ("resume with: stream-backend " + op in r.stderr
                        or "another writer holds the stream" in r.stderr), r.stderr
        elif r.fate.startswith("sigkill") and r.signalled:
            # 0 or 75 only when the CLI had ended on its own as the kill was sent (a shard
            # whose share was done while others' were not exits 75 with its done line)
            ended = '"event":"done"' in (r.stdout + r.stderr).replace(" ", "")
            assert r.exit_code == 137 or (r.exit_code in (0, 75) and ended), (r.exit_code, r.stderr[-2000:])
        else:
            # an undisturbed pod finishes (0) or, right after a SIGKILLed predecessor on
            # another host, finds its lease still held (75): never anything else
            assert r.exit_code in (0, 75), (r.fate, r.exit_code, r.stderr)
        for line in progress_lines(r.stderr):
            assert line["event"] == "progress" and line["op"] == op
    finished = [r for r in results if r.exit_code == 0]
    assert sorted(r.index for r in finished) == list(range(completions))
    # the termination message: the final summary of a finished pod, the pause of a paused one
    for r in finished:
        assert r.termination_message, f"pod {r.index} wrote no termination message"
        message = json.loads(r.termination_message)
        assert message["event"] == "done" and message["op"] == op
    for r in results:
        if r.exit_code == 75 and r.fate.startswith("sigterm") and r.signalled:
            message = json.loads(r.termination_message)
            if message["event"] == "error":  # busy destination writer when the signal landed
                assert message["exit_code"] == 75 and "another writer holds" in message["error"], message
            else:
                assert message["event"] == "paused" and message["resume"].startswith("stream-backend " + op)
    paused = [r for r in results if r.exit_code == 75 and r.fate.startswith("sigterm")]
    killed = [r for r in results if r.exit_code == 137]
    assert paused and killed, f"the chaos plan exercised too little: {[(r.fate, r.exit_code) for r in results]}"


@pytest.mark.slow
@pytest.mark.parametrize("seed,shards,parallelism,hostnames", [
    (1, 3, 3, False), (7, 5, 2, True), (11, None, None, True),
])
def test_export_job_under_chaos_equals_uninterrupted(source_store, tmp_path, seed, shards, parallelism, hostnames):
    """``hostnames``: every pod has a hostname of its own, as in a cluster, so a SIGKILLed
    pod's lease cannot be recognised as dead and its replacement waits for the lease to
    expire (exit 75, retried without counting; TTL shortened to 4 s here)."""
    reference = tmp_path / "reference" / "archive"
    ref_summary = uninterrupted_export(source_store, reference)
    assert ref_summary["complete"] is True

    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    manifest = job_manifest("export", "stream://k8s/events", archive, shards, parallelism)
    spec = manifest["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STREAM_BACKEND_ROOT"] == STORE_MOUNT  # the claim's mount point ...
    sim = JobSimulation(
        spec, tmp_path,
        # ... which is this directory here; progress every 20 ms so signals land mid-transfer
        env_overrides={"STREAM_BACKEND_ROOT": str(source_store), "STREAM_BACKEND_PROGRESS_INTERVAL": "0.02",
                       "STREAM_BACKEND_LEASE_TTL": "4"},
        seed=seed, chaos_budget=10 if shards else 6, pod_hostnames=hostnames,
    )
    results = sim.run()
    check_exit_codes(results, "export", shards or 1)
    # totals are known only once a pod holds its leases
    killed_holding_leases = [r for r in results if r.exit_code == 137
                             and any(p.get("total_events") for p in progress_lines(r.stderr))]
    if hostnames and killed_holding_leases:
        # a replacement met the dead pod's lease, was told to retry, and got through later
        assert any(r.exit_code == 75 and "being exported by" in r.stderr for r in results)

    got, want = archive_files(archive), archive_files(reference)
    assert sorted(got) == sorted(want), (set(got) ^ set(want))
    for key in want:
        assert got[key] == want[key], key
    assert not any(k.startswith(("checkpoints/", "leases/")) for k in got)
    assert any(k.endswith("manifest.json") and k.startswith("runs/") for k in got)


def test_final_summary_becomes_the_termination_message(source_store, tmp_path):
    """The manifest sets STREAM_BACKEND_TERMINATION_LOG to the container's
    terminationMessagePath; the CLI writes its final JSON summary there, which
    `kubectl get pod -o jsonpath='{.status.containerStatuses[0].state.terminated.message}'` shows."""
    archive = tmp_path / "backups" / "archive"
    manifest = job_manifest("export", "stream://k8s/events", archive, None, None)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["STREAM_BACKEND_TERMINATION_LOG"] == container["terminationMessagePath"]
    log = tmp_path / "termination-log"
    run_env = dict(env_for(source_store), STREAM_BACKEND_TERMINATION_LOG=str(log))
    proc = subprocess.run([cli_executable(), *container["args"]], env=run_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    stdout_summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert log.exists(), "the transfer CLI wrote no termination message"
    message = json.loads(log.read_text())
    assert len(log.read_bytes()) <= 4096
    assert message["event"] == "done" and message["complete"] is True
    assert message["manifest_checksum"] == stdout_summary["manifest_checksum"]


def read_stream(root: Path, scope: str, stream: str) -> dict:
    from stream_backend.stores.local import LocalStore

    store = LocalStore(root=str(root))
    try:
        info = store.stream_info(scope, stream)
        return {s.segment: [(e.payload, e.routing_key) for e in store.read_events(scope, stream, s.segment)]
                for s in info.segments}
    finally:
        store.close()


@pytest.mark.slow
def test_import_job_under_chaos_restores_every_event_once(source_store, tmp_path):
    archive = tmp_path / "backups" / "archive"
    summary = uninterrupted_export(source_store, archive)
    dest_root = tmp_path / "restored-store"
    dest_root.mkdir()
    manifest = job_manifest("import", "stream://k8s/restored", archive, 3, 2)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    archive_mount = next(m for m in container["volumeMounts"] if m["name"] == "archive")
    assert archive_mount["readOnly"] is True  # an import only reads the archive ...
    sim = JobSimulation(
        manifest["spec"], tmp_path,
        env_overrides={"STREAM_BACKEND_ROOT": str(dest_root), "STREAM_BACKEND_PROGRESS_INTERVAL": "0.02"},
        seed=5, chaos_budget=8,
    )
    results = sim.run()
    check_exit_codes(results, "import", 3)
    assert read_stream(dest_root, "k8s", "restored") == read_stream(source_store, "k8s", "events")


@pytest.mark.slow
def test_cronjob_runs_export_incrementals(source_store, tmp_path):
    """Each scheduled run of the CronJob's jobTemplate appends a run to the archive with
    what was appended since; a run disturbed by SIGTERM/SIGKILL still completes, and the
    chain verifies against the stream event for event. A standby CronJob importing after
    each run keeps a copy of the stream equal to the source."""
    from stream_backend.stores.local import LocalStore

    archive = tmp_path / "backups" / "archive"
    result = CliRunner().invoke(main, [
        "k8s", "cronjob", "export", "stream://k8s/events", f"file://{archive}", "--schedule", "*/15 * * * *",
        "--pvc", "streams", "--archive-pvc", "backups", "--archive-mount", str(archive.parent), *EXPORT_OPTS])
    assert result.exit_code == 0, result.output
    cron = yaml.safe_load(result.stdout)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job_spec = cron["spec"]["jobTemplate"]["spec"]
    overrides = {"STREAM_BACKEND_ROOT": str(source_store), "STREAM_BACKEND_PROGRESS_INTERVAL": "0.02"}
    # the standby side: a CronJob importing each new run into a copy of the stream
    standby_root = tmp_path / "standby-store"
    standby_root.mkdir()
    result = CliRunner().invoke(main, [
        "k8s", "cronjob", "import", f"file://{archive}", "stream://k8s/standby", "--schedule", "5,20,35,50 * * * *",
        "--pvc", "standby", "--archive-pvc", "backups", "--archive-mount", str(archive.parent)])
    assert result.exit_code == 0, result.output
    import_spec = yaml.safe_load(result.stdout)["spec"]["jobTemplate"]["spec"]
    rng = random.Random(3)
    for n in (1, 2, 3):
        if n > 1:  # the application appends between two scheduled runs
            store = LocalStore(root=str(source_store))
            with store.writer("k8s", "events") as w:
                for i in range(40):
                    w.append(rng.randbytes(rng.choice([0, 500, 70000, 300000])), segment=i % SEGMENTS)
            store.close()
        workdir = tmp_path / f"run{n}"
        workdir.mkdir()
        results = JobSimulation(job_spec, workdir, overrides, seed=n, chaos_budget=3, chaos=n == 2).run()
        assert [r.exit_code for r in results][-1] == 0
        assert (archive / "runs" / f"{n:08d}" / "manifest.json").exists()
        assert not (archive / "runs" / f"{n + 1:08d}").exists()
        (workdir / "standby").mkdir()
        imported = JobSimulation(import_spec, workdir / "standby", {"STREAM_BACKEND_ROOT": str(standby_root)},
                                 seed=n, chaos=False).run()
        assert [r.exit_code for r in imported] == [0]
        assert json.loads(imported[0].stdout.strip().splitlines()[-1])["runs"] == n
        assert read_stream(standby_root, "k8s", "standby") == read_stream(source_store, "k8s", "events")
    proc = subprocess.run([cli_executable(), "verify", f"file://{archive}", "--against", "stream://k8s/events"],
                          env=env_for(source_store), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verified = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verified["ok"] is True and verified["runs"] == 3
    assert verified["events"] == SEGMENTS * EVENTS_PER_SEGMENT + 80


def run_with_readonly_bind(src: Path, mountpoint: Path, argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``argv`` in a private mount namespace where ``src`` is bind-mounted read-only at
    ``mountpoint`` — what a readOnly volumeMount gives the pod."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && '
              'if touch "$2/.probe" 2>/dev/null; then echo "mount is writable" >&2; exit 99; fi; '
              'shift 2; exec "$@"')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(src), str(mountpoint), *argv],
                          env=env, capture_output=True, text=True, timeout=120)


def test_read_only_mounts_suffice(source_store, tmp_path):
    """The manifests mount the store claim read-only for an export and the archive claim
    read-only for an import: the CLI must need no more than that."""
    ro_store = tmp_path / "ro-store"
    archive = tmp_path / "archive"
    env = dict(env_for(ro_store))
    proc = run_with_readonly_bind(
        source_store, ro_store,
        [cli_executable(), "export", "stream://k8s/events", f"file://{archive}", "--progress", "none", *EXPORT_OPTS], env)
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert exported["complete"] and exported["events"] == SEGMENTS * EVENTS_PER_SEGMENT

    ro_archive = tmp_path / "ro-archive"
    dest_root = tmp_path / "dest"
    proc = run_with_readonly_bind(
        archive, ro_archive,
        [cli_executable(), "import", f"file://{ro_archive}", "stream://k8s/copy", "--progress", "none"],
        env_for(dest_root))
    assert proc.returncode == 0, proc.stderr
    assert read_stream(dest_root, "k8s", "copy") == read_stream(source_store, "k8s", "events")
