"""Measuring one command: wall time, client CPU and peak RSS (wait4), server CPU (psutil)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field

import psutil

KiB, MiB, GiB = 1024, 1024**2, 1024**3
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.I)


def parse_size(text: str | int) -> int:
    """'64MiB', '1G', '100' -> bytes (binary multiples: the harness thinks in MiB)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    mult = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1024 * GiB}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def free_ports(count: int) -> list[int]:
    """Distinct free loopback TCP ports (bound together so none repeats)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            socks.append(s)
            # SeaweedFS derives nothing from these, but keep clear of port+10000 clashes
            if port not in ports and port + 10000 < 65535:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Run:
    """One timed execution of one command."""

    wall_s: float
    client_cpu_s: float
    client_user_s: float
    client_sys_s: float
    client_maxrss: int  # bytes; peak RSS (VmHWM) of the largest process in the client's tree
    server_cpu_s: float | None
    rc: int
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d


class _PeakRSS:
    """Peak RSS (VmHWM) of the largest process in a tree, polled every 20 ms.

    Not wait4's ru_maxrss: a child forked (or vforked) from this harness inherits the
    harness's own high-water mark, which would hide a small tool's real peak.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.peaks: dict[int, int] = {}

    @staticmethod
    def _hwm(pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
        return None

    def poll(self) -> None:
        pids = [self.pid]
        try:
            pids += [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            pass
        for pid in pids:
            v = self._hwm(pid)
            if v is not None and v > self.peaks.get(pid, 0):
                self.peaks[pid] = v

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)


class CommandFailed(RuntimeError):
    pass


def server_cpu(pids) -> float | None:
    """CPU seconds (user+system, with reaped children) used so far by the server processes."""
    if not pids:
        return None
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
            for p in procs:
                t = p.cpu_times()
                total += (
                    t.user
                    + t.system
                    + getattr(t, "children_user", 0.0)
                    + getattr(t, "children_system", 0.0)
                )
        except psutil.Error:
            continue
    return total


def run_measured(
    argv, env=None, server_pids=(), cwd=None, timeout=3600, check=True, stdin=None, stdout_path=None
) -> Run:
    """Run ``argv`` to completion; rusage from wait4 covers it and its reaped children."""
    out = open(stdout_path, "wb") if stdout_path else tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    s0 = server_cpu(server_pids)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=err,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    hwm = _PeakRSS(proc.pid)
    next_poll = 0.0
    try:
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            if now >= next_poll:
                hwm.poll()
                next_poll = now + 0.02
            time.sleep(0.002)
    except BaseException:  # Ctrl-C / SIGTERM of the harness: do not leave the tool running
        proc.terminate()
        try:
            os.wait4(proc.pid, 0)
        except ChildProcessError:
            pass
        raise
    wall = time.perf_counter() - t0
    s1 = server_cpu(server_pids)
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    run = Run(
        wall_s=wall,
        client_cpu_s=ru.ru_utime + ru.ru_stime,
        client_user_s=ru.ru_utime,
        client_sys_s=ru.ru_stime,
        client_maxrss=hwm.peak,
        server_cpu_s=(s1 - s0) if s0 is not None and s1 is not None else None,
        rc=rc,
    )
    out.seek(0) if not stdout_path else None
    err.seek(0)
    run.extra["stdout"] = "" if stdout_path else out.read()[-20000:].decode("utf-8", "replace")
    run.extra["stderr_tail"] = err.read()[-4000:].decode("utf-8", "replace")
    out.close()
    err.close()
    if check and rc != 0:
        tail = run.extra["stderr_tail"].strip().splitlines()[-5:]
        raise CommandFailed(f"{os.path.basename(argv[0])} exited {rc}: " + " | ".join(tail))
    return run


def strip_output(run: Run) -> Run:
    """Drop captured output before a run goes into the results JSON."""
    run.extra.pop("stdout", None)
    run.extra.pop("stderr_tail", None)
    return run


def which(name: str, *dirs: str) -> str | None:
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def drop_cache(path: str) -> None:
    """Evict one file's pages (clean pages only; the file was fsync'ed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop_file(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def listening_addresses(pids) -> list[str]:
    """Local addresses the processes listen on: ``ss -ltnp``/``-lunp``, psutil if ss is missing."""
    pids = set(pids)
    addrs = []
    if shutil.which("ss"):
        for flags in ("-ltnpH", "-lunpH"):
            out = subprocess.run(["ss", flags], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if any(f"pid={p}," in line for p in pids):
                    addrs.append(line.split()[3])
        return addrs
    for pid in pids:
        try:
            for c in psutil.Process(pid).net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                    host = f"[{c.laddr.ip}]" if ":" in c.laddr.ip else c.laddr.ip
                    addrs.append(f"{host}:{c.laddr.port}")
        except psutil.Error:
            pass
    return addrs


def is_loopback(addr: str) -> bool:
    return addr.startswith(("127.", "[::1]", "[::ffff:127."))
