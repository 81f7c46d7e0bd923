"""A Kubernetes node whose pods are local processes: what lets the REAL Job, CronJob and
garbage-collector controllers of scripts/k8s-testbed run our Jobs on this machine.

It registers a Node, binds pending pods to itself (no scheduler runs), and does a
kubelet's part of the contract for each pod: runs the container's command and args (the
image's entrypoint ``stream-backend`` is this checkout's CLI) with the pod's environment
(values, fieldRefs such as the completion index, Secret and ConfigMap keys, envFrom),
reports Running and then the terminated state (exit code, reason, the termination
message file or, with FallbackToLogsOnError, the log tail), and on deletion or eviction
sends SIGTERM, SIGKILL after the grace period, writes the final status and deletes the pod
with its uid as precondition.

Volumes are local directories: a PersistentVolumeClaim is the directory the test gives
for its claim name, an emptyDir a fresh directory per pod; paths under a mount point in
the env and args are rewritten to the directory. Test-only: no isolation, no images.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

ENTRYPOINT = "stream-backend"
#: the env a pod's process starts from (plus what the pod sets): the machine's, not the test's
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigError(Exception):
    """What a kubelet reports as CreateContainerConfigError (a missing Secret, say)."""


@dataclass
class _Running:
    uid: str
    name: str
    namespace: str
    proc: subprocess.Popen
    started: str
    workdir: Path
    termination_file: Path
    fallback_to_logs: bool
    restarts: int = 0
    term_sent: bool = False


class ProcessNode:
    def __init__(self, kubeconfig: str | Path, workdir: Path, claims: dict[str, Path] | None = None,
                 name: str = "process-node", env: dict[str, str] | None = None) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.name = name
        self.workdir = Path(workdir)
        self.claims = {k: Path(v) for k, v in (claims or {}).items()}
        self.env = dict(env or {})
        self.cli = str(Path(sys.executable).with_name(ENTRYPOINT))
        self._running: dict[str, _Running] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: every pod this node started: (namespace/name, exit code or None while running)
        self.history: list[dict] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ProcessNode":
        self._register()
        t = threading.Thread(target=self._watch, name=f"{self.name}-watch", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
        for r in running:
            self._signal(r, signal.SIGKILL)
        for t in self._threads:
            t.join(timeout=10)

    def kill(self, uid: str, sig: int = signal.SIGKILL) -> None:
        """Signal a running pod's processes from outside, as the kernel's OOM killer or a
        crash would: no API call, the pod just fails."""
        with self._lock:
            r = self._running.get(uid)
        assert r is not None, f"pod {uid} is not running here"
        self._signal(r, sig)

    def log_of(self, uid: str) -> str:
        """What a running pod has printed so far (stdout and stderr); "" once it is gone."""
        with self._lock:
            r = self._running.get(uid)
        try:
            return (r.workdir / "log").read_text(errors="replace") if r else ""
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _register(self) -> None:
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"}},
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.core.patch_node(self.name, {"spec": {"taints": []}})
        capacity = {"cpu": "2", "memory": "16Gi", "pods": "110", "ephemeral-storage": "50Gi"}
        self.core.patch_node_status(self.name, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "process node",
                            "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}],
        }})

    # ------------------------------------------------------------------ the loop
    def _watch(self) -> None:
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.core.list_pod_for_all_namespaces, timeout_seconds=5):
                    if self._stop.is_set():
                        break
                    if event["type"] != "DELETED":
                        self._reconcile(event["object"])
            except Exception as exc:  # noqa: BLE001 - a dropped watch is re-opened
                if not self._stop.is_set():
                    print(f"{self.name}: watch restarted after {type(exc).__name__}: {exc}", file=sys.stderr)
                    time.sleep(0.2)
            finally:
                w.stop()

    def _reconcile(self, pod) -> None:
        meta, spec, status = pod.metadata, pod.spec, pod.status
        if spec.node_name is None:
            if meta.deletion_timestamp is None:
                self._bind(pod)
            return
        if spec.node_name != self.name:
            return
        with self._lock:
            running = self._running.get(meta.uid)
            done = meta.uid in self._finished
        if meta.deletion_timestamp is not None:
            if running is not None:
                self._terminate(running, meta.deletion_grace_period_seconds or 0)
            else:  # ended, never started, or waiting to restart: no process to stop
                self._delete_final(pod)
            return
        if running is None and not done and status.phase == "Pending":
            self._run(pod)

    def _bind(self, pod) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod.metadata.name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}}
        try:  # the generated client cannot read a Binding back: skip the decoding
            self.core.create_namespaced_pod_binding(pod.metadata.name, pod.metadata.namespace, body,
                                                    _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # ------------------------------------------------------------------ running a pod
    def _run(self, pod, restarts: int = 0) -> None:
        meta = pod.metadata
        container = pod.spec.containers[0]
        work = self.workdir / f"{meta.namespace}-{meta.name}-{meta.uid[:8]}"
        try:
            mounts = self._mounts(pod, work)
            env = self._environment(pod, container, mounts)
        except ConfigError as exc:
            self._patch_status(pod, {"phase": "Pending", "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "", "ready": False,
                "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerConfigError",
                                                         "message": str(exc)}}}]})
            return
        term_path = container.termination_message_path or "/dev/termination-log"
        term_file = work / "termination-log"
        term_file.touch()
        for k, v in env.items():
            if v == term_path:
                env[k] = str(term_file)
        argv = list(container.command or [ENTRYPOINT]) + list(container.args or [])
        # a pod has a network namespace of its own; here every pod shares the host's, so
        # what a pod binds on every address this node binds on loopback only
        argv = [self._rewrite(a, mounts).replace("://0.0.0.0:", "://127.0.0.1:") for a in argv]
        if argv[0] == ENTRYPOINT:
            argv[0] = self.cli
        log = open(work / "log", "wb")
        proc = subprocess.Popen(argv, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        started = _now()
        r = _Running(meta.uid, meta.name, meta.namespace, proc, started, work, term_file,
                     container.termination_message_policy == "FallbackToLogsOnError", restarts)
        with self._lock:
            self._running[meta.uid] = r
            self.history.append({"pod": f"{meta.namespace}/{meta.name}", "uid": meta.uid, "exit": None})
        self._patch_status(pod, {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": started,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": started}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "", "ready": True,
                                   "started": True, "restartCount": restarts,
                                   "state": {"running": {"startedAt": started}}}],
        })
        t = threading.Thread(target=self._wait, args=(r, pod), name=f"pod-{meta.name}", daemon=True)
        t.start()

    def _mounts(self, pod, work: Path) -> dict[str, Path]:
        """mountPath -> the local directory behind it."""
        volumes = {v.name: v for v in pod.spec.volumes or []}
        out = {}
        for m in pod.spec.containers[0].volume_mounts or []:
            v = volumes[m.name]
            if v.persistent_volume_claim is not None:
                claim = v.persistent_volume_claim.claim_name
                if claim not in self.claims:
                    raise ConfigError(f'persistentvolumeclaim "{claim}" not found')
                path = self.claims[claim]
            elif v.host_path is not None:
                path = Path(v.host_path.path)
            elif v.projected is not None:  # the ServiceAccount token volume admission adds
                path = work / "volumes" / m.name
                self._project(pod, v.projected, path)
            else:  # emptyDir and anything else: a directory of the pod's own
                path = work / "volumes" / m.name
            path.mkdir(parents=True, exist_ok=True)
            out[m.mount_path.rstrip("/") or "/"] = path
        return out

    def _project(self, pod, projected, path: Path) -> None:
        """Write a projected volume's files: a bound ServiceAccount token, ConfigMap keys
        (the cluster's CA), downward-API fields (the namespace)."""
        path.mkdir(parents=True, exist_ok=True)
        meta = pod.metadata
        for src in projected.sources or []:
            if src.service_account_token is not None:
                t = src.service_account_token
                spec = {"expirationSeconds": t.expiration_seconds or 3600,
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.name, "uid": meta.uid}}
                if t.audience:
                    spec["audiences"] = [t.audience]
                token = self.core.create_namespaced_service_account_token(
                    pod.spec.service_account_name or "default", meta.namespace, {"spec": spec}).status.token
                (path / t.path).write_text(token)
            elif src.config_map is not None:
                data = self._config_map(meta.namespace, src.config_map.name, optional=src.config_map.optional)
                for item in src.config_map.items or [{"key": k, "path": k} for k in data]:
                    key, rel = (item["key"], item["path"]) if isinstance(item, dict) else (item.key, item.path)
                    (path / rel).write_text(data.get(key, ""))
            elif src.downward_api is not None:
                for item in src.downward_api.items or []:
                    (path / item.path).write_text(self._field(pod, item.field_ref.field_path))

    @staticmethod
    def _rewrite(value: str, mounts: dict[str, Path]) -> str:
        for mount in sorted(mounts, key=len, reverse=True):
            for prefix in ("", "file://"):
                head = prefix + mount
                if value == head or value.startswith(head + "/"):
                    return prefix + str(mounts[mount]) + value[len(head):]
        return value

    def _environment(self, pod, container, mounts) -> dict[str, str]:
        env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        api = urlsplit(self.api_client.configuration.host)  # as a kubelet tells every pod
        env.update(KUBERNETES_SERVICE_HOST=api.hostname, KUBERNETES_SERVICE_PORT=str(api.port))
        env.update(self.env)
        ns = pod.metadata.namespace
        for src in container.env_from or []:
            prefix = src.prefix or ""
            if src.secret_ref is not None:
                data = self._secret(ns, src.secret_ref.name, optional=src.secret_ref.optional)
            else:
                data = self._config_map(ns, src.config_map_ref.name, optional=src.config_map_ref.optional)
            env.update({prefix + k: v for k, v in data.items()})
        for e in container.env or []:
            if e.value_from is None:
                env[e.name] = e.value or ""
                continue
            vf = e.value_from
            if vf.field_ref is not None:
                env[e.name] = self._field(pod, vf.field_ref.field_path)
            elif vf.secret_key_ref is not None:
                ref = vf.secret_key_ref
                value = self._secret(ns, ref.name, optional=ref.optional).get(ref.key)
                if value is None and not ref.optional:
                    raise ConfigError(f"couldn't find key {ref.key} in Secret {ns}/{ref.name}")
                if value is not None:
                    env[e.name] = value
            elif vf.config_map_key_ref is not None:
                ref = vf.config_map_key_ref
                value = self._config_map(ns, ref.name, optional=ref.optional).get(ref.key)
                if value is not None:
                    env[e.name] = value
        return {k: self._rewrite(v, mounts) for k, v in env.items()}

    def _secret(self, ns: str, name: str, optional: bool | None) -> dict[str, str]:
        data = self._data("secret", self.core.read_namespaced_secret, ns, name, optional)
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _config_map(self, ns: str, name: str, optional: bool | None) -> dict[str, str]:
        return self._data("configmap", self.core.read_namespaced_config_map, ns, name, optional)

    @staticmethod
    def _data(kind: str, read, ns: str, name: str, optional: bool | None) -> dict[str, str]:
        """A Secret's or ConfigMap's data; a missing one is {} when optional, else what a
        kubelet reports as CreateContainerConfigError."""
        try:
            return dict(read(name, ns).data or {})
        except ApiException as exc:
            if exc.status != 404:
                raise
            if optional:
                return {}
            raise ConfigError(f'{kind} "{name}" not found') from None

    @staticmethod
    def _field(pod, path: str) -> str:
        meta = pod.metadata
        if path.startswith(("metadata.annotations[", "metadata.labels[")):
            key = path.split("[", 1)[1].rstrip("]").strip("'\"")
            source = meta.annotations if path.startswith("metadata.annotations") else meta.labels
            return (source or {}).get(key, "")
        return {"metadata.name": meta.name, "metadata.namespace": meta.namespace, "metadata.uid": meta.uid,
                "spec.nodeName": pod.spec.node_name, "spec.serviceAccountName": pod.spec.service_account_name or "",
                "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}.get(path, "")

    # ------------------------------------------------------------------ ending a pod
    def _signal(self, r: _Running, sig: int) -> None:
        try:
            os.killpg(r.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _terminate(self, r: _Running, grace: int) -> None:
        with self._lock:
            if r.term_sent:
                return
            r.term_sent = True
        self._signal(r, signal.SIGTERM)

        def kill_after_grace():
            try:
                r.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(r, signal.SIGKILL)

        threading.Thread(target=kill_after_grace, daemon=True).start()

    def _wait(self, r: _Running, pod) -> None:
        rc = r.proc.wait()
        code = rc if rc >= 0 else 128 - rc
        message = r.termination_file.read_text(errors="replace")[:4096]
        if not message and code != 0 and r.fallback_to_logs:
            message = (r.workdir / "log").read_bytes()[-2048:].decode(errors="replace")
        finished = _now()
        container = pod.spec.containers[0]
        state = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
                 "startedAt": r.started, "finishedAt": finished}
        with self._lock:
            for h in self.history:
                if h["uid"] == r.uid and h["exit"] is None:
                    h["exit"] = code
        policy = pod.spec.restart_policy or "Always"
        if not r.term_sent and not self._stop.is_set() and (policy == "Always" or (policy == "OnFailure" and code)):
            self._restart(r, pod, state)
            return
        try:
            self._patch_status(pod, {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": [{"type": t, "status": "False", "lastTransitionTime": finished}
                               for t in ("ContainersReady", "Ready")],
                "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "",
                                       "ready": False, "started": False, "restartCount": 0,
                                       "state": {"terminated": state}}],
            })
        except ApiException as exc:
            if exc.status != 404:
                raise
        finally:
            with self._lock:
                self._running.pop(r.uid, None)
                self._finished.add(r.uid)
        try:
            current = self.core.read_namespaced_pod(r.name, r.namespace)
        except ApiException:
            return
        if current.metadata.uid == r.uid and current.metadata.deletion_timestamp is not None:
            self._delete_final(current)

    def _restart(self, r: _Running, pod, state: dict) -> None:
        """What a kubelet does when a container of a pod that restarts ends: the pod stays,
        the container starts again after a back-off (10 s, doubling, at most 5 min)."""
        container = pod.spec.containers[0]
        with self._lock:
            self._running.pop(r.uid, None)
        try:
            self._patch_status(pod, {"containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "", "ready": False, "started": False,
                "restartCount": r.restarts, "lastState": {"terminated": state},
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": f"back-off restarting failed container {container.name}"}}}]})
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to restart
                raise
            return
        if self._stop.wait(min(10 * 2 ** r.restarts, 300)):
            return
        try:
            current = self.core.read_namespaced_pod(r.name, r.namespace)
        except ApiException:
            return
        if current.metadata.uid == r.uid and current.metadata.deletion_timestamp is None:
            self._run(current, r.restarts + 1)
        else:
            with self._lock:
                self._finished.add(r.uid)
            self._delete_final(current)

    def _delete_final(self, pod) -> None:
        """The kubelet's last word: the pod object goes (finalizers permitting)."""
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0,
                                            body=client.V1DeleteOptions(
                                                grace_period_seconds=0,
                                                preconditions=client.V1Preconditions(uid=pod.metadata.uid)))
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        shutil.rmtree(self.workdir / f"{pod.metadata.namespace}-{pod.metadata.name}-{pod.metadata.uid[:8]}",
                      ignore_errors=True)

    def _patch_status(self, pod, status: dict) -> None:
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})
