"""The Jobs `stream-backend k8s job` prints, run by the REAL Job controller
(scripts/k8s-testbed: kube-apiserver, etcd and kube-controller-manager v1.37.2) on a
process node (tests/support/k8s_node.py): what a cluster does with our manifests, not
what we think it does."""

from __future__ import annotations

import json

import pytest

from support import wait_until
from support.jobs import archive_files, job_manifest, progress_lines, restored_as_source, uninterrupted_export

pytestmark = pytest.mark.slow


def _finished(batch, name, ns):
    job = batch.read_namespaced_job_status(name, ns)
    done = {c.type for c in job.status.conditions or [] if c.status == "True"} & {"Complete", "Failed"}
    return job if done else None


def _under_way(node, core, ns, name_prefix, exclude=()):
    """A running pod of the Job that has printed progress with work still to do."""
    for pod in core.list_namespaced_pod(ns).items:
        if (pod.metadata.name.startswith(name_prefix) and pod.status.phase == "Running"
                and pod.metadata.deletion_timestamp is None and pod.metadata.name not in exclude):
            lines = [p for p in progress_lines(node.log_of(pod.metadata.uid)) if p.get("event") == "progress"]
            if any(p.get("total_events") and p["done_events"] < p["total_events"] for p in lines):
                return pod
    return None


def test_indexed_export_survives_a_deleted_and_an_evicted_pod(k8s_cluster, k8s_namespace, process_node,
                                                              source_store, tmp_path):
    """A pod deleted mid-way (SIGTERM: exit 75) and another evicted through the Eviction
    API (DisruptionTarget) are replaced and resume; the Job completes without counting a
    failure, and the archive equals an uninterrupted export key for key, byte for byte."""
    from kubernetes import client

    reference = tmp_path / "reference" / "archive"
    uninterrupted_export(source_store, reference)
    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    manifest = job_manifest("export", "stream://k8s/events", archive, 2, 2)
    name = manifest["metadata"]["name"]
    node = process_node(claims={"streams": source_store, "backups": archive.parent},
                        env={"STREAM_BACKEND_PROGRESS_INTERVAL": "0.02"})
    api = k8s_cluster.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(k8s_namespace, manifest)

    deleted = wait_until("a pod under way", lambda: _under_way(node, core, k8s_namespace, name))
    core.delete_namespaced_pod(deleted.metadata.name, k8s_namespace)
    evicted = wait_until("another pod under way",
                    lambda: _under_way(node, core, k8s_namespace, name, exclude={deleted.metadata.name}))
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": evicted.metadata.name, "namespace": k8s_namespace}}
    core.create_namespaced_pod_eviction(evicted.metadata.name, k8s_namespace, eviction)

    job = wait_until("the Job to finish", lambda: _finished(batch, name, k8s_namespace), timeout=300, every=0.5)
    conditions = {c.type: c for c in job.status.conditions}
    assert "Complete" in conditions, {t: (c.reason, c.message) for t, c in conditions.items()}
    assert not job.status.failed, "a drained or deleted pod must not count against backoffLimit"
    assert job.status.succeeded == 2
    exits = {h["uid"]: h["exit"] for h in node.history}
    assert exits[deleted.metadata.uid] == 75, node.history
    # the evicted pod paused (75), or had just finished its index when the eviction came (0);
    # never killed mid-way or at exit (143), which the Job would count as a failure
    assert exits[evicted.metadata.uid] in (0, 75) and set(exits.values()) <= {0, 75}, node.history
    assert sorted(exits.values()).count(0) == 2  # one finished pod per index
    assert archive_files(archive) == archive_files(reference)


def test_bad_usage_fails_the_job_at_once(k8s_cluster, k8s_namespace, process_node, source_store, tmp_path):
    """An unknown stream (exit 66) fails the Job at once through the FailJob rule,
    with the CLI's one-line error as the pod's termination message: no retry storm."""
    from kubernetes import client

    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    manifest = job_manifest("export", "stream://k8s/no-such-stream", archive, None, None)
    name = manifest["metadata"]["name"]
    node = process_node(claims={"streams": source_store, "backups": archive.parent})
    api = k8s_cluster.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(k8s_namespace, manifest)
    job = wait_until("the Job to fail", lambda: _finished(batch, name, k8s_namespace), timeout=120, every=0.2)
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "PodFailurePolicy", failed
    assert len(node.history) == 1  # not retried
    (pod,) = core.list_namespaced_pod(k8s_namespace, label_selector=f"job-name={name}").items
    terminated = pod.status.container_statuses[0].state.terminated
    message = json.loads(terminated.message)
    assert terminated.exit_code == message["exit_code"] and message["event"] == "error"
    assert "no-such-stream" in message["error"] and "\n" not in message["error"]


def test_a_killed_pod_is_counted_once_and_its_replacement_resumes(k8s_cluster, k8s_namespace, process_node,
                                                                   source_store, tmp_path):
    """kill -9 of a pod's process (an OOM kill, a crash) mid-way, in an Indexed export and
    then in an Indexed import: the Job controller counts that one failure, its replacement
    (another pod name, so it waits out the dead pod's lease: exit 75, not counted) resumes,
    the archive equals an uninterrupted export, and the import restores every event once."""
    from kubernetes import client

    reference = tmp_path / "reference" / "archive"
    uninterrupted_export(source_store, reference)
    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    restored = tmp_path / "restored-store"
    restored.mkdir()
    node = process_node(claims={"streams": source_store, "backups": archive.parent},
                        env={"STREAM_BACKEND_PROGRESS_INTERVAL": "0.02", "STREAM_BACKEND_LEASE_TTL": "4"})
    api = k8s_cluster.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)

    def run_killing_one(manifest):
        name = manifest["metadata"]["name"]
        batch.create_namespaced_job(k8s_namespace, manifest)
        victim = wait_until("a pod under way", lambda: _under_way(node, core, k8s_namespace, name))
        node.kill(victim.metadata.uid)
        job = wait_until("the Job to finish", lambda: _finished(batch, name, k8s_namespace), timeout=300, every=0.5)
        conditions = {c.type: c for c in job.status.conditions}
        assert "Complete" in conditions, {t: (c.reason, c.message) for t, c in conditions.items()}
        assert job.status.failed == 1, "the kill is one counted failure, the lease waits none"
        assert {h["uid"]: h["exit"] for h in node.history}[victim.metadata.uid] == 137

    run_killing_one(job_manifest("export", "stream://k8s/events", archive, 3, 3))
    assert archive_files(archive) == archive_files(reference)

    node.claims["streams"] = restored  # the import's destination claim
    run_killing_one(job_manifest("import", "stream://k8s/restored", archive, 3, 2))
    assert restored_as_source(source_store, restored)
