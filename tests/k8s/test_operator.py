"""The operator on the real control plane: StreamExport resources become Jobs the real
Job controller runs (on the process node), and their status tells what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_backend.k8s.resources import GROUP, VERSION, definitions
from support import wait_until
from support.jobs import (EVENTS_PER_SEGMENT, EXPORT_OPTS, SEGMENTS, archive_files, progress_lines, restored_as_source,
                          uninterrupted_export)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def crds(k8s_cluster):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(k8s_cluster.api_client())
    for crd in definitions():
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    for crd in definitions():
        wait_until(f"CRD {crd['metadata']['name']} established", lambda: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []))
    _wait_for_garbage_collector(k8s_cluster.api_client())
    return definitions()


def _wait_for_garbage_collector(api) -> None:
    """The garbage collector learns new kinds on its 30 s discovery sync: until then a
    deleted resource's Jobs stay. Proven once, with a ConfigMap owned by a throwaway
    StreamExport (in a cluster the CRDs are installed long before any resource)."""
    from kubernetes import client

    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "streamexports", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamExport", "metadata": {"generateName": "gc-probe-"},
        "spec": {"source": "stream://a/b", "archive": "s3://b/p"}})
    meta = owner["metadata"]
    ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamExport", "name": meta["name"], "uid": meta["uid"]}
    core.create_namespaced_config_map("default", {"metadata": {"name": meta["name"], "ownerReferences": [ref]}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "streamexports", meta["name"])
    wait_until("the garbage collector to know StreamExport", lambda: meta["name"] not in
          [c.metadata.name for c in core.list_namespaced_config_map("default").items], timeout=180, every=0.5)


@pytest.fixture(scope="session")
def operator_kubeconfig(k8s_cluster, crds, tmp_path_factory):
    """A kubeconfig with the token of the operator's ServiceAccount, bound to the
    ClusterRole `stream-backend k8s install` prints: the operator runs with exactly the
    rights it ships with, so a missing one fails these tests."""
    import json

    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from stream_backend.k8s.install import DEFAULT_NAMESPACE, OPERATOR, operator_rbac

    api = k8s_cluster.api_client()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    create = {"ServiceAccount": lambda o: core.create_namespaced_service_account(DEFAULT_NAMESPACE, o),
              "ClusterRole": rbac.create_cluster_role, "ClusterRoleBinding": rbac.create_cluster_role_binding}
    for obj in [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEFAULT_NAMESPACE}}]:
        try:
            core.create_namespace(obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
    for obj in operator_rbac(DEFAULT_NAMESPACE):
        create[obj["kind"]](obj)
    token = core.create_namespaced_service_account_token(
        OPERATOR, DEFAULT_NAMESPACE, {"spec": {"expirationSeconds": 24 * 3600}}).status.token
    config = json.loads(k8s_cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def operator(operator_kubeconfig, k8s_namespace, tmp_path):
    """`stream-backend operator` for the test's namespace, as a process of its own."""
    log = open(tmp_path / "operator.log", "wb")
    env = dict(os.environ, KUBECONFIG=str(operator_kubeconfig), STREAM_BACKEND_OPERATOR_REFRESH="0.5",
               STREAM_BACKEND_IMAGE="registry.example/stream-backend:test")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("stream-backend")), "operator", "-n", k8s_namespace],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _export_resource(name: str, archive: Path, **spec) -> dict:
    opts = dict(zip(EXPORT_OPTS[::2], EXPORT_OPTS[1::2]))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamExport", "metadata": {"name": name},
            "spec": {"source": "stream://k8s/events", "archive": f"file://{archive}", "pvc": "streams",
                     "archivePvc": "backups", "archiveMount": str(archive.parent),
                     "objectSize": opts["--object-size"], "partSize": opts["--part-size"],
                     "parallel": int(opts["--parallel"]), **spec}}


def _status(custom, ns, name) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "streamexports", name).get("status") or {}


def _reasons(core, ns, name) -> list[str]:
    events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [e.reason for e in sorted(events, key=lambda e: e.metadata.creation_timestamp)]


def test_stream_export_runs_to_succeeded_and_owns_its_job(k8s_cluster, k8s_namespace, operator, process_node,
                                                          source_store, tmp_path):
    from kubernetes import client

    reference = tmp_path / "reference" / "archive"
    uninterrupted_export(source_store, reference)
    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    process_node(claims={"streams": source_store, "backups": archive.parent})
    api = k8s_cluster.api_client()
    custom, batch, core = client.CustomObjectsApi(api), client.BatchV1Api(api), client.CoreV1Api(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports",
                                           _export_resource("nightly", archive, shards=2))

    status = wait_until("phase Succeeded", lambda: (s := _status(custom, k8s_namespace, "nightly")).get("phase")
                   in ("Succeeded", "Failed") and s)
    assert status["phase"] == "Succeeded", status
    assert status["events"] == SEGMENTS * EVENTS_PER_SEGMENT and status["run"] == 1 and status["complete"]
    assert status["progress"]["percent"] == 100.0
    assert [s["exitCode"] for s in status["shards"]] == [0, 0]
    assert archive_files(archive) == archive_files(reference)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Succeeded"] == "True" and conditions["Pending"] == "False"
    assert {"Created", "Succeeded"} <= set(_reasons(core, k8s_namespace, "nightly"))
    printed = k8s_cluster.kubectl("get", "streamexports", "-n", k8s_namespace).stdout.split("\n")
    assert printed[0].split() == ["NAME", "PHASE", "PERCENT", "ETA", "RUN", "LAST", "RUN", "AGE"]
    assert printed[1].split()[:4] == ["nightly", "Succeeded", "100", "1"]

    job = status["jobName"]
    custom.delete_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", "nightly")
    wait_until("the garbage collector to delete the Job", lambda: job not in
          [j.metadata.name for j in batch.list_namespaced_job(k8s_namespace).items], timeout=60)


def test_suspend_pauses_mid_way_and_resume_finishes_the_same_archive(k8s_cluster, k8s_namespace, operator,
                                                                      process_node, source_store, tmp_path):
    from kubernetes import client

    reference = tmp_path / "reference" / "archive"
    uninterrupted_export(source_store, reference)
    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    node = process_node(claims={"streams": source_store, "backups": archive.parent},
                        env={"STREAM_BACKEND_PROGRESS_INTERVAL": "0.02"})
    api = k8s_cluster.api_client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports",
                                           _export_resource("paused", archive))

    def under_way():
        for pod in core.list_namespaced_pod(k8s_namespace).items:
            lines = [p for p in progress_lines(node.log_of(pod.metadata.uid)) if p.get("event") == "progress"]
            if any(p.get("total_events") and p["done_events"] < p["total_events"] for p in lines):
                return pod
        return None

    pod = wait_until("the export under way", under_way)
    custom.patch_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", "paused",
                                          {"spec": {"suspend": True}})
    status = wait_until("phase Paused", lambda: (s := _status(custom, k8s_namespace, "paused")).get("phase") == "Paused"
                   and s, timeout=60)
    assert not core.list_namespaced_pod(k8s_namespace, field_selector="status.phase=Running").items
    progress = wait_until("the paused pod's progress", lambda: _status(custom, k8s_namespace, "paused").get("progress"),
                          timeout=30)  # reported by the pod itself, through its ServiceAccount
    assert 0 < progress["percent"] < 100 and 0 < progress["eventsDone"] < progress["eventsTotal"], progress
    assert progress["eventsTotal"] == SEGMENTS * EVENTS_PER_SEGMENT
    assert {h["uid"]: h["exit"] for h in node.history}[pod.metadata.uid] == 75  # paused at a checkpoint
    custom.patch_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", "paused",
                                          {"spec": {"suspend": False}})
    status = wait_until("phase Succeeded", lambda: (s := _status(custom, k8s_namespace, "paused")).get("phase")
                   in ("Succeeded", "Failed") and s)
    assert status["phase"] == "Succeeded", status
    assert archive_files(archive) == archive_files(reference)
    assert {"Suspended", "Paused", "Resumed", "Succeeded"} <= set(_reasons(core, k8s_namespace, "paused"))


def test_a_spec_the_generator_refuses_fails_with_one_line(k8s_cluster, k8s_namespace, operator, tmp_path):
    from kubernetes import client

    api = k8s_cluster.api_client()
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    resource = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamExport", "metadata": {"name": "nowhere"},
                "spec": {"source": "stream://k8s/events", "archive": "memory://gone", "pvc": "streams"}}
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", resource)
    status = wait_until("phase Failed", lambda: (s := _status(custom, k8s_namespace, "nowhere")).get("phase") and s,
                   timeout=60)
    assert status["phase"] == "Failed" and "memory" in status["lastError"] and "\n" not in status["lastError"]
    assert not batch.list_namespaced_job(k8s_namespace).items


def test_kustomization_sets_one_image_for_the_operator_and_its_jobs(k8s_cluster, tmp_path):
    """`kubectl apply -k deploy/` with the user's image: the operator runs it and makes
    its Jobs with it (the replacement in deploy/kustomization.yaml)."""
    import shutil

    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    work = tmp_path / "deploy"
    shutil.copytree(deploy, work, ignore=shutil.ignore_patterns("examples"))
    text = (work / "kustomization.yaml").read_text()
    (work / "kustomization.yaml").write_text(text.replace('newTag: "0.1.0"', 'newTag: "9.9.9"'))
    out = k8s_cluster.kubectl("kustomize", str(work)).stdout
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":9.9.9")
    assert {e["name"]: e["value"] for e in container["env"]}["STREAM_BACKEND_IMAGE"] == container["image"]


def test_operator_killed_mid_run_loses_nothing_then_an_import_restores(
        k8s_cluster, k8s_namespace, operator_kubeconfig, process_node, source_store, tmp_path):
    """SIGKILL the operator while its export runs: a new one picks the resource up and
    the status reaches Succeeded. A StreamImport of that archive then restores every event
    into a new stream."""
    import signal

    from kubernetes import client

    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    restored = tmp_path / "restored-store"
    restored.mkdir()
    node = process_node(claims={"streams": source_store, "backups": archive.parent, "restored": restored},
                        env={"STREAM_BACKEND_PROGRESS_INTERVAL": "0.05"})
    api = k8s_cluster.api_client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def start_operator(name):
        log = open(tmp_path / f"{name}.log", "wb")
        env = dict(os.environ, KUBECONFIG=str(operator_kubeconfig), STREAM_BACKEND_OPERATOR_REFRESH="0.5",
                   STREAM_BACKEND_IMAGE="registry.example/stream-backend:test")
        return subprocess.Popen([str(Path(sys.executable).with_name("stream-backend")), "operator",
                                 "-n", k8s_namespace], env=env, stdout=log, stderr=subprocess.STDOUT)

    first = start_operator("operator-1")
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports",
                                           _export_resource("killed", archive))
    wait_until("the export's pod", lambda: node.history)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = start_operator("operator-2")
    try:
        status = wait_until("phase Succeeded", lambda: (s := _status(custom, k8s_namespace, "killed")).get("phase")
                            in ("Succeeded", "Failed") and s)
        assert status["phase"] == "Succeeded" and status["events"] == SEGMENTS * EVENTS_PER_SEGMENT, status
        restore = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamImport", "metadata": {"name": "restore"},
                   "spec": {"archive": f"file://{archive}", "destination": "stream://k8s/restored", "pvc": "restored",
                            "archivePvc": "backups", "archiveMount": str(archive.parent)}}
        custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamimports", restore)
        imported = wait_until("the import to finish", lambda: (s := custom.get_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, "streamimports", "restore").get("status") or {}).get("phase")
            in ("Succeeded", "Failed") and s)
        assert imported["phase"] == "Succeeded", imported
        assert imported["events"] == SEGMENTS * EVENTS_PER_SEGMENT
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert restored_as_source(source_store, restored)
    assert {"Created", "Succeeded"} <= set(_reasons(core, k8s_namespace, "restore"))


def _settled(custom, ns, name, plural="streamexports", **match):
    def check():
        s = custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name).get("status") or {}
        return s if s.get("phase") in ("Succeeded", "Failed") and all(s.get(k) == v for k, v in match.items()) else None
    return check


def test_bad_specs_fail_with_one_line_and_no_retry(k8s_cluster, k8s_namespace, operator, process_node, source_store,
                                                  tmp_path):
    """An unknown stream, an archive that cannot be created and a missing Secret: each is
    Failed with its one-line reason, after one attempt (no pod retried every 10, 20, 40 s)."""
    from kubernetes import client

    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "a-file").write_text("not a directory")
    node = process_node(claims={"streams": source_store, "backups": backups})
    api = k8s_cluster.api_client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    bad = {
        "unknown-stream": _export_resource("unknown-stream", backups / "one", source="stream://k8s/nosuch"),
        "unwritable": _export_resource("unwritable", backups / "a-file" / "archive", archiveMount=str(backups)),
        "no-secret": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamExport", "metadata": {"name": "no-secret"},
                      "spec": {"source": "stream://k8s/events", "archive": "s3://bucket/events", "pvc": "streams",
                               "endpointUrl": "http://127.0.0.1:9", "s3Secret": "absent-creds"}},
    }
    for resource in bad.values():
        custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", resource)
    failed = {name: wait_until(f"{name} Failed", _settled(custom, k8s_namespace, name), timeout=90) for name in bad}
    for name, status in failed.items():
        assert status["phase"] == "Failed" and "\n" not in status["lastError"], (name, status)
        assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
        assert "Failed" in _reasons(core, k8s_namespace, name)
    assert "k8s/nosuch" in failed["unknown-stream"]["lastError"]
    assert "cannot create archive directory" in failed["unwritable"]["lastError"]
    assert failed["no-secret"]["lastError"] == 'CreateContainerConfigError: secret "absent-creds" not found'
    attempts = {}
    for pod in core.list_namespaced_pod(k8s_namespace).items:
        owner = pod.metadata.labels.get(f"{GROUP}/streamexport")
        attempts[owner] = attempts.get(owner, 0) + 1
    assert attempts == {name: 1 for name in bad}, attempts
    assert sorted(h["exit"] for h in node.history) == [66, 66]


def test_a_schedule_runs_incrementals_and_an_import_restores_a_point_in_time(
        k8s_cluster, k8s_namespace, operator, process_node, source_store, tmp_path):
    """`schedule` makes a CronJob: the real CronJob controller starts run 1; new events,
    then a run started by hand (`kubectl create job --from=cronjob/...`), make run 2 with
    only the new events; a StreamImport with `toTime` between the runs restores exactly
    what was there at that time."""
    import datetime as dt

    from kubernetes import client

    from stream_backend.stores.local import LocalStore

    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    restored = tmp_path / "restored-store"
    restored.mkdir()
    process_node(claims={"streams": source_store, "backups": archive.parent, "restored": restored})
    api = k8s_cluster.api_client()
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports",
                                           _export_resource("minutely", archive, schedule="* * * * *"))
    first = wait_until("the first scheduled run", _settled(custom, k8s_namespace, "minutely", run=1), timeout=150)
    assert first["phase"] == "Succeeded" and first["kind"] == "CronJob" and first["lastRunTime"], first
    assert first["events"] == SEGMENTS * EVENTS_PER_SEGMENT
    cronjob = first["jobName"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamexports", "minutely",
                                          {"spec": {"suspend": True}})
    wait_until("the CronJob suspended", lambda: batch.read_namespaced_cron_job(cronjob, k8s_namespace).spec.suspend)
    wait_until("no run active", lambda: not any(j.status.active for j in batch.list_namespaced_job(k8s_namespace).items))
    before = _status(custom, k8s_namespace, "minutely")["run"]

    cut = dt.datetime.now(dt.timezone.utc)
    wait_until("the clock past the cut", lambda: dt.datetime.now(dt.timezone.utc) > cut)  # coarse clocks
    store = LocalStore(root=str(source_store))
    with store.writer("k8s", "events") as w:
        for i in range(30):
            w.append(b"late-%d" % i, routing_key="late", segment=i % SEGMENTS)
    store.close()
    k8s_cluster.kubectl("create", "job", f"--from=cronjob/{cronjob}", f"{cronjob}-now", "-n", k8s_namespace)
    second = wait_until("the run started by hand", _settled(custom, k8s_namespace, "minutely", run=before + 1),
                        timeout=120)
    assert second["phase"] == "Succeeded" and second["events"] == 30, second
    assert second["lastRunTime"] > first["lastRunTime"]

    restore = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StreamImport", "metadata": {"name": "as-of-cut"},
               "spec": {"archive": f"file://{archive}", "destination": "stream://k8s/restored", "pvc": "restored",
                        "archivePvc": "backups", "archiveMount": str(archive.parent),
                        "toTime": cut.isoformat().replace("+00:00", "Z")}}
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamimports", restore)
    imported = wait_until("the point-in-time import", _settled(custom, k8s_namespace, "as-of-cut", "streamimports"))
    assert imported["phase"] == "Succeeded", imported
    assert restored_as_source(source_store, restored, keep=lambda e: e.routing_key != "late")

    # a standby copy catches up: the same destination, imported again to the archive's end
    catch_up = dict(restore, metadata={"name": "catch-up"}, spec={k: v for k, v in restore["spec"].items()
                                                                 if k != "toTime"})
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "streamimports", catch_up)
    imported = wait_until("the catch-up import", _settled(custom, k8s_namespace, "catch-up", "streamimports"))
    assert imported["phase"] == "Succeeded" and imported["events"] == SEGMENTS * EVENTS_PER_SEGMENT + 30, imported
    assert "complete" not in imported  # an export's word: an import's summary does not say it
    assert restored_as_source(source_store, restored)



def test_a_request_over_http_becomes_a_resource_the_operator_runs(k8s_cluster, k8s_namespace, operator, process_node,
                                                                  source_store, tmp_path):
    """`serve --kubernetes NS`: POST /v1/exports creates a StreamExport (visible to kubectl),
    the operator's Job writes the archive, the event stream follows the resource's status
    to Succeeded, and DELETE removes the resource."""
    import json

    from kubernetes import client

    from support import CLI, free_ports

    reference = tmp_path / "reference" / "archive"
    uninterrupted_export(source_store, reference)
    archive = tmp_path / "backups" / "archive"
    archive.parent.mkdir()
    process_node(claims={"streams": source_store, "backups": archive.parent})
    custom = client.CustomObjectsApi(k8s_cluster.api_client())
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "archivelocations", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ArchiveLocation", "metadata": {"name": "local"},
        "spec": {"url": f"file://{archive.parent}"}})
    kubeconfig = _server_kubeconfig(k8s_cluster, k8s_namespace, tmp_path)
    token = "cluster-test-token-0123456789"
    (tmp_path / "tokens").write_text(f"{token} read,export\n")
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([CLI, "serve", "--listen", f"127.0.0.1:{port}", "--kubernetes", k8s_namespace,
                               "--token-file", str(tmp_path / "tokens"), "--root", str(source_store)],
                              env=dict(os.environ, KUBECONFIG=str(kubeconfig)), stdout=log,
                              stderr=subprocess.STDOUT)

    def call(method, path, body=None):
        return _call(base, method, path, token, body)

    try:
        _wait_up(server, base, tmp_path / "serve.log")
        assert [loc["name"] for loc in call("GET", "/v1/locations")[1]] == ["local"]
        opts = dict(zip(EXPORT_OPTS[::2], EXPORT_OPTS[1::2]))
        spec = {"source": "stream://k8s/events", "archiveLocation": "local", "archivePath": "archive", "pvc": "streams",
                "archivePvc": "backups", "archiveMount": str(archive.parent), "objectSize": opts["--object-size"],
                "partSize": opts["--part-size"], "parallel": int(opts["--parallel"])}
        status, doc = call("POST", "/v1/exports", {"name": "from-http", "spec": spec})
        assert status == 201 and doc["metadata"]["namespace"] == k8s_namespace, doc
        assert call("POST", "/v1/exports", {"name": "from-http", "spec": spec})[0] == 200
        printed = k8s_cluster.kubectl("get", "streamexports", "-n", k8s_namespace, "-o", "name").stdout.split()
        assert printed == [f"streamexport.{GROUP}/from-http"]

        sse = subprocess.run(["curl", "-sSN", "--max-time", "300", "-H", f"Authorization: Bearer {token}",
                              base + "/v1/exports/from-http/events"], capture_output=True, text=True, timeout=320)
        docs = [json.loads(line[6:]) for line in sse.stdout.splitlines() if line.startswith("data: ")]
        final = docs[-1]["status"]
        assert final["phase"] == "Succeeded", (final, (tmp_path / "serve.log").read_text()[-2000:])
        assert final["events"] == SEGMENTS * EVENTS_PER_SEGMENT and final["complete"] is True
        assert archive_files(archive) == archive_files(reference)

        assert call("DELETE", "/v1/exports/from-http")[0] == 200  # the operator's finalizer then lets it go
        wait_until("the resource to go", lambda: call("GET", "/v1/exports/from-http")[0] == 404, timeout=60)
        assert k8s_cluster.kubectl("get", "streamexports", "-n", k8s_namespace, "-o", "name").stdout.split() == []
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_without_a_token_file_callers_kubernetes_identity_and_rbac_decide(k8s_cluster, k8s_namespace, crds,
                                                                         source_store, tmp_path):
    """`serve --kubernetes NS` without --token-file: the bearer token is the caller's own
    ServiceAccount token; TokenReview says who it is, a SubjectAccessReview in NS whether
    its Role allows the action. The printed caller Role lets one request and download; a
    read-only Role reads but may neither request nor fetch a download plan; no Role, no
    access; a revoked binding takes effect within the review cache's seconds."""

    from kubernetes import client

    from stream_backend.api.auth import KubernetesIdentities
    from stream_backend.k8s.install import caller_role
    from support import CLI, free_ports

    api = k8s_cluster.api_client()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, "archivelocations", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ArchiveLocation", "metadata": {"name": "local"},
        "spec": {"url": f"file://{tmp_path / 'backups'}"}})
    kubeconfig = _server_kubeconfig(k8s_cluster, k8s_namespace, tmp_path, token_secret=None)
    roles = {"operator-user": caller_role(k8s_namespace, "operator-user"),
             "viewer": caller_role(k8s_namespace, "viewer", manage=False)}
    tokens = {}
    for who, role in (("admin", "operator-user"), ("viewer", "viewer"), ("nobody", None)):
        core.create_namespaced_service_account(k8s_namespace, {"metadata": {"name": who}})
        if role:
            if role in roles:
                rbac.create_namespaced_role(k8s_namespace, roles.pop(role))
            rbac.create_namespaced_role_binding(k8s_namespace, {
                "metadata": {"name": who}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                       "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": who, "namespace": k8s_namespace}]})
        tokens[who] = core.create_namespaced_service_account_token(
            who, k8s_namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([CLI, "serve", "--listen", f"127.0.0.1:{port}", "--kubernetes", k8s_namespace,
                               "--root", str(source_store)], env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
                              stdout=log, stderr=subprocess.STDOUT)

    def call(method, path, who=None, body=None, token=None):
        return _call(base, method, path, token or (tokens[who] if who else None), body)

    spec = {"source": "stream://k8s/events", "archiveLocation": "local", "archivePath": "a"}
    try:
        _wait_up(server, base, tmp_path / "serve.log")
        assert call("GET", "/v1/exports")[0] == 401
        assert call("GET", "/v1/exports", token="not-a-token-of-this-cluster-0123")[0] == 401
        status, err = call("GET", "/v1/exports", "nobody")
        assert status == 403 and err["detail"].startswith(
            f"system:serviceaccount:{k8s_namespace}:nobody may not list streamexports"), err
        assert call("GET", "/v1/streams", "nobody")[0] == 403

        assert call("GET", "/v1/exports", "viewer") == (200, [])
        assert [loc["name"] for loc in call("GET", "/v1/locations", "viewer")[1]] == ["local"]
        assert call("GET", "/v1/streams", "viewer")[1] == [{"scope": "k8s", "streams": ["events"]}]
        status, err = call("POST", "/v1/exports", "viewer", {"name": "nightly", "spec": spec})
        assert status == 403 and "may not create streamexports" in err["detail"]

        status, doc = call("POST", "/v1/exports", "admin", {"name": "nightly", "spec": spec})
        assert status == 201, doc
        printed = k8s_cluster.kubectl("get", "streamexports", "-n", k8s_namespace, "-o", "name").stdout.split()
        assert printed == [f"streamexport.{GROUP}/nightly"]
        assert call("GET", "/v1/exports/nightly", "viewer")[1]["spec"]["source"] == "stream://k8s/events"
        status, err = call("GET", "/v1/exports/nightly/download", "viewer")
        assert status == 403 and "may not get streamexports/download nightly" in err["detail"], err
        status, err = call("GET", "/v1/exports/nightly/download", "admin")
        assert status == 409 and "not succeeded" in err["detail"]  # allowed; there is nothing yet
        assert call("POST", "/v1/imports", "viewer", {"name": "back", "spec": {}})[0] == 403

        rbac.delete_namespaced_role_binding("admin", k8s_namespace)
        wait_until("the revoked binding to take effect", lambda: call("GET", "/v1/exports", "admin")[0] == 403,
                   timeout=KubernetesIdentities.CACHE_SECONDS * 3)
        assert call("DELETE", "/v1/exports/nightly", "admin")[0] == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    logged = (tmp_path / "serve.log").read_text()
    assert "callers' Kubernetes tokens" in logged
    assert not [who for who, token in tokens.items() if token in logged or token[-20:] in logged]


def _call(base, method, path, token, body=None):
    """(status, JSON document) of one API call with that bearer token (None: none)."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_up(server, base, log) -> None:
    import urllib.request

    def up():
        assert server.poll() is None, log.read_text()
        try:
            return urllib.request.urlopen(base + "/healthz", timeout=2).status == 200
        except OSError:
            return False

    wait_until("the server to answer", up, timeout=60)


def _server_kubeconfig(k8s_cluster, namespace, tmp_path, token_secret: str | None = "tokens") -> Path:
    """A kubeconfig with the token of the ServiceAccount `k8s serve` prints, bound to its
    Role: the server runs with exactly the rights it ships with."""
    import json

    import yaml
    from kubernetes import client

    from stream_backend.k8s.install import SERVER, server_manifests

    rbac = [d for d in server_manifests(namespace, "img", token_secret)
            if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding")]
    (tmp_path / "server-rbac.yaml").write_text(yaml.safe_dump_all(rbac))
    k8s_cluster.kubectl("apply", "-f", str(tmp_path / "server-rbac.yaml"))
    token = client.CoreV1Api(k8s_cluster.api_client()).create_namespaced_service_account_token(
        SERVER, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    config = json.loads(k8s_cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp_path / "server-kubeconfig"
    path.write_text(json.dumps(config))
    return path
