"""Kubernetes manifests for exports and imports: Job, Indexed Job, CronJob.

The manifests run the very same CLI a user runs by hand (``stream-backend export ...``),
so nothing here coordinates workers: the archive's checkpoints and leases make a
restarted pod resume, and the Job controller decides when to restart. What this module
adds is the Kubernetes side of that contract:

* exit code 75 (paused by SIGTERM, checkpoint saved) and pod disruptions (eviction,
  node drain, preemption: the ``DisruptionTarget`` condition) are *ignored* by the Job's
  ``podFailurePolicy`` — they do not count against ``backoffLimit`` — so a drained
  node's pod is simply replaced and the replacement resumes from the checkpoint;
* deterministic failures (bad usage 64, corrupt data 65, foreign import target 73) fail
  the Job at once instead of being retried ``backoffLimit`` times;
* credentials reach the pod only through Secrets (``secretKeyRef``/``envFrom``); no
  literal key is ever accepted or written, and nothing is copied from the local
  environment;
* the final JSON summary lands in the container's termination message.

This module builds plain dicts (no click, no store, no transfer import); the CLI in
``cli/k8s.py`` parses options and prints the YAML.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .. import __version__, settings
from ..errors import UsageError
from ..units import parse_rate
from ..urls import parse_stream_url
from .names import (QUANTITY, check_k8s_name, check_no_userinfo, check_schedule, dns_name, label_value,
                    parse_size, quantity)
from .termination import TERMINATION_LOG_PATH

CONTAINER_NAME = "stream-backend"
DEFAULT_IMAGE = f"stream-backend:{__version__}"
#: where the image expects the local store (also its VOLUME); the --pvc is mounted here
STORE_MOUNT = "/data/store"
#: where an SSE-C key's Secret is mounted (--sse-c-secret), and its key in the Secret
SSE_C_MOUNT, SSE_C_KEY = "/etc/stream-backend/sse-c", "sse-c.key"
#: where Kubernetes mounts a pod's ServiceAccount token
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: the image's non-root user (numeric, so runAsNonRoot can be verified by the kubelet)
RUN_AS_USER = 10001

EXIT_PAUSED = 75  # Paused / WriterBusyError: resumable, retry without counting
#: killed by SIGTERM before the CLI's handler was installed (startup) or after it was
#: removed (exiting): only the kubelet sends SIGTERM, so this is a disruption too
EXIT_SIGTERM = 128 + 15
#: exit codes that a retry cannot fix: usage, corrupt data / newer format, a source, archive
#: or bucket that does not exist, a foreign target, no permission to read or write (a retry
#: every 10, 20, 40... s would only hide it)
EXIT_FAIL_FAST = (64, 65, 66, 73, 77)

LABEL_PREFIX = "stream-backend"

#: Memory not tied to parts in flight: the interpreter, s3fs/botocore, the Pravega client
BASE_MEMORY = 256 * 1024**2
ZSTD_MEMORY_PER_LANE = 16 * 1024**2
#: the Pravega client runs in a worker process of its own (interpreter + Rust runtime)
PRAVEGA_CLIENT_MEMORY = 256 * 1024**2
_REMOTE_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
#: mount points the pod keeps for itself
_RESERVED_MOUNTS = {"/", "/tmp", "/dev", "/proc", "/sys", "/etc", "/usr", "/bin", "/lib", "/opt",
                    "/var", "/run", "/home", STORE_MOUNT}


@dataclass
class PodArchive:
    """Where the archive lives, seen from the pod."""

    url: str
    scheme: str
    path: str  # local path for file://, else ""


def parse_archive(url: str) -> PodArchive:
    if not url:
        raise UsageError("ARCHIVE is empty")
    check_no_userinfo("ARCHIVE", url)
    if "://" not in url:
        if not url.startswith("/"):
            raise UsageError(f"ARCHIVE {url!r}: a path inside a pod must be absolute (or use s3://BUCKET/PREFIX)")
        return PodArchive(f"file://{url}", "file", os.path.normpath(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"ARCHIVE {url!r}: file URLs look like file:///absolute/path")
        return PodArchive(url, "file", os.path.normpath(parts.path or "/"))
    if scheme in _REMOTE_SCHEMES:
        if not parts.netloc:
            raise UsageError(f"ARCHIVE {url!r} names no bucket: expected {scheme}://BUCKET/PREFIX")
        return PodArchive(url, scheme, "")
    raise UsageError(
        f"ARCHIVE {url!r}: a pod can write to s3://BUCKET/PREFIX or to file:///PATH on a "
        "volume (--archive-pvc); other schemes do not outlive the pod"
    )


@dataclass
class TransferSpec:
    """Everything that decides one generated manifest. ``op`` is "export" or "import"."""

    op: str
    stream_url: str  # export SOURCE or import DEST
    archive: str
    kind: str = "Job"  # "Job" or "CronJob"
    image: str = DEFAULT_IMAGE
    uid: int = RUN_AS_USER
    gid: int = RUN_AS_USER
    fs_group: int | None = None  # set only when asked: Kubernetes re-owns the volume's files
    name: str | None = None
    namespace: str | None = None
    shards: int | None = None  # Indexed Job with this many completions
    parallelism: int | None = None
    schedule: str | None = None
    time_zone: str | None = None
    pvc: str | None = None  # the local store's claim
    archive_pvc: str | None = None
    archive_mount: str | None = None
    s3_secret: str | None = None
    #: a Secret holding an SSE-C key under ``sse-c.key``: mounted, given as --sse-c-key-file
    sse_c_secret: str | None = None
    pravega_secret: str | None = None
    controller: str | None = None
    endpoint_url: str | None = None
    service_account: str | None = None
    backoff_limit: int = 6
    active_deadline: int | None = None
    ttl_after_finished: int | None = None
    grace_period: int = 60
    suspend: bool = False
    image_pull_policy: str = "IfNotPresent"
    cpu: str = "500m"
    memory: str | None = None  # override of the derived amount
    # export options passed through to the CLI (None: the CLI's default)
    object_size: str | None = None
    part_size: str | None = None
    bwlimit: str | None = None
    #: a Prometheus Pushgateway URL the pod pushes the run's metrics to when it ends
    pushgateway: str | None = None
    parallel: int | None = None
    compression: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    object_lock_mode: str | None = None
    object_lock_retain_days: int | None = None
    legal_hold: bool | None = None
    file_view: bool = False
    segments: str | None = None
    to_seq: int | None = None
    to_time: str | None = None
    timeout: float | None = None
    extra_labels: dict = field(default_factory=dict)
    #: NAMESPACE/PLURAL/NAME the pods report progress to (the operator's resource): mounts
    #: the ServiceAccount's token, which only then is in the pod
    status_resource: str | None = None


def memory_bytes(spec: TransferSpec) -> int:
    """Memory bound of one pod: base (+ the Pravega client's worker) + parts in flight
    (each lane fills one part while one uploads) + zstd windows. Request and limit are
    equal (Guaranteed QoS for memory: the kubelet evicts such pods last under pressure)."""
    if spec.memory:
        return parse_size(spec.memory)
    part = parse_size(spec.part_size) if spec.part_size else settings.DEFAULT_PART_SIZE
    lanes = spec.parallel or settings.DEFAULT_PARALLEL
    total = BASE_MEMORY + 2 * part * lanes
    if spec.stream_url.startswith("pravega://"):
        total += PRAVEGA_CLIENT_MEMORY
    if spec.compression == "zstd":
        total += ZSTD_MEMORY_PER_LANE * lanes
    return total


def _validate(spec: TransferSpec):
    if spec.op not in ("export", "import"):
        raise UsageError(f"unknown operation {spec.op!r}")
    if spec.kind not in ("Job", "CronJob"):
        raise UsageError(f"unknown kind {spec.kind!r}")
    check_no_userinfo("SOURCE" if spec.op == "export" else "DEST", spec.stream_url)
    stream = parse_stream_url(spec.stream_url, need="stream")
    if stream.segment is not None:
        raise UsageError(f"{spec.stream_url!r}: name a stream, not one segment (use --segments)")
    archive = parse_archive(spec.archive)
    if not spec.image or any(c.isspace() for c in spec.image):
        raise UsageError("invalid --image")
    for opt, value in (("--uid", spec.uid), ("--gid", spec.gid), ("--fs-group", spec.fs_group)):
        if value is not None and not (isinstance(value, int) and 0 < value < 2**31):
            raise UsageError(f"{opt} must be a non-root id (1..2147483647), not {value!r}")
    if spec.namespace:
        check_k8s_name("--namespace", spec.namespace, 63, label=True)
    if spec.name:
        check_k8s_name("--name", spec.name, 52 if spec.kind == "CronJob" else 63, label=True)
    for opt, value in (("--pvc", spec.pvc), ("--archive-pvc", spec.archive_pvc),
                       ("--s3-secret", spec.s3_secret), ("--pravega-secret", spec.pravega_secret),
                       ("--sse-c-secret", spec.sse_c_secret),
                       ("--service-account", spec.service_account)):
        if value is not None:
            check_k8s_name(opt, value)
    if stream.protocol == "stream" and not spec.pvc:
        raise UsageError(
            f"{spec.stream_url} is in the local store: pass --pvc CLAIM, the volume holding "
            "the store root (it is mounted at " + STORE_MOUNT + ")"
        )
    if stream.protocol == "pravega":
        if spec.pvc:
            raise UsageError("--pvc mounts the local store; a pravega:// stream does not use it")
        if not spec.controller:
            raise UsageError(
                f"{spec.stream_url} is in Pravega: pass --controller URI as the pod sees it, "
                "e.g. tcp://pravega-controller.pravega.svc:9090 (127.0.0.1 is the pod itself)"
            )
        check_no_userinfo("--controller", spec.controller)
    elif spec.controller or spec.pravega_secret:
        raise UsageError("--controller/--pravega-secret apply to pravega:// streams only")
    if archive.scheme == "file":
        if not spec.archive_pvc:
            raise UsageError(
                f"ARCHIVE {spec.archive} is a path: pass --archive-pvc CLAIM, the volume holding "
                "it (the container's root filesystem is read-only and /tmp vanishes with the pod)"
            )
    elif spec.archive_pvc or spec.archive_mount:
        raise UsageError("--archive-pvc/--archive-mount are for file:// archives; "
                         f"{archive.scheme}:// needs --s3-secret instead")
    if archive.scheme == "file":
        mount = os.path.normpath(spec.archive_mount) if spec.archive_mount else _default_mount(archive.path)
        if not mount.startswith("/") or mount in _RESERVED_MOUNTS:
            raise UsageError(f"--archive-mount {mount!r}: pick a directory of its own, like /backups")
        if not (archive.path == mount or archive.path.startswith(mount.rstrip("/") + "/")):
            raise UsageError(f"ARCHIVE path {archive.path} is not under --archive-mount {mount}")
    else:
        mount = None
    if spec.endpoint_url:
        check_no_userinfo("--endpoint-url", spec.endpoint_url)
    if spec.pushgateway:
        check_no_userinfo("--pushgateway", spec.pushgateway)
    if spec.sse_c_secret and archive.scheme not in ("s3", "s3a"):
        raise UsageError(f"--sse-c-secret is for S3 archives, not {archive.url}")
    if spec.kind == "CronJob":
        if not spec.schedule:
            raise UsageError("a CronJob needs --schedule, e.g. '0 * * * *'")
        check_schedule(spec.schedule)
        if spec.to_seq is not None or spec.to_time:
            raise UsageError("--to-seq/--to-time would make every scheduled run stop at the same point")
    if spec.shards is not None and not 1 <= spec.shards <= 100000:
        raise UsageError("--indexed/--parallel-segments must be between 1 and 100000")
    if spec.parallelism is not None:
        if spec.parallelism < 1:
            raise UsageError("--parallelism must be at least 1")
        if spec.shards is None:
            raise UsageError("--parallelism applies to Indexed Jobs (--indexed N)")
    if not QUANTITY.match(str(spec.cpu)):
        raise UsageError(f"invalid --cpu {spec.cpu!r}: a Kubernetes quantity like 500m or 2")
    if spec.backoff_limit < 0 or spec.grace_period < 1:
        raise UsageError("--backoff-limit must be >= 0 and --grace-period >= 1")
    if (spec.active_deadline is not None and spec.active_deadline < 1) or (
            spec.ttl_after_finished is not None and spec.ttl_after_finished < 0):
        raise UsageError("--active-deadline must be >= 1 and --ttl-after-finished >= 0")
    if spec.segments is not None and not re.match(r"^\s*\d+\s*(,\s*\d+\s*)*$", spec.segments):
        raise UsageError(f"--segments takes numbers separated by commas, not {spec.segments!r}")
    if spec.to_seq is not None and spec.to_seq < 0:
        raise UsageError("--to-seq must be >= 0")
    if spec.op == "import":
        for opt, value in (("--object-size", spec.object_size), ("--compression", spec.compression),
                           ("--parallel", spec.parallel), ("--file-view", spec.file_view or None),
                           ("--object-lock-mode", spec.object_lock_mode), ("--legal-hold", spec.legal_hold or None)):
            if value is not None:
                raise UsageError(f"{opt} is an export option")
    elif spec.to_time:
        raise UsageError("--to-time is an import option")
    for size in (spec.object_size, spec.part_size):
        if size is not None:
            parse_size(size)
    if spec.bwlimit is not None:
        parse_rate(spec.bwlimit)
    if spec.parallel is not None and spec.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    if spec.compression not in (None, "none", "zstd"):
        raise UsageError("--compression must be none or zstd")
    return stream, archive, mount


def _default_mount(path: str) -> str:
    """file:///backups/demo/logs -> /backups: the claim holds the top directory."""
    top = "/" + path.strip("/").split("/")[0]
    return top


def container_args(spec: TransferSpec, stream_url: str, archive_url: str) -> list[str]:
    """The CLI arguments the pod runs: the same command a user would type."""
    if spec.op == "export":
        args = ["export", stream_url, archive_url]
    else:
        args = ["import", archive_url, stream_url]
    args += ["--progress", "json"]
    opts = [
        ("--object-size", spec.object_size),
        ("--part-size", spec.part_size),
        ("--bwlimit", spec.bwlimit),
        ("--pushgateway", spec.pushgateway),
        ("--parallel", spec.parallel),
        ("--compression", spec.compression),
        ("--sse", spec.sse),
        ("--sse-kms-key-id", spec.sse_kms_key_id),
        ("--storage-class", spec.storage_class),
        ("--object-lock-mode", spec.object_lock_mode),
        ("--object-lock-retain-days", spec.object_lock_retain_days),
        ("--segments", spec.segments),
        ("--to-seq", spec.to_seq),
        ("--to-time", spec.to_time),
        ("--endpoint-url", spec.endpoint_url),
        ("--timeout", spec.timeout),
    ]
    for opt, value in opts:
        if value is not None and value != "":
            args += [opt, str(value)]
    if spec.file_view:
        args.append("--file-view")
    if spec.legal_hold:
        args.append("--legal-hold")
    if spec.sse_c_secret:
        args += ["--sse-c-key-file", f"{SSE_C_MOUNT}/{SSE_C_KEY}"]
    if spec.shards is not None:
        # each pod takes the segments s with s % N == $JOB_COMPLETION_INDEX
        args += ["--shards", str(spec.shards)]
    return args


def _labels(spec: TransferSpec, scope: str, stream: str, archive_url: str) -> dict:
    labels = {
        "app.kubernetes.io/name": "stream-backend",
        "app.kubernetes.io/component": spec.op,
        "app.kubernetes.io/version": label_value(__version__),
        "app.kubernetes.io/managed-by": "stream-backend",
        f"{LABEL_PREFIX}/operation": spec.op,
        f"{LABEL_PREFIX}/scope": label_value(scope),
        f"{LABEL_PREFIX}/stream": label_value(stream),
        f"{LABEL_PREFIX}/archive": label_value(archive_url),
    }
    labels.update(spec.extra_labels)
    return labels


def _annotations(spec: TransferSpec, args: list[str], archive_url: str) -> dict:
    return {
        f"{LABEL_PREFIX}/stream-url": spec.stream_url,
        f"{LABEL_PREFIX}/archive-url": archive_url,
        f"{LABEL_PREFIX}/command": " ".join(_shell_quote(a) for a in ["stream-backend", *args]),
        f"{LABEL_PREFIX}/resume": (
            "delete or evict the pod, or suspend the Job: exit 75 saves a checkpoint in the "
            "archive and the next pod resumes from it"
        ),
    }


def _shell_quote(arg: str) -> str:
    return arg if re.match(r"^[A-Za-z0-9_./:=@%+,-]+$", arg) else "'" + arg.replace("'", "'\\''") + "'"


def _env(spec: TransferSpec, stream_protocol: str, archive_scheme: str) -> tuple[list, list]:
    """Non-secret settings as values; credentials only as references to Secrets."""
    env = [
        {"name": settings.TERMINATION_LOG_ENV, "value": TERMINATION_LOG_PATH},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if stream_protocol == "stream":
        env.append({"name": settings.ROOT_ENV, "value": STORE_MOUNT})
    if spec.controller:
        env.append({"name": settings.CONTROLLER_ENV, "value": spec.controller})
    if spec.shards is not None:
        env.append({"name": settings.SHARDS_ENV, "value": str(spec.shards)})
    if spec.status_resource:
        env += [{"name": settings.K8S_STATUS_ENV, "value": spec.status_resource},
                {"name": settings.K8S_TOKEN_DIR_ENV, "value": SERVICE_ACCOUNT_MOUNT}]
    env_from = []
    if spec.s3_secret:
        # the Secret must hold the first two keys; the others are used when present
        for key, optional in (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False),
                              ("AWS_SESSION_TOKEN", True), ("AWS_REGION", True),
                              ("AWS_DEFAULT_REGION", True), ("AWS_ENDPOINT_URL", True)):
            ref = {"name": spec.s3_secret, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    if spec.pravega_secret:
        # keys like pravega_client_auth_method / _username / _password / _token
        env_from.append({"secretRef": {"name": spec.pravega_secret}})
    return env, env_from


def pod_failure_policy() -> dict:
    """Retry what is resumable without counting it; fail fast on what a retry cannot fix."""
    return {
        "rules": [
            {
                "action": "Ignore",
                "onExitCodes": {"containerName": CONTAINER_NAME, "operator": "In",
                                "values": [EXIT_PAUSED, EXIT_SIGTERM]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER_NAME, "operator": "In", "values": list(EXIT_FAIL_FAST)},
            },
        ]
    }


def build(spec: TransferSpec) -> dict:
    """The manifest (a dict ready for yaml.safe_dump) for ``spec``; UsageError if unsound."""
    stream, archive, archive_mount = _validate(spec)
    args = container_args(spec, spec.stream_url, archive.url)
    labels = _labels(spec, stream.scope, stream.stream, archive.url)
    annotations = _annotations(spec, args, archive.url)
    digest = hashlib.sha256(f"{spec.op}\0{spec.stream_url}\0{archive.url}".encode()).hexdigest()[:6]
    limit = 52 if spec.kind == "CronJob" else 63
    name = spec.name or dns_name("sb", spec.op, stream.scope, stream.stream, limit=limit - 7) + "-" + digest

    env, env_from = _env(spec, stream.protocol, archive.scheme)
    mem = quantity(memory_bytes(spec))
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    if spec.pvc:
        mounts.append({"name": "store", "mountPath": STORE_MOUNT, "readOnly": spec.op == "export"})
        volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": spec.pvc,
                                                                   "readOnly": spec.op == "export"}})
    if archive_mount:
        mounts.append({"name": "archive", "mountPath": archive_mount, "readOnly": spec.op == "import"})
        volumes.append({"name": "archive", "persistentVolumeClaim": {"claimName": spec.archive_pvc,
                                                                     "readOnly": spec.op == "import"}})
    if spec.sse_c_secret:
        mounts.append({"name": "sse-c", "mountPath": SSE_C_MOUNT, "readOnly": True})
        volumes.append({"name": "sse-c", "secret": {"secretName": spec.sse_c_secret,
                                                     "items": [{"key": SSE_C_KEY, "path": SSE_C_KEY}]}})
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": args,
        "env": env,
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": mem, "ephemeral-storage": "256Mi"},
            "limits": {"memory": mem, "ephemeral-storage": "2Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.uid,
            "runAsGroup": spec.gid,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": TERMINATION_LOG_PATH,
        # the summary file when the CLI wrote one, else the log tail (a crash's last words)
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    if env_from:
        container["envFrom"] = env_from
    pod_spec = {
        "restartPolicy": "Never",  # podFailurePolicy requires it; the Job makes new pods
        "terminationGracePeriodSeconds": spec.grace_period,
        "automountServiceAccountToken": bool(spec.status_resource),
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.uid,
            "runAsGroup": spec.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
            # fsGroup makes the kubelet chown an application's volume: only when asked
            **({"fsGroup": spec.fs_group, "fsGroupChangePolicy": "OnRootMismatch"} if spec.fs_group else {}),
        },
        "containers": [container],
        "volumes": volumes,
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    job_spec = {}
    if spec.shards is not None:
        job_spec["completionMode"] = "Indexed"
        job_spec["completions"] = spec.shards
        default = spec.shards
        if spec.op == "import" and stream.protocol == "stream":
            # the local store has one writer per stream: parallel import pods would only
            # take turns (exit 75, retried), so by default they run one after the other
            default = 1
        job_spec["parallelism"] = min(spec.parallelism or default, spec.shards)
    job_spec.update({
        "backoffLimit": spec.backoff_limit,
        "podFailurePolicy": pod_failure_policy(),
        # a replacement starts only once the old pod is gone, so two pods never hold
        # the same shard's leases at once (required to be Failed with podFailurePolicy)
        "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod_spec},
    })
    if spec.active_deadline:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline
    if spec.ttl_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_after_finished
    metadata = {"name": name, "labels": labels, "annotations": annotations}
    if spec.namespace:
        metadata["namespace"] = spec.namespace

    if spec.kind == "Job":
        if spec.suspend:
            job_spec["suspend"] = True
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
    cron_spec = {
        "schedule": check_schedule(spec.schedule),
        # a run still going when the next is due keeps going; the next waits its turn
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": job_spec},
    }
    if spec.time_zone:
        cron_spec["timeZone"] = spec.time_zone
    if spec.suspend:
        cron_spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata, "spec": cron_spec}


def to_yaml(manifest: dict) -> str:
    import yaml

    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=1000)
