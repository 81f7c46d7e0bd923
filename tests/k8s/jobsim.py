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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.jobs import cli_executable


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
    owed: bool = False  # a fate the plan still owes (re-owed if it misses)
    stderr_lines: list = field(default_factory=list)
    stdout: str = ""
    first_progress: threading.Event = field(default_factory=threading.Event)
    first_progress_at: float | None = None
    under_way: float | None = None  # first progress line with totals known and done < total
    under_way_lines: int = 0
    trigger_line: int = 1  # an owed signal lands at this under-way progress line
    frozen: bool = False
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
                 chaos_budget: int = 8, timeout: float = 150.0, chaos: bool = True,
                 pod_hostnames: bool = False):
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
        self._owed = [(self.rng.choice(["sigterm", "sigterm-evict"]), False),
                      (self.rng.choice(["sigkill-node", "sigkill-oom"]), False)]
        self._retry = False
        self.rng.shuffle(self._owed)
        if not chaos:
            self._owed, self.chaos_budget = [], 0
        self._retries_left = 12
        self.exe = cli_executable()
        #: each pod in its own UTS namespace with its own hostname, as in a cluster: a
        #: dead pod's lease then looks like another host's and must expire (TTL)
        self.pod_hostnames = pod_hostnames

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

    def _plan(self) -> tuple[str, float, bool]:
        """The next pod's fate. A SIGTERM and a SIGKILL (random kinds) are owed first and
        owed again while they miss (the pod finished or failed before the signal took
        effect); then random chaos from the budget. An owed signal lands at the 1st or 2nd
        progress line with totals known (a retry at the 1st, which always comes): the pod
        is frozen with SIGSTOP at that line, signalled, and continued. Other SIGTERMs
        count their delay from the first progress line, other SIGKILLs from the start
        (so some land during startup)."""
        owed = bool(self._owed)
        if owed:
            fate, self._retry = self._owed.pop(0)
        elif self.chaos_budget > 0:
            self.chaos_budget -= 1
            fate = self.rng.choice(["sigterm", "sigterm-evict", "sigkill-node", "sigkill-oom", "run"])
        else:
            return "run", 0.0, False
        if fate == "sigkill-oom":
            if self.planned_counted >= self.backoff_limit - 1:
                fate = "sigkill-node"  # keep the counted failures within the limit
            else:
                self.planned_counted += 1
        if owed:  # lands at a random progress line while data moves (see _start)
            return fate, 0.0, owed
        if fate.startswith("sigterm"):
            return fate, self.rng.uniform(0.0, 0.6), owed
        return fate, self.rng.uniform(0.1, 1.4), owed  # from the start: some land during startup

    def _settle_owed(self, fate: str, exit_code: int) -> None:
        landed = (exit_code == 75) if fate.startswith("sigterm") else (exit_code == 137)
        if fate != "run" and not landed and self._retries_left > 0:
            self._retries_left -= 1
            self._owed.append((fate, True))

    def _start(self, index: int, attempt: int) -> Pod:
        term_log = self.workdir / f"termination-{index}-{attempt}.log"
        fate, delay, owed = self._plan()
        argv = [self.exe, *self.container["args"]]
        if self.pod_hostnames:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
                    f"job-{index}-{attempt}", *argv]
        proc = subprocess.Popen(
            argv,
            env=self._env(index, term_log),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pod = Pod(index, attempt, proc, time.monotonic(), term_log, fate, delay, owed=owed,
                  # a first try lands at the 1st or 2nd such line, a retry at the 1st (sure to come)
                  trigger_line=1 if self._retry else self.rng.randint(1, 2))
        self._retry = False

        def read_err():
            for line in proc.stderr:
                pod.stderr_lines.append(line)
                if '"progress"' in line:
                    pod.first_progress.set()
                    try:
                        p = json.loads(line)
                    except ValueError:
                        continue
                    if p.get("done_bytes", 0) < p.get("total_bytes", 0):  # totals known, not done
                        pod.under_way_lines += 1
                        if pod.under_way is None:
                            pod.under_way = time.monotonic()
                        if pod.owed and pod.under_way_lines == pod.trigger_line and proc.poll() is None:
                            # freeze the pod at this very moment (data moving); the main
                            # loop delivers the planned signal, then lets it run on
                            try:
                                os.kill(proc.pid, signal.SIGSTOP)
                                pod.frozen = True
                            except ProcessLookupError:
                                pass

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
        if pod.owed:
            if pod.frozen:
                pod.proc.send_signal(signal.SIGTERM if pod.fate.startswith("sigterm") else signal.SIGKILL)
                pod.signalled = True
                pod.proc.send_signal(signal.SIGCONT)
            return
        if pod.fate.startswith("sigterm"):
            # a SIGTERM that lands before the CLI installed its handler is just a kill;
            # to check exit 75 we signal once the transfer is under way
            since = pod.under_way if pod.owed else pod.first_progress_at
            if since is None or time.monotonic() - since < pod.delay:
                return
            pod.proc.send_signal(signal.SIGTERM)
        else:
            since = pod.under_way if pod.owed else pod.started
            if since is None or time.monotonic() - since < pod.delay:
                return
            pod.proc.send_signal(signal.SIGKILL)
        pod.signalled = True

    def run(self) -> list[PodResult]:
        deadline = time.monotonic() + self.timeout
        pending = list(range(self.completions))
        attempts = {i: 0 for i in pending}
        active: list[Pod] = []
        done: set[int] = set()
        try:
            self._loop(pending, attempts, active, done, deadline)
        finally:
            for pod in active:  # a failed assertion leaves no process behind
                if pod.proc.poll() is None:
                    pod.proc.kill()
                    pod.proc.wait()
        return self.results

    def _loop(self, pending, attempts, active, done, deadline) -> None:
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
                if pod.owed:
                    self._settle_owed(pod.fate, code)
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
