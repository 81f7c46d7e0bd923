"""The custom resources: CRDs that the API server's schemas accept, deploy/crds.yaml
current, and a resource making the very manifest `stream-backend k8s job` makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kubernetes_validate import utils as kv

from stream_backend.cli import main
from stream_backend.errors import UsageError
from stream_backend.k8s import jobs
from stream_backend.k8s.resources import API_VERSION, definitions, job_name, transfer_spec

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds.yaml"


def test_crds_validate_and_deploy_copy_is_current():
    for crd in definitions():
        assert kv.validate(crd, kv.latest_version(), strict=True)
    printed = CliRunner().invoke(main, ["k8s", "install"])
    assert printed.exit_code == 0, printed.output
    body = "".join(line + "\n" for line in CRDS.read_text().splitlines() if not line.startswith("#"))
    assert body == printed.stdout, "deploy/crds.yaml is stale: regenerate it with `stream-backend k8s install`"
    kinds = [d["spec"]["names"]["kind"] for d in yaml.safe_load_all(printed.stdout)]
    assert kinds == ["StreamExport", "StreamImport", "ArchiveLocation"]


def _resource(kind="StreamExport", **spec):
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": "nightly-events", "namespace": "backups", "uid": "6f1c0a52-0d7e-4b1e-9f55-1f2a3b4c5d6e"},
            "spec": spec}


def test_a_resource_makes_the_manifest_the_cli_makes():
    resource = _resource(source="pravega://app/events", archiveLocation="prod", archivePath="events",
                         shards=4, parallelism=2, controller="tcp://pravega-controller:9090",
                         image="registry.example/stream-backend:0.2", compression="zstd")
    location = {"url": "s3://backups/prod/", "endpointUrl": "http://minio.storage:9000", "credentialsSecret": "s3-creds"}
    spec = transfer_spec(resource, location)
    assert spec.archive == "s3://backups/prod/events" and spec.s3_secret == "s3-creds"
    from_resource = jobs.build(spec)
    cli = CliRunner().invoke(main, [
        "k8s", "job", "export", "pravega://app/events", "s3://backups/prod/events", "--indexed", "4",
        "--parallelism", "2", "--controller", "tcp://pravega-controller:9090", "--image",
        "registry.example/stream-backend:0.2", "--compression", "zstd", "--s3-secret", "s3-creds",
        "--endpoint-url", "http://minio.storage:9000", "--name", job_name(resource), "--namespace", "backups",
        "--active-deadline", "0", "--ttl-after-finished", "-1", "--service-account", "stream-backend-worker"])
    assert cli.exit_code == 0, cli.output
    from_cli = yaml.safe_load(cli.stdout)
    label = "stream-backend.io/streamexport"
    assert from_resource["metadata"]["labels"].pop(label) == "nightly-events"
    assert from_resource["spec"]["template"]["metadata"]["labels"].pop(label) == "nightly-events"
    # what the operator adds: the pods report progress to their resource, with the token of
    # a ServiceAccount that may patch only that status
    pod = from_resource["spec"]["template"]["spec"]
    assert pod.pop("automountServiceAccountToken") is True
    env = pod["containers"][0]["env"]
    reported = [e for e in env if e["name"].startswith("STREAM_BACKEND_K8S_")]
    assert reported == [{"name": "STREAM_BACKEND_K8S_STATUS", "value": "backups/streamexports/nightly-events"},
                        {"name": "STREAM_BACKEND_K8S_TOKEN_DIR", "value": jobs.SERVICE_ACCOUNT_MOUNT}]
    pod["containers"][0]["env"] = [e for e in env if e not in reported]
    assert from_cli["spec"]["template"]["spec"].pop("automountServiceAccountToken") is False
    assert from_resource == from_cli


def test_a_schedule_makes_a_cronjob_and_names_are_stable():
    resource = _resource(source="stream://app/events", archive="s3://b/p", schedule="0 * * * *", pvc="streams")
    spec = transfer_spec(resource)
    assert spec.kind == "CronJob" and jobs.build(spec)["kind"] == "CronJob"
    assert job_name(resource) == job_name(resource) and len(job_name(resource)) <= 52
    longer = _resource(source="stream://app/events", archive="s3://b/p")
    longer["metadata"]["name"] = "x" * 200
    assert len(job_name(longer)) <= 52


def test_a_missing_archive_location_is_a_usage_error():
    with pytest.raises(UsageError, match="ArchiveLocation 'prod' not found"):
        transfer_spec(_resource(source="stream://a/b", archiveLocation="prod"), None)
