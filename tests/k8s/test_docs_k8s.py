"""kubernetes.md's launch commands run as written, with `kubectl apply -f -` answered by the
offline validator the suite uses (the API schemas of the newest Kubernetes release that
kubernetes-validate bundles, strict). Its docker and `kubectl get/create` lines need an image
registry and a cluster: the Kubernetes test bed of the operator issue will run those."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
              if "| kubectl apply -f -" in b]
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
