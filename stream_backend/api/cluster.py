"""Requests in a cluster: each export or import a StreamExport / StreamImport resource in
one namespace, which the operator turns into a Job. The request is visible in the control
plane (`kubectl get streamexports`), its status is the resource's, pausing is
``spec.suspend``, cancelling deletes the resource (and with it its Job). Archive locations
are the namespace's ArchiveLocation resources.
"""

from __future__ import annotations

import json
import logging
import threading

from ..errors import AlreadyExistsError, NotFoundError, PermissionDeniedError, UnavailableError, UsageError
from ..k8s.names import check_k8s_name
from ..k8s.resources import API_VERSION, GROUP, PLURALS, POD_FIELDS, VERSION
from .work import Changes, Location, check_spec

log = logging.getLogger("stream_backend.api")

#: pod and Job fields a request may set in a cluster (RBAC decides who may create them)
_POD_SPEC = {k: v for k, (_, v) in POD_FIELDS.items()}


def _document(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    return {"apiVersion": API_VERSION, "kind": obj.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "creationTimestamp") if k in meta},
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


class ClusterWorkers(Changes):
    def __init__(self, namespace: str) -> None:
        from kubernetes import client

        from ..k8s.connect import load_config

        check_k8s_name("--kubernetes namespace", namespace, 63, label=True)
        load_config()
        self.namespace = namespace
        self._api = client.ApiClient()
        self._custom = client.CustomObjectsApi(self._api)
        self._stop = threading.Event()
        self._watchers = [threading.Thread(target=self._watch, args=(plural,), name=f"watch-{plural}", daemon=True)
                          for plural in PLURALS.values()]
        for t in self._watchers:
            t.start()

    # -- the API's calls ----------------------------------------------------------
    def _call(self, fn, *args, **kw):
        from kubernetes.client.rest import ApiException

        try:
            return fn(GROUP, VERSION, self.namespace, *args, **kw)
        except ApiException as exc:
            detail = exc.reason
            try:
                detail = json.loads(exc.body).get("message") or detail
            except (TypeError, ValueError):
                pass
            kind = {403: PermissionDeniedError, 404: NotFoundError, 409: AlreadyExistsError,
                    422: UsageError}.get(exc.status, UnavailableError)
            raise kind(f"Kubernetes API: {detail}") from None
        except OSError as exc:
            raise UnavailableError(f"Kubernetes API unreachable: {exc}") from None

    @property
    def locations(self) -> dict[str, Location]:
        items = self._call(self._custom.list_namespaced_custom_object, "archivelocations")["items"]
        return {o["metadata"]["name"]: Location(o["metadata"]["name"], o["spec"]["url"].rstrip("/"),
                                                o["spec"].get("endpointUrl")) for o in items}

    def submit(self, kind: str, name: str, spec: dict) -> tuple[dict, bool]:
        check_k8s_name("name", name, 63, label=True)
        spec = check_spec(kind, spec, _POD_SPEC)
        plural = PLURALS[kind]
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        try:
            return _document(self._call(self._custom.create_namespaced_custom_object, plural, body)), True
        except AlreadyExistsError:
            old = self._call(self._custom.get_namespaced_custom_object, plural, name)
            same = {k: v for k, v in (old.get("spec") or {}).items() if k != "suspend"} == \
                {k: v for k, v in spec.items() if k != "suspend"}
            if not same:
                raise AlreadyExistsError(f"{kind} {name} exists with another spec: choose another name") from None
            return _document(old), False

    def get(self, kind: str, name: str) -> dict:
        return _document(self._call(self._custom.get_namespaced_custom_object, PLURALS[kind], name))

    def list(self, kind: str) -> list[dict]:
        items = self._call(self._custom.list_namespaced_custom_object, PLURALS[kind])["items"]
        return sorted((_document(o) for o in items), key=lambda d: d["metadata"]["name"])

    def target_of(self, kind: str, name: str):
        spec = self.get(kind, name)["spec"]
        location = self.locations.get(spec.get("archiveLocation") or "")
        if location is None:
            raise NotFoundError(f"{kind} {name} names no ArchiveLocation of namespace {self.namespace}")
        return location.target(spec.get("archivePath"))

    def _suspend(self, kind: str, name: str, value: bool) -> dict:
        patch = {"spec": {"suspend": value}}
        return _document(self._call(self._custom.patch_namespaced_custom_object, PLURALS[kind], name, patch))

    def pause(self, kind: str, name: str) -> dict:
        return self._suspend(kind, name, True)

    def resume(self, kind: str, name: str) -> dict:
        return self._suspend(kind, name, False)

    def cancel(self, kind: str, name: str) -> dict:
        doc = self.get(kind, name)
        self._call(self._custom.delete_namespaced_custom_object, PLURALS[kind], name)
        return doc

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()

    # -- change notification: a watch per kind ------------------------------------------
    def _watch(self, plural: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                for _event in watch.Watch().stream(self._custom.list_namespaced_custom_object, GROUP, VERSION,
                                                   self.namespace, plural, timeout_seconds=60):
                    self._changed_soon()
                    if self._stop.is_set():
                        return
            except Exception as exc:  # the API restarting, a dropped connection: watch again
                log.debug("watch of %s ended: %s", plural, exc)
                self._stop.wait(1.0)
