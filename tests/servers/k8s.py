"""A real Kubernetes control plane for the suite, through scripts/k8s-testbed.

Load as a pytest plugin (``pytest_plugins`` in tests/conftest.py).

- ``k8s_cluster`` (session): etcd + kube-apiserver + kube-controller-manager on loopback
  (the binaries are built once per version into the user's cache by ``scripts/k8s-testbed
  build``; scripts/test builds them), stopped by PID at the end.
- ``fresh_k8s_cluster``: another control plane, for one test.
- ``k8s_namespace``: a fresh namespace per test, its default ServiceAccount ready.
- ``process_node``: a factory of tests/support/k8s_node.ProcessNode agents, stopped
  (their pods killed) when the test ends.

Never skipped: if the build or a server fails, the fixture fails with the log tail.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "k8s-testbed"


@dataclass
class Cluster:
    state: Path
    kubeconfig: Path
    bin: Path

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, check=check, timeout=timeout)


@contextlib.contextmanager
def _testbed(state: Path):
    proc = subprocess.run([str(SCRIPT), "up", "--state", str(state)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"k8s-testbed up failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    env = dict(line.split("=", 1) for line in (state / "env").read_text().split())
    try:
        yield Cluster(state, Path(env["KUBECONFIG"]), Path(env["K8S_TESTBED_BIN"]))
    finally:
        subprocess.run([str(SCRIPT), "down", "--state", str(state)], timeout=60)


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory):
    with _testbed(tmp_path_factory.mktemp("k8s")) as cluster:
        yield cluster


@pytest.fixture
def fresh_k8s_cluster(tmp_path):
    """A control plane of the test's own, for what must start from nothing (the docs'
    walkthrough installs cluster-wide objects): about five seconds."""
    with _testbed(tmp_path / "k8s") as cluster:
        yield cluster


@pytest.fixture
def k8s_namespace(k8s_cluster):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(k8s_cluster.api_client())
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 30
    while True:  # admission refuses pods until the serviceaccount controller made "default"
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield name
    core.delete_namespace(name)


@pytest.fixture
def process_node(k8s_cluster, tmp_path):
    from support.k8s_node import ProcessNode

    nodes = []

    def make(claims=None, env=None, name="process-node"):
        node = ProcessNode(k8s_cluster.kubeconfig, tmp_path / f"node-{len(nodes)}", claims=claims, env=env,
                           name=name).start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()
