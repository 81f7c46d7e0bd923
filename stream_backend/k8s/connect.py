"""Where the Kubernetes API is: one configuration for the operator and the HTTP API."""

from __future__ import annotations

import os

from ..settings import K8S_TOKEN_DIR_ENV
from .jobs import SERVICE_ACCOUNT_MOUNT


def load_config() -> None:
    """In a pod, the ServiceAccount token where STREAM_BACKEND_K8S_TOKEN_DIR says (a pod's
    usual path unless set); elsewhere the kubeconfig."""
    from kubernetes import config

    tokens = os.environ.get(K8S_TOKEN_DIR_ENV) or SERVICE_ACCOUNT_MOUNT
    try:
        config.incluster_config.InClusterConfigLoader(
            token_filename=os.path.join(tokens, "token"), cert_filename=os.path.join(tokens, "ca.crt")).load_and_set()
    except config.ConfigException:
        config.load_kube_config()
