"""Run real duplicity through `stream-backend duplicity` in tests."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from support.mounting import CLI


def dup_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("PASSPHRASE", None)
    env.pop("SIGN_PASSPHRASE", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def duplicity(
    *args, archive_dir, root=None, env=None, check=True, timeout=300
) -> subprocess.CompletedProcess:
    """`stream-backend duplicity [--root R] ACTION ... --no-encryption --archive-dir A`."""
    pre = ["--root", str(root)] if root else []
    cmd = [
        CLI,
        "duplicity",
        *pre,
        *map(str, args),
        "--no-encryption",
        "--archive-dir",
        str(archive_dir),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or dup_env())
    if check and res.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    return res


def make_tree(root: Path, seed: int, files: int = 12, size: int = 40_000) -> None:
    """A small NFS-volume-like tree: nested dirs, varied sizes, an empty file, a symlink."""
    rnd = random.Random(seed)
    for i in range(files):
        d = root / f"d{i % 3}" / (f"sub{i % 2}" if i % 4 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rnd.randbytes(rnd.randint(1, size)))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("d0/f0.bin") if not (root / "link").exists() else None


def diff_r(a, b) -> str:
    res = subprocess.run(
        ["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True, text=True
    )
    return "" if res.returncode == 0 else (res.stdout + res.stderr)
