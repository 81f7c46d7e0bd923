"""What machine the numbers come from: cores, CPU model, RAM, disk, date, versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess

import psutil


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _disk(path: str) -> dict:
    info = {"path": path}
    try:
        usage = psutil.disk_usage(path)
        info["size_bytes"] = usage.total
        info["free_bytes"] = usage.free
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["df", "--output=source,fstype", path], capture_output=True, text=True
        ).stdout
        source, fstype = out.strip().splitlines()[-1].split()[:2]
        info["device"], info["fstype"] = source, fstype
        dev = os.path.basename(os.path.realpath(source))
        base = dev.rstrip("0123456789") if not dev.startswith("nvme") else dev.split("p")[0]
        for cand in (dev, base):
            rot = f"/sys/block/{cand}/queue/rotational"
            if os.path.exists(rot):
                with open(rot) as f:
                    info["rotational"] = f.read().strip() == "1"
                break
    except (OSError, ValueError, IndexError):
        pass
    return info


def _git(repo: str) -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else None
    except OSError:
        return None


def describe(repo: str, work_dir: str) -> dict:
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_bytes": psutil.virtual_memory().total,
        "disk": _disk(work_dir),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "git": _git(repo),
    }
