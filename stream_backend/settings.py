"""Everything stream-backend takes from its environment, and every default it shares, in
one place. The edges (the CLI, the fsspec classes, the duplicity backend, the Kubernetes
manifests) call these; the layers below take values, not variable names.

Each call reads the environment when made, so a test (or a pod) that sets a variable
before a call is heard.
"""

from __future__ import annotations

import os

from .errors import UsageError

MiB = 1024 * 1024

#: the local store's directory
ROOT_ENV = "STREAM_BACKEND_ROOT"
#: Pravega's controller
CONTROLLER_ENV = "PRAVEGA_CONTROLLER_URI"
DEFAULT_CONTROLLER = "tcp://127.0.0.1:9090"
#: seconds any one store call may take
TIMEOUT_ENV = "STREAM_BACKEND_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
#: S3 endpoints, as the AWS tools name them (the service-specific one first)
S3_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
#: transfers
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_PARALLEL = 4
DEFAULT_OBJECT_SIZE = 64 * MiB
#: an Indexed Job's shard: its index, set by Kubernetes, and the shard count we set
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"
SHARDS_ENV = "STREAM_BACKEND_SHARDS"
#: where a pod leaves its one-line result (the termination message file)
TERMINATION_LOG_ENV = "STREAM_BACKEND_TERMINATION_LOG"
#: the Java client's class path for --reader-group (else resolved into the user's cache)
PRAVEGA_CLASSPATH_ENV = "STREAM_BACKEND_PRAVEGA_CLASSPATH"
#: the resource a pod reports its progress to (NAMESPACE/PLURAL/NAME, set by the operator),
#: and where the pod's ServiceAccount token is mounted
K8S_STATUS_ENV = "STREAM_BACKEND_K8S_STATUS"
K8S_TOKEN_DIR_ENV = "STREAM_BACKEND_K8S_TOKEN_DIR"
#: the container image of generated manifests and of the operator's Jobs
IMAGE_ENV = "STREAM_BACKEND_IMAGE"
TOKEN_FILE_ENV = "STREAM_BACKEND_TOKEN_FILE"
#: the bearer token `download` sends to `serve`
TOKEN_ENV = "STREAM_BACKEND_TOKEN"
#: the duplicity backend's registration, set by `stream-backend duplicity` for its child
DUPLICITY_ENV = "STREAM_BACKEND_DUPLICITY"

#: seconds, each with its variable and default
DURATIONS = {
    "progress_interval": ("STREAM_BACKEND_PROGRESS_INTERVAL", 1.0, 0.01),
    "checkpoint_interval": ("STREAM_BACKEND_CHECKPOINT_INTERVAL", 1.0, 0.0),
    "pause_grace": ("STREAM_BACKEND_PAUSE_GRACE", 30.0, 0.0),
    "lease_ttl": ("STREAM_BACKEND_LEASE_TTL", 60.0, 0.0),
    "lease_settle": ("STREAM_BACKEND_LEASE_SETTLE", 0.5, 0.0),
    "writer_wait": ("STREAM_BACKEND_WRITER_WAIT", 600.0, 0.0),
    "operator_refresh": ("STREAM_BACKEND_OPERATOR_REFRESH", 2.0, 0.1),
}


def seconds(name: str) -> float:
    """One of the durations above; a value that is not a number is refused, not ignored."""
    var, default, least = DURATIONS[name]
    return max(least, _number(var, float, default))


def store_root() -> str | None:
    return os.environ.get(ROOT_ENV) or None


def platform_store_root() -> str:
    """The local store's home when nothing names one: the per-user data directory."""
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("stream-backend"), "streams")


def platform_requests_dir() -> str:
    """Where `serve` keeps its export and import requests when --state-dir is not given."""
    import platformdirs

    return os.path.join(platformdirs.user_state_dir("stream-backend"), "requests")


def default_store_root() -> str:
    return store_root() or platform_store_root()


def controller() -> str:
    return os.environ.get(CONTROLLER_ENV) or DEFAULT_CONTROLLER


def _number(var: str, kind, default):
    """A numeric variable: ``default`` when unset or empty, refused when not a number."""
    text = os.environ.get(var)
    if text is None or not text.strip():
        return default
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{var} must be a number, not {text!r}") from None


def timeout() -> float:
    return _number(TIMEOUT_ENV, float, DEFAULT_TIMEOUT)


def s3_endpoint() -> str | None:
    return next((os.environ[v] for v in S3_ENDPOINT_ENVS if os.environ.get(v)), None)


def shard_count() -> int | None:
    return _number(SHARDS_ENV, int, None)


def job_index() -> str | None:
    return os.environ.get(JOB_INDEX_ENV)


def termination_log(env=None) -> str | None:
    return (env if env is not None else os.environ).get(TERMINATION_LOG_ENV) or None


def pravega_classpath() -> str | None:
    return os.environ.get(PRAVEGA_CLASSPATH_ENV) or None


def pravega_auth() -> bool:
    """The Rust client's credentials come from its own pravega_client_auth_* variables."""
    return any(k.startswith("pravega_client_auth_") for k in os.environ)


def cache_dir() -> str:
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
