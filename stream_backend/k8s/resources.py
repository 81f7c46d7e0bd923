"""The custom resources (group stream-backend.io, v1alpha1): StreamExport, StreamImport and
ArchiveLocation. Their CRDs with OpenAPI schemas, status subresource and printer columns,
and how a resource becomes the TransferSpec that jobs.build turns into a Job or CronJob,
so the operator and `stream-backend k8s job` make the very same manifests."""

from __future__ import annotations

import hashlib
import json

from ..errors import UsageError
from ..s3vocab import LOCK_MODES, MAX_LOCK_DAYS, SSE_MODES, STORAGE_CLASSES
from .jobs import TransferSpec
from .names import dns_name, label_value

GROUP = "stream-backend.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"StreamExport": "streamexports", "StreamImport": "streamimports"}
#: the ServiceAccount a resource's pods run as unless its spec names one
WORKER_ACCOUNT = "stream-backend-worker"

_S, _I, _N, _B = ({"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"})

#: pod and Job options of both transfers: resource field -> (TransferSpec field, schema)
POD_FIELDS = {
    "image": ("image", _S), "imagePullPolicy": ("image_pull_policy", {"type": "string",
                                                                      "enum": ["Always", "IfNotPresent", "Never"]}),
    "uid": ("uid", _I), "gid": ("gid", _I), "fsGroup": ("fs_group", _I),
    "shards": ("shards", {"type": "integer", "minimum": 1}), "parallelism": ("parallelism", {"type": "integer",
                                                                                             "minimum": 1}),
    "pvc": ("pvc", _S), "archivePvc": ("archive_pvc", _S), "archiveMount": ("archive_mount", _S),
    "s3Secret": ("s3_secret", _S), "pravegaSecret": ("pravega_secret", _S), "controller": ("controller", _S),
    "endpointUrl": ("endpoint_url", _S), "serviceAccount": ("service_account", _S), "bwlimit": ("bwlimit", _S),
    "pushgateway": ("pushgateway", _S), "sseCustomerKeySecret": ("sse_c_secret", _S),
    "backoffLimit": ("backoff_limit", {"type": "integer", "minimum": 0}),
    "activeDeadlineSeconds": ("active_deadline", {"type": "integer", "minimum": 1}),
    "ttlSecondsAfterFinished": ("ttl_after_finished", {"type": "integer", "minimum": 0}),
    "gracePeriodSeconds": ("grace_period", {"type": "integer", "minimum": 1}),
    "cpu": ("cpu", _S), "memory": ("memory", _S), "timeout": ("timeout", _N), "segments": ("segments", _S),
    "schedule": ("schedule", _S), "timeZone": ("time_zone", _S),
}
#: how an export's objects are stored in S3 (export's --sse, --sse-kms-key-id, --storage-class,
#: --object-lock-mode, --object-lock-retain-days, --legal-hold); also on an ArchiveLocation,
#: as the default of the exports into it
S3_WRITE_FIELDS = {"sse": ("sse", {"type": "string", "enum": list(SSE_MODES)}),
                   "sseKmsKeyId": ("sse_kms_key_id", _S),
                   "storageClass": ("storage_class", {"type": "string", "enum": list(STORAGE_CLASSES)}),
                   "objectLockMode": ("object_lock_mode", {"type": "string", "enum": list(LOCK_MODES)}),
                   "objectLockRetainDays": ("object_lock_retain_days",
                                            {"type": "integer", "minimum": 1, "maximum": MAX_LOCK_DAYS}),
                   "legalHold": ("legal_hold", _B)}
EXPORT_FIELDS = {"source": ("stream_url", _S), "objectSize": ("object_size", _S), "partSize": ("part_size", _S),
                 "parallel": ("parallel", {"type": "integer", "minimum": 1}),
                 "compression": ("compression", {"type": "string", "enum": ["none", "zstd"]}),
                 "fileView": ("file_view", _B), **S3_WRITE_FIELDS}
IMPORT_FIELDS = {"destination": ("stream_url", _S), "toSeq": ("to_seq", _I), "toTime": ("to_time", _S)}
ARCHIVE_FIELDS = {"archive": _S, "archiveLocation": _S, "archivePath": _S, "suspend": _B}

PHASES = ["Pending", "Running", "Paused", "Succeeded", "Failed"]
_CONDITION = {"type": "object", "required": ["type", "status"], "properties": {
    "type": _S, "status": {"type": "string", "enum": ["True", "False", "Unknown"]}, "reason": _S, "message": _S,
    "lastTransitionTime": {"type": "string", "format": "date-time"}}}
_PROGRESS = {"type": "object", "properties": {
    "eventsDone": _I, "eventsTotal": _I, "bytesDone": _I, "bytesTotal": _I, "percent": _N,
    "etaSeconds": _N, "eta": _S, "rateBytesPerSecond": _N}}
_SHARD = {"type": "object", "properties": {"index": _I, "phase": _S, "exitCode": _I, "message": _S}}
STATUS = {"type": "object", "properties": {
    "phase": {"type": "string", "enum": PHASES}, "conditions": {"type": "array", "items": _CONDITION},
    "jobName": _S, "kind": _S, "archive": _S, "run": _I, "events": _I, "bytes": _I, "complete": _B,
    "progress": _PROGRESS, "shardProgress": {"type": "object", "additionalProperties": _PROGRESS},
    "lastError": _S, "shards": {"type": "array", "items": _SHARD},
    "startTime": {"type": "string", "format": "date-time"}, "completionTime": {"type": "string", "format": "date-time"},
    "lastRunTime": {"type": "string", "format": "date-time"}, "lastRunJob": _S, "observedGeneration": _I}}
_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Percent", "type": "number", "jsonPath": ".status.progress.percent"},
    {"name": "ETA", "type": "string", "jsonPath": ".status.progress.eta"},
    {"name": "Run", "type": "integer", "jsonPath": ".status.run"},
    {"name": "Last run", "type": "date", "jsonPath": ".status.lastRunTime"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _crd(kind: str, plural: str, short: str, spec: dict, status: dict | None, columns: list) -> dict:
    version = {"name": VERSION, "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": {
                   "apiVersion": _S, "kind": _S, "metadata": {"type": "object"}, "spec": spec,
                   **({"status": status} if status else {})}}},
               "additionalPrinterColumns": columns}
    if status:
        version["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced", "versions": [version],
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "shortNames": [short],
                               "categories": ["stream-backend"]}}}


def _transfer_schema(own: dict, required: str) -> dict:
    props = {k: dict(schema) for k, (_, schema) in {**POD_FIELDS, **own}.items()}
    props.update({k: dict(v) for k, v in ARCHIVE_FIELDS.items()})
    return {"type": "object", "required": [required], "properties": props,
            "x-kubernetes-validations": [{"rule": "has(self.archive) != has(self.archiveLocation)",
                                          "message": "give exactly one of archive and archiveLocation"}]}


def definitions() -> list[dict]:
    """The three CRDs, as `stream-backend k8s install` prints them."""
    location = {"type": "object", "required": ["url"], "properties": {
        "url": _S, "endpointUrl": _S, "credentialsSecret": _S, "sseCustomerKeySecret": _S,
        **{k: v for k, (_, v) in S3_WRITE_FIELDS.items()}}}
    location_columns = [{"name": "URL", "type": "string", "jsonPath": ".spec.url"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return json.loads(json.dumps([  # no shared sub-dicts: YAML would print them as anchors
        _crd("StreamExport", "streamexports", "sbx", _transfer_schema(EXPORT_FIELDS, "source"), STATUS, _COLUMNS),
        _crd("StreamImport", "streamimports", "sbi", _transfer_schema(IMPORT_FIELDS, "destination"), STATUS,
             _COLUMNS),
        _crd("ArchiveLocation", "archivelocations", "sbl", location, None, location_columns),
    ]))


def job_name(resource: dict) -> str:
    """The Job (or CronJob) of a resource: short enough for a CronJob's Jobs and a label,
    and the same on every reconcile (from the resource's uid)."""
    meta = resource["metadata"]
    digest = hashlib.sha256(meta["uid"].encode()).hexdigest()[:6]
    return dns_name(meta["name"], limit=45) + "-" + digest


def transfer_spec(resource: dict, location: dict | None = None) -> TransferSpec:
    """The TransferSpec of a StreamExport or StreamImport (``location``: the spec of the
    ArchiveLocation it names, if any)."""
    kind, spec, meta = resource["kind"], resource.get("spec") or {}, resource["metadata"]
    op = {"StreamExport": "export", "StreamImport": "import"}[kind]
    fields = {**POD_FIELDS, **(EXPORT_FIELDS if op == "export" else IMPORT_FIELDS)}
    values = {target: spec[name] for name, (target, _) in fields.items() if spec.get(name) is not None}
    if spec.get("archiveLocation"):
        if location is None:
            raise UsageError(f"ArchiveLocation {spec['archiveLocation']!r} not found in namespace {meta['namespace']}")
        archive = location["url"].rstrip("/") + ("/" + spec["archivePath"].strip("/") if spec.get("archivePath") else "")
        values.setdefault("endpoint_url", location.get("endpointUrl"))
        values.setdefault("s3_secret", location.get("credentialsSecret"))
        values.setdefault("sse_c_secret", location.get("sseCustomerKeySecret"))  # reads need it too
        if op == "export":
            for name, (field, _) in S3_WRITE_FIELDS.items():
                values.setdefault(field, location.get(name))
    else:
        archive = spec.get("archive") or ""
    values.setdefault("service_account", WORKER_ACCOUNT)
    return TransferSpec(op=op, archive=archive, kind="CronJob" if spec.get("schedule") else "Job",
                        name=job_name(resource), namespace=meta["namespace"], suspend=bool(spec.get("suspend")),
                        extra_labels={f"{GROUP}/{kind.lower()}": label_value(meta["name"])},
                        status_resource=f"{meta['namespace']}/{PLURALS[kind]}/{meta['name']}", **values)


def worker_rbac(namespace: str, account: str) -> list[dict]:
    """What a resource's pods may do with the API: patch the status of the resources they
    report to, nothing else. (The operator makes these in each namespace it serves.)"""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": WORKER_ACCOUNT, "namespace": namespace},
            "rules": [{"apiGroups": [GROUP], "resources": [f"{p}/status" for p in PLURALS.values()],
                       "verbs": ["get", "patch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": f"{WORKER_ACCOUNT}-{account}"[:253], "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKER_ACCOUNT},
               "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}
    out = [role, binding]
    if account == WORKER_ACCOUNT:
        out.insert(0, {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": WORKER_ACCOUNT, "namespace": namespace}})
    return out
