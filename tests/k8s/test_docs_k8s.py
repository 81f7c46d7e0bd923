"""kubernetes.md's commands run as written: the launch blocks with `kubectl apply -f -`
answered by the offline validator the suite uses (the API schemas of the newest Kubernetes
release that kubernetes-validate bundles, strict), and the walkthrough on the test bed, its
output compared with the transcript the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"

VALIDATE = """
import sys, yaml
from kubernetes_validate import utils as kv
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
assert docs, "kubectl apply got no manifest"
for d in docs:
    kv.validate(d, kv.latest_version(), strict=True)
print("validated", *(d["kind"] for d in docs))
"""


def test_launch_blocks_make_valid_manifests():
    blocks = [b for b in re.findall(r"^```(?:bash|sh)\n(.*?)^```", DOC.read_text(), re.M | re.S)
              if "| kubectl apply -f -" in b and not b.startswith("# walkthrough")]
    assert len(blocks) >= 3
    bindir = Path(sys.executable).parent
    prelude = f'kubectl() {{ [ "$*" = "apply -f -" ] && "{sys.executable}" -c "$VALIDATE"; }}\n'
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "VALIDATE": VALIDATE}
    env.pop("STREAM_BACKEND_IMAGE", None)  # the docs name their image themselves
    for block in blocks:
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + block], env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"{block}\n{p.stderr}"
        assert p.stdout.startswith(("validated Job", "validated CustomResourceDefinition")), p.stdout


def _walkthrough() -> tuple[str, str]:
    """The walkthrough's commands and the transcript shown after them."""
    text = DOC.read_text()
    (block,) = re.findall(r"^```sh\n(# walkthrough\n.*?)^```", text, re.M | re.S)
    after = text[text.index(block) + len(block):]
    transcript = re.search(r"^```text\n(.*?)^```", after, re.M | re.S)
    return block, transcript.group(1) if transcript else ""


def _shape(line: str) -> str:
    """A transcript line without what differs from run to run: ages, name hashes, sizes."""
    line = re.sub(r"-[0-9a-f]{6}\b", "-<hash>", line)  # first: a hash such as 39079d reads as an age
    line = re.sub(r"\b\d+(?:\.\d+)?[smhd](?:\d+[smh])?\b", "<age>", line)
    return " ".join(line.split())


@pytest.mark.slow
def test_walkthrough_runs_on_the_test_bed(fresh_k8s_cluster, tmp_path):
    """On a control plane of its own: the install's Deployment runs the operator (on the
    process node, with the token its ServiceAccount gets), the StreamExport becomes a Job,
    the Job an archive, and the page's transcript is what kubectl printed."""
    from stream_backend.stores.local import LocalStore
    from support.k8s_node import ProcessNode

    block, transcript = _walkthrough()
    store_root, backups = tmp_path / "app-streams", tmp_path / "backups"
    backups.mkdir()
    store = LocalStore(root=str(store_root))
    store.create_stream("app", "events", segments=2)
    with store.writer("app", "events") as w:
        for i in range(200):
            w.append(b"event %d " % i * 50, routing_key=f"user-{i % 7}")
    store.close()
    cluster = fresh_k8s_cluster
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "PATH": f"{cluster.bin}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("STREAM_BACKEND_IMAGE", None)
    node = ProcessNode(cluster.kubeconfig, tmp_path / "node", claims={"app-streams": store_root,
                                                                       "backups": backups}).start()
    try:
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True,
                           timeout=600)
    finally:
        node.stop()
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    produced = [_shape(line) for line in p.stdout.splitlines()]
    shown = [_shape(line) for line in transcript.splitlines() if line.strip()]
    assert shown, "docs/kubernetes.md shows no transcript after the walkthrough"
    missing = [line for line in shown if line not in produced]
    assert not missing, f"the page shows lines the walkthrough does not print: {missing}\n--- printed:\n{p.stdout}"
    assert (backups / "app-events" / "archive.json").exists()
