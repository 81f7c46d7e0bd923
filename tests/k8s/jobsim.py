"""A Job controller in miniature: runs a generated Job manifest's pods as local processes.

It reads the manifest — container args, literal env, completions, parallelism,
backoffLimit and the podFailurePolicy rules — and behaves as the Kubernetes Job
controller does with ``restartPolicy: Never``: each index of an Indexed Job gets a pod
(a process with ``JOB_COMPLETION_INDEX``; a plain Job has one index and no such env), a failed pod is replaced (only after it has
terminated: ``podReplacementPolicy: Failed``), each failure is matched against the
policy rules in order (Ignore / FailJob / Count), and the Job fails once counted
failures exceed ``backoffLimit``.

Chaos: a seeded plan SIGTERMs some pods (as ``kubectl delete pod`` or an eviction —
the latter also sets the ``DisruptionTarget`` condition) and SIGKILLs others (a lost
node: DisruptionTarget; an OOM kill: none) at random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def cli_executable() -> str:
    exe = Path(sys.executable).parent / "stream-backend"
    assert exe.exists(), f"{exe} missing: pip install -e '.[all,test]'"
    return str(exe)


@dataclass
class Pod:
    index: int
    attempt: int
    proc: subprocess.Popen
    started: float
    termination_log: Path
    fate: str = "run"  # run | sigterm | sigterm-evict | sigkill-node | sigkill-oom
    delay: float = 0.0
    signalled: bool = False
    stderr_lines: list = field(default_factory=list)
    stdout: str = ""
    first_progress: threading.Event = field(default_factory=threading.Event)
    first_progress_at: float | None = None
    threads: list = field(default_factory=list)

    @property
    def disruption(self) -> bool:
        return self.fate in ("sigterm-evict", "sigkill-node")


@dataclass
class PodResult:
    index: int
    attempt: int
    fate: str
    signalled: bool
    exit_code: int  # Kubernetes' view: 128+N for a signal
    action: str  # Succeeded | Ignore | FailJob | Count
    stderr: str
    stdout: str
    termination_message: str | None


def _match(rule: dict, container: str, exit_code: int, conditions: set[str]) -> bool:
    if "onExitCodes" in rule:
        req = rule["onExitCodes"]
        if req.get("containerName", container) != container:
            return False
        inside = exit_code in req["values"]
        return inside if req["operator"] == "In" else (not inside and exit_code != 0)
    for pattern in rule.get("onPodConditions", []):
        if pattern["type"] in conditions and pattern.get("status", "True") == "True":
            return True
    return False


def policy_action(manifest_job_spec: dict, container: str, exit_code: int, conditions: set[str]) -> str:
    """The podFailurePolicy's verdict for a failed pod: first matching rule wins."""
    for rule in manifest_job_spec.get("podFailurePolicy", {}).get("rules", []):
        if _match(rule, container, exit_code, conditions):
            return rule["action"]
    return "Count"


class JobSimulation:
    def __init__(self, job_spec: dict, workdir: Path, env_overrides: dict, seed: int,
                 chaos_budget: int = 8, timeout: float = 150.0):
        self.indexed = job_spec.get("completionMode") == "Indexed"
        self.spec = job_spec
        pod = job_spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (self.container,) = pod["containers"]
        self.completions = job_spec.get("completions", 1)
        self.parallelism = job_spec.get("parallelism", 1)
        self.backoff_limit = job_spec["backoffLimit"]
        self.workdir = workdir
        self.env_overrides = env_overrides
        self.rng = random.Random(seed)
        self.chaos_budget = chaos_budget
        self.timeout = timeout
        self.results: list[PodResult] = []
        self.counted_failures = 0
        self.planned_counted = 0
        self._opening: list[str] = []
        self._opening_left = 2
        self.exe = cli_executable()

    def _env(self, index: int, term_log: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for item in self.container.get("env", []):
            assert "value" in item or "valueFrom" in item
            if "value" in item:
                env[item["name"]] = item["value"]
        env.update(self.env_overrides)
        if self.indexed:
            env["JOB_COMPLETION_INDEX"] = str(index)
        else:
            env.pop("JOB_COMPLETION_INDEX", None)
        env["STREAM_BACKEND_TERMINATION_LOG"] = str(term_log)
        return env

    def _plan(self) -> tuple[str, float]:
        """The next pod's fate. The first two chaos pods are one SIGTERM and one SIGKILL
        (random order and kind), the rest random; SIGTERM delays count from the pod's
        first progress line, SIGKILL delays from its start (so some land during startup)."""
        if self.chaos_budget <= 0:
            return "run", 0.0
        self.chaos_budget -= 1
        if not self._opening:
            self._opening = [self.rng.choice(["sigterm", "sigterm-evict"]),
                             self.rng.choice(["sigkill-node", "sigkill-oom"])]
            self.rng.shuffle(self._opening)
        if self._opening_left:
            fate = self._opening[2 - self._opening_left]
            self._opening_left -= 1
        else:
            fate = self.rng.choice(["sigterm", "sigterm-evict", "sigkill-node", "sigkill-oom", "run"])
        if fate == "sigkill-oom":
            if self.planned_counted >= self.backoff_limit - 1:
                fate = "sigkill-node"  # keep the counted failures within the limit
            else:
                self.planned_counted += 1
        if fate.startswith("sigterm"):
            return fate, self.rng.uniform(0.0, 0.6)
        return fate, self.rng.uniform(0.1, 1.4)

    def _start(self, index: int, attempt: int) -> Pod:
        term_log = self.workdir / f"termination-{index}-{attempt}.log"
        fate, delay = self._plan()
        proc = subprocess.Popen(
            [self.exe, *self.container["args"]],
            env=self._env(index, term_log),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pod = Pod(index, attempt, proc, time.monotonic(), term_log, fate, delay)

        def read_err():
            for line in proc.stderr:
                pod.stderr_lines.append(line)
                if '"progress"' in line:
                    pod.first_progress.set()

        def read_out():
            pod.stdout = proc.stdout.read()

        pod.threads = [threading.Thread(target=read_err, daemon=True),
                       threading.Thread(target=read_out, daemon=True)]
        for t in pod.threads:
            t.start()
        return pod

    def _maybe_signal(self, pod: Pod) -> None:
        if pod.signalled or pod.fate == "run" or pod.proc.poll() is not None:
            return
        if pod.fate.startswith("sigterm"):
            # a SIGTERM that lands before the CLI installed its handler is just a kill;
            # to check exit 75 we signal once the transfer is under way
            if pod.first_progress_at is None:
                return
            if time.monotonic() - pod.first_progress_at < pod.delay:
                return
            pod.proc.send_signal(signal.SIGTERM)
        else:
            if time.monotonic() - pod.started < pod.delay:
                return
            pod.proc.send_signal(signal.SIGKILL)
        pod.signalled = True

    def run(self) -> list[PodResult]:
        deadline = time.monotonic() + self.timeout
        pending = list(range(self.completions))
        attempts = {i: 0 for i in pending}
        active: list[Pod] = []
        done: set[int] = set()
        while len(done) < self.completions:
            assert time.monotonic() < deadline, f"job did not complete in {self.timeout}s: {self.results[-5:]}"
            while pending and len(active) < self.parallelism:
                i = pending.pop(0)
                attempts[i] += 1
                active.append(self._start(i, attempts[i]))
            time.sleep(0.02)
            for pod in list(active):
                if pod.first_progress.is_set() and pod.first_progress_at is None:
                    pod.first_progress_at = time.monotonic()
                self._maybe_signal(pod)
                rc = pod.proc.poll()
                if rc is None:
                    continue
                for t in pod.threads:
                    t.join(timeout=10)
                active.remove(pod)
                code = rc if rc >= 0 else 128 - rc
                conditions = {"DisruptionTarget"} if pod.disruption and pod.signalled else set()
                if code == 0:
                    action = "Succeeded"
                    done.add(pod.index)
                else:
                    action = policy_action(self.spec, self.container["name"], code, conditions)
                msg = pod.termination_log.read_text() if pod.termination_log.exists() else None
                self.results.append(PodResult(pod.index, pod.attempt, pod.fate, pod.signalled, code, action,
                                              "".join(pod.stderr_lines), pod.stdout, msg))
                if action == "FailJob":
                    raise AssertionError(f"pod {pod.index} failed the job: exit {code}\n{''.join(pod.stderr_lines)}")
                if action == "Count":
                    self.counted_failures += 1
                    assert self.counted_failures <= self.backoff_limit, (
                        f"backoffLimit exceeded: {[(r.index, r.fate, r.exit_code) for r in self.results]}\n"
                        + "".join(pod.stderr_lines))
                if action != "Succeeded":
                    pending.insert(0, pod.index)  # the replacement, after the old pod terminated
        return self.results


def progress_lines(stderr: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out
