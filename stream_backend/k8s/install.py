"""What `stream-backend k8s install` prints: the CRDs, the operator's least-privilege RBAC
(a ClusterRole bound to its ServiceAccount) and its Deployment."""

from __future__ import annotations

from .. import settings
from .jobs import RUN_AS_USER, SERVICE_ACCOUNT_MOUNT, STORE_MOUNT
from .resources import GROUP, PLURALS, definitions

OPERATOR = "stream-backend-operator"
DEFAULT_NAMESPACE = "stream-backend-system"
LIVENESS_PORT = 8080


def operator_rules() -> list[dict]:
    """Everything the operator does, and nothing more: it reads its resources and writes
    their status, makes and steers their Jobs, reads pods (termination messages), posts
    Events, and gives each namespace's workers the one Role they need."""
    plurals = list(PLURALS.values())
    return [
        {"apiGroups": [GROUP], "resources": [*plurals, "archivelocations"], "verbs": ["get", "list", "watch", "patch"]},
        # the pods' Role (worker_rbac) grants get/patch on these; granting needs holding them
        {"apiGroups": [GROUP], "resources": [f"{p}/status" for p in plurals], "verbs": ["get", "patch"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "watch", "create", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
        # kopf itself: it follows which resources and namespaces exist
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]


def operator_rbac(namespace: str) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": OPERATOR, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": OPERATOR},
         "rules": operator_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": OPERATOR},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR},
         "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": namespace}]},
    ]


def operator_deployment(namespace: str, image: str) -> dict:
    labels = {"app.kubernetes.io/name": OPERATOR}
    container = {
        "name": "operator", "image": image, "args": ["operator", "--liveness",
                                                     f"http://0.0.0.0:{LIVENESS_PORT}/healthz"],
        "env": [{"name": settings.IMAGE_ENV, "value": image},  # the image of the Jobs it makes
                {"name": settings.K8S_TOKEN_DIR_ENV, "value": SERVICE_ACCOUNT_MOUNT}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": LIVENESS_PORT}, "periodSeconds": 30},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": OPERATOR, "namespace": namespace,
                                                                         "labels": labels},
            # one replica: kopf has no leader election in standalone mode; Recreate keeps it one
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "serviceAccountName": OPERATOR, "containers": [container],
                         "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}


def manifests(image: str | None, namespace: str = DEFAULT_NAMESPACE, crds_only: bool = False) -> list[dict]:
    out = definitions()
    if not crds_only:
        out += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                *operator_rbac(namespace), operator_deployment(namespace, image)]
    return out


SERVER = "stream-backend-api"
SERVER_PORT = 8080
TOKEN_MOUNT = "/etc/stream-backend/tokens"
TLS_MOUNT = "/etc/stream-backend/tls"
#: the built-in ClusterRole that lets a server review tokens and access for its callers
AUTH_DELEGATOR = "system:auth-delegator"


def server_rules() -> list[dict]:
    """What `serve --kubernetes` does in its namespace: requests are resources it creates,
    reads, watches, suspends and deletes; locations it reads."""
    return [{"apiGroups": [GROUP], "resources": list(PLURALS.values()),
             "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
            {"apiGroups": [GROUP], "resources": ["archivelocations"], "verbs": ["get", "list"]}]


def caller_rules(manage: bool = True) -> list[dict]:
    """A Role for callers of a server that checks their Kubernetes identity: reading
    streams, locations and requests, and with ``manage`` requesting, pausing and
    cancelling exports and imports and fetching download plans."""
    read = ["get", "list", "watch"]
    rules = [{"apiGroups": [GROUP], "resources": ["streams", "streams/data", "archivelocations"], "verbs": ["get", "list"]},
             {"apiGroups": [GROUP], "resources": list(PLURALS.values()), "verbs": read}]
    if manage:
        rules += [{"apiGroups": [GROUP], "resources": list(PLURALS.values()), "verbs": ["create", "patch", "delete"]},
                  {"apiGroups": [GROUP], "resources": ["streamexports/download"], "verbs": ["get"]}]
    return rules


def caller_role(namespace: str, name: str = f"{SERVER}-user", manage: bool = True) -> dict:
    """The Role to bind callers to (``kubectl create rolebinding --role``)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": SERVER}},
            "rules": caller_rules(manage)}


def server_manifests(namespace: str, image: str, token_secret: str | None = None, pvc: str | None = None,
                     tls_secret: str | None = None) -> list[dict]:
    """The HTTP API in ``namespace``: its ServiceAccount and Role, a Deployment running
    `serve --kubernetes`, and a Service. Callers authenticate with the tokens of Secret
    ``token_secret`` (key ``tokens``), or without one with their own Kubernetes tokens, RBAC
    deciding (then the server may review tokens: a ClusterRoleBinding to
    system:auth-delegator). ``pvc``: the local store's claim, for the streams' info and file
    views. ``tls_secret``: a kubernetes.io/tls Secret, served as HTTPS."""
    labels = {"app.kubernetes.io/name": SERVER}
    meta = {"name": SERVER, "namespace": namespace, "labels": labels}
    root = STORE_MOUNT if pvc else "/tmp/streams"
    args = ["serve", "--listen", f"0.0.0.0:{SERVER_PORT}", "--kubernetes", namespace, "--root", root]
    mounts, volumes = [{"name": "tmp", "mountPath": "/tmp"}], [{"name": "tmp", "emptyDir": {}}]
    if token_secret:
        args += ["--token-file", f"{TOKEN_MOUNT}/tokens"]
        mounts.append({"name": "tokens", "mountPath": TOKEN_MOUNT, "readOnly": True})
        volumes.append({"name": "tokens", "secret": {"secretName": token_secret}})
    if tls_secret:
        args += ["--tls-cert", f"{TLS_MOUNT}/tls.crt", "--tls-key", f"{TLS_MOUNT}/tls.key"]
        mounts.append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret}})
    if pvc:
        mounts.append({"name": "store", "mountPath": STORE_MOUNT, "readOnly": True})
        volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": pvc, "readOnly": True}})
    probe = {"path": "/readyz", "port": SERVER_PORT, **({"scheme": "HTTPS"} if tls_secret else {})}
    container = {
        "name": "api", "image": image, "args": args,
        "env": [{"name": settings.K8S_TOKEN_DIR_ENV, "value": SERVICE_ACCOUNT_MOUNT}],
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "readinessProbe": {"httpGet": probe, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {**probe, "path": "/healthz"}, "periodSeconds": 30},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": mounts,
    }
    subjects = [{"kind": "ServiceAccount", "name": SERVER, "namespace": namespace}]
    delegation = [] if token_secret else [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{SERVER}-{namespace}-auth-delegator", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUTH_DELEGATOR},
         "subjects": subjects}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": server_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVER}, "subjects": subjects},
        *delegation,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "serviceAccountName": SERVER, "containers": [container], "volumes": volumes}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels, "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}]}},
    ]
