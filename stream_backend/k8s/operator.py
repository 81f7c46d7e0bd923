"""The operator (kopf): each StreamExport / StreamImport becomes the Job (Indexed Job,
CronJob) that jobs.build makes for it, owned by the resource, so deleting the resource
deletes its Jobs; and the resource's status tells what the Job and its pods did.

State lives in the cluster only (the Job, its pods' termination messages, the resource's
status), so an operator that is killed and restarted picks every resource up again.
Events (``kubectl describe``) mark each phase transition.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from .. import settings
from ..errors import StreamBackendError
from . import jobs, resources
from .connect import load_config
from .resources import GROUP, VERSION
from .status import done_status, finished_progress, succeeded_message, sum_progress

kopf_logger = logging.getLogger("stream_backend.operator")
#: how often a resource's status is brought up to date with its Job
REFRESH_SECONDS = settings.seconds("operator_refresh")


def _api():
    return client.ApiClient()


@kopf.on.startup()
def _configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP,
                                                                           key="last-handled-configuration")
    settings.posting.enabled = False  # the resource's events are ours (_event), not kopf's chatter
    load_config()


@kopf.on.login()
def _login(**_) -> kopf.ConnectionInfo:
    """kopf's connection from the same configuration as our API calls (kopf's own login
    would look for the token only at the usual path)."""
    load_config()
    cfg = client.Configuration.get_default_copy()
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
                               scheme=scheme or ("Bearer" if token else None), token=token or None,
                               certificate_path=cfg.cert_file or None, private_key_path=cfg.key_file or None)


def _event(body, reason: str, message: str, warning: bool = False) -> None:
    """An Event on the resource (``kubectl describe``), posted by us: kopf's own handler
    chatter is kept out of them."""
    meta = body["metadata"]
    now = dt.datetime.now(dt.timezone.utc)
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta["uid"]},
        "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
        "source": {"component": "stream-backend-operator"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        client.CoreV1Api(_api()).create_namespaced_event(meta["namespace"], event)
    except ApiException as exc:  # an event is a courtesy: never fail a reconcile for it
        kopf_logger.warning("event %s on %s not posted: %s", reason, meta["name"], exc.reason)


def _location(namespace: str, spec: dict) -> dict | None:
    name = spec.get("archiveLocation")
    if not name:
        return None
    try:
        return client.CustomObjectsApi(_api()).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "archivelocations", name)["spec"]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _fail(body, patch, reason: str, message: str) -> None:
    line = message.strip().splitlines()[0] if message.strip() else reason
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    patch.status.update(phase="Failed", lastError=line, completionTime=now,
                        conditions=_conditions(body, "Failed", reason, line))
    _event(body, reason, line, warning=True)


def _conditions(body, phase: str, reason: str, message: str) -> list[dict]:
    """One condition per phase reached, the current one True (kubectl describe shows why)."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    old = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
    out = []
    for p in resources.PHASES:
        status = "True" if p == phase else "False"
        prev = old.get(p)
        if prev is None and p != phase:
            continue
        same = prev is not None and prev.get("status") == status
        out.append({"type": p, "status": status, "reason": reason if p == phase else (prev or {}).get("reason", ""),
                    "message": message if p == phase else (prev or {}).get("message", ""),
                    "lastTransitionTime": prev["lastTransitionTime"] if same else now})
    return out


@kopf.on.resume(GROUP, VERSION, "streamexports")
@kopf.on.create(GROUP, VERSION, "streamexports")
@kopf.on.resume(GROUP, VERSION, "streamimports")
@kopf.on.create(GROUP, VERSION, "streamimports")
def ensure_job(body, spec, status, namespace, patch, **_):
    """Create the resource's Job (or CronJob) unless it exists; a spec the generator
    refuses is Failed at once, with its one-line reason. A finished one-off resource is
    left as it is when the operator restarts (its Job may be gone: no second run)."""
    if status.get("phase") in ("Succeeded", "Failed") and not spec.get("schedule"):
        return
    location = _location(namespace, spec)
    try:
        tspec = resources.transfer_spec(dict(body), location)
        if not spec.get("image"):
            tspec.image = os.environ.get(settings.IMAGE_ENV) or tspec.image
        manifest = jobs.build(tspec)
    except StreamBackendError as exc:
        _fail(body, patch, "InvalidSpec", str(exc))
        return
    _ensure_worker_rbac(namespace, tspec.service_account)
    kopf.adopt(manifest, owner=dict(body))
    batch = client.BatchV1Api(_api())
    create = batch.create_namespaced_cron_job if manifest["kind"] == "CronJob" else batch.create_namespaced_job
    try:
        create(namespace, manifest)
        _event(body, "Created", f"{manifest['kind']} {tspec.name}")
    except ApiException as exc:
        if exc.status != 409:  # it exists: an operator restart, or a retried handler
            raise
    if not (body.get("status") or {}).get("phase"):
        patch.status.update(phase="Pending", kind=manifest["kind"], jobName=tspec.name, archive=tspec.archive,
                            conditions=_conditions(body, "Pending", "Created", f"{manifest['kind']} {tspec.name}"))


def _ensure_worker_rbac(namespace: str, account: str) -> None:
    core, rbac = client.CoreV1Api(_api()), client.RbacAuthorizationV1Api(_api())
    create = {"ServiceAccount": core.create_namespaced_service_account, "Role": rbac.create_namespaced_role,
              "RoleBinding": rbac.create_namespaced_role_binding}
    for obj in resources.worker_rbac(namespace, account):
        try:
            create[obj["kind"]](namespace, obj)
        except ApiException as exc:
            if exc.status != 409:
                raise


@kopf.on.field(GROUP, VERSION, "streamexports", field="spec.suspend")
@kopf.on.field(GROUP, VERSION, "streamimports", field="spec.suspend")
def suspend_changed(body, new, namespace, **_):
    """``suspend: true`` suspends the Job: its pods get SIGTERM, save their checkpoint and
    exit 75; ``false`` resumes it, and the new pods continue from the checkpoint."""
    name = resources.job_name(dict(body))
    batch = client.BatchV1Api(_api())
    patch_fn = batch.patch_namespaced_cron_job if (body.get("spec") or {}).get("schedule") else batch.patch_namespaced_job
    try:
        patch_fn(name, namespace, {"spec": {"suspend": bool(new)}})
    except ApiException as exc:
        if exc.status != 404:
            raise
    _event(body, "Suspended" if new else "Resumed", name)


@kopf.timer(GROUP, VERSION, "streamexports", interval=REFRESH_SECONDS)
@kopf.timer(GROUP, VERSION, "streamimports", interval=REFRESH_SECONDS)
def refresh(body, status, namespace, patch, **_):
    """Bring the status up to date with the Job and its pods."""
    scheduled = bool((body.get("spec") or {}).get("schedule"))
    if status.get("completionTime") and not scheduled:
        return  # a finished one-off Job changes no more
    name = resources.job_name(dict(body))
    batch, core = client.BatchV1Api(_api()), client.CoreV1Api(_api())
    job = _current_job(batch, namespace, name, scheduled)
    if job is None:
        return
    new = _job_status(job, _pods(core, namespace, job.metadata.name))
    if new["_phase"] in ("Running", "Paused") and status.get("shardProgress"):
        new["progress"] = sum_progress(status["shardProgress"])
    if scheduled:  # jobName stays the CronJob's
        new.update(lastRunTime=job.metadata.creation_timestamp.isoformat(), lastRunJob=new.pop("jobName"))
    phase, reason, message = new.pop("_phase"), new.pop("_reason"), new.pop("_message")
    if phase != status.get("phase"):
        new["conditions"] = _conditions(body, phase, reason, message)
        _event(body, phase, message or reason, warning=phase == "Failed")
    new["phase"] = phase
    changed = {k: v for k, v in new.items() if _differs(status.get(k), v)}
    if changed:
        patch.status.update(changed)


def _differs(old, new) -> bool:
    """Would merge-patching ``new`` over ``old`` change it? (None deletes; absent is None.)"""
    if isinstance(new, dict):
        return not isinstance(old, dict) or any(_differs(old.get(k), v) for k, v in new.items())
    return old != new


def _current_job(batch, namespace: str, name: str, scheduled: bool):
    if not scheduled:
        try:
            return batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    runs = [j for j in batch.list_namespaced_job(namespace).items
            if any(o.kind == "CronJob" and o.name == name for o in j.metadata.owner_references or [])]
    return max(runs, key=lambda j: j.metadata.creation_timestamp) if runs else None


def _pods(core, namespace: str, job_name: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items


def _message(pod) -> dict:
    for cs in pod.status.container_statuses or []:
        term = cs.state and cs.state.terminated
        if term and term.message:
            try:
                return json.loads(term.message)
            except ValueError:
                return {"event": "error", "error": term.message.strip().splitlines()[-1]}
    return {}


def _job_status(job, pods: list) -> dict:
    """Phase, reason, message and the summary fields, from a Job and its pods."""
    st = job.status
    conds = {c.type: c for c in st.conditions or [] if c.status == "True"}
    done = [m for m in (_message(p) for p in pods) if m.get("event") == "done"]
    failed = [m for m in (_message(p) for p in pods) if m.get("event") == "error"]
    out = {"jobName": job.metadata.name, "startTime": st.start_time.isoformat() if st.start_time else None}
    if done:
        out.update(done_status(done))
    shards = _shards(job, pods)
    if shards:
        out["shards"] = shards
    if "Complete" in conds:
        out["completionTime"] = st.completion_time.isoformat() if st.completion_time else None
        out["progress"] = finished_progress(out)
        out.update(_phase="Succeeded", _reason="Complete", _message=succeeded_message(out))
    elif "Failed" in conds:
        why = ((failed[-1].get("error") if failed else None) or conds["Failed"].message
               or conds["Failed"].reason or "Failed").strip().splitlines()[0]
        out["completionTime"] = conds["Failed"].last_transition_time.isoformat()
        out.update(lastError=why, _phase="Failed", _reason=conds["Failed"].reason or "Failed", _message=why)
    elif stuck := _stuck(pods):
        reason, why = stuck
        out.update(lastError=f"{reason}: {why}", _phase="Failed", _reason=reason, _message=f"{reason}: {why}")
    elif job.spec.suspend and not st.active:
        out.update(_phase="Paused", _reason="Suspended", _message="spec.suspend is true: pods stopped at a checkpoint")
    elif st.active:
        out.update(_phase="Running", _reason="PodsRunning", _message=f"{st.active} pod(s) running")
    else:
        out.update(_phase="Pending", _reason="Waiting", _message="no pod running yet")
    return {k: v for k, v in out.items() if v is not None}


#: why a kubelet will not start a container that only a change to the spec or to what it
#: names can fix (a missing Secret or ConfigMap, an unusable image name)
STUCK_REASONS = frozenset({"CreateContainerConfigError", "InvalidImageName"})


def _stuck(pods: list) -> tuple[str, str] | None:
    """(reason, message) of a pod whose container cannot start: the run is Failed, with
    that one line, while the kubelet waits for the fix (once made, the pod starts and the
    status follows it)."""
    for pod in pods:
        for cs in pod.status.container_statuses or []:
            waiting = cs.state and cs.state.waiting
            if waiting and waiting.reason in STUCK_REASONS:
                return waiting.reason, (waiting.message or waiting.reason).strip().splitlines()[0]
    return None


def _shards(job, pods: list) -> list[dict]:
    """Per index of an Indexed Job: the newest pod's phase, exit code and last word."""
    if job.spec.completion_mode != "Indexed":
        return []
    newest: dict[int, object] = {}
    for p in pods:
        index = int((p.metadata.annotations or {}).get("batch.kubernetes.io/job-completion-index", -1))
        if index >= 0 and (index not in newest
                           or p.metadata.creation_timestamp > newest[index].metadata.creation_timestamp):
            newest[index] = p
    out = []
    for index in sorted(newest):
        p = newest[index]
        entry = {"index": index, "phase": p.status.phase}
        for cs in p.status.container_statuses or []:
            if cs.state and cs.state.terminated:
                entry["exitCode"] = cs.state.terminated.exit_code
        m = _message(p)
        if m:
            entry["message"] = m.get("error") or m.get("event")
        out.append(entry)
    return out


def run(namespaces: list[str] | None, liveness: str | None = None) -> None:
    """Run until SIGTERM/SIGINT: every namespace (cluster-wide) unless ``namespaces``."""
    kopf.configure(verbose=False)
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces or [],
             liveness_endpoint=liveness)
