"""What the generated manifests promise a pod, checked on the CLI itself: the final summary
lands where terminationMessagePath points, and read-only claims suffice (the store's for an
export, the archive's for an import). How the real Job and CronJob controllers run the
manifests is in test_control_plane.py and test_operator.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.jobs import EVENTS_PER_SEGMENT, EXPORT_OPTS, SEGMENTS, cli_executable, env_for, job_manifest


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
